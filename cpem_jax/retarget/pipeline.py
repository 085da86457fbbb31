"""`cpem-jax retarget` end to end: estimate -> smooth -> write every output -> summary.json.

Outputs (in `RetargetOptions.output`; `OUTPUTS` names them for `--outputs`):
  coefficients  coefficients.npz + coefficients.json  the VideoEstimate, exact (export.coefficients)
  csv           blendshapes.csv     52 ARKit weights, head pose, time, face flag per frame
  json          blendshapes.json    the same plus our units and the unsmoothed values ("raw")
  livelink      livelink.csv        Live Link Face CSV (Unreal / Blender importers)
  glb           face.glb            our face (fitted identity) with one morph target per unit and
                                    the animation (weights + head rotation) at the video's rate
  avatar        <name>_animated.glb the avatar with the animation on its morph targets (--avatar)
  preview       preview.mp4         input | face model | avatar (see preview)
  overlay       overlay.mp4         crop | model rendered over it | landmarks: the fit's quality
and always summary.json: frames, frames with a face, seconds and frames per second of each
phase, the landmark error of the model against the front end (NME), output sizes, the avatar
report and anything that failed.

The walk of one video: `estimate_video` (cpem_jax.estimation: read, detect, crop, estimate, one
pass over the frames) returns a `VideoEstimate`; every writer of `cpem_jax.export` and the
preview consume it. An output that fails (an avatar without morph targets, say) is reported and
the others are still written: `run_retarget` then returns exit status 1. Problems that leave
nothing to write (no face anywhere, an unreadable input) raise and the command exits with
status 2.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from cpem_jax.estimation.estimate import make_estimator
from cpem_jax.estimation.video_estimate import VideoEstimate
from cpem_jax.evaluation.landmarks import box_size, landmark_box, nme
from cpem_jax.evaluation.temporal import mean_abs_change
from cpem_jax.export import (AvatarError, FrameTrack, RetargetReport, SmoothingConfig,
                             animation_track, load_morph_mesh, retarget_avatar, save_coefficients,
                             smooth_track, write_csv, write_face_glb, write_json,
                             write_livelink_csv)
from cpem_jax.io.video_writer import write_video
from cpem_jax.retarget import preview as preview_module

OUTPUTS = ("coefficients", "csv", "json", "livelink", "glb", "avatar", "preview", "overlay")
DEFAULT_OUTPUTS = tuple(o for o in OUTPUTS if o != "overlay")
FILE_NAMES = {"csv": "blendshapes.csv", "json": "blendshapes.json", "livelink": "livelink.csv",
              "glb": "face.glb", "preview": "preview.mp4", "overlay": "overlay.mp4"}


@dataclasses.dataclass
class RetargetOptions:
    """Everything `run_retarget` needs (the command line, resolved).

    Attributes:
      source: video path, image folder or image path (a webcam is recorded to a file first).
      output: output folder.
      method: "fit" or "net".
      fit_config: FitConfig for "fit".
      checkpoint: training workdir for "net".
      face_model: face model spec, or None for the default.
      face: which face (0 = largest).
      max_frames: stop after N frames, or None.
      outputs: names from OUTPUTS to write (default all but the overlay).
      smoothing: One Euro settings (enabled or not).
      missing: "zero" or "hold", how frames without a face are filled.
      avatar: the user's .glb, or None.
      head_node: avatar node whose rotation follows the head, or None.
      livelink_eyes: "derived" or "zero".
      preview_size: panel side of the preview, pixels.
      progress: show progress bars.
    """
    source: str
    output: str
    method: str = "fit"
    fit_config: Any = None
    checkpoint: Optional[str] = None
    face_model: Optional[str] = None
    face: int = 0
    max_frames: Optional[int] = None
    outputs: Sequence[str] = DEFAULT_OUTPUTS
    smoothing: SmoothingConfig = SmoothingConfig()
    missing: str = "zero"
    avatar: Optional[str] = None
    head_node: Optional[str] = None
    livelink_eyes: str = "derived"
    preview_size: int = 224
    progress: bool = True


def parse_outputs(text: str) -> Tuple[str, ...]:
    """"csv,json,glb" -> ("csv", "json", "glb"), checking every name; "all" -> DEFAULT_OUTPUTS
    (every output but the fit overlay)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == ("all",):
        return DEFAULT_OUTPUTS
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown or not names:
        raise ValueError(f"--outputs takes a comma-separated list of {', '.join(OUTPUTS)} "
                         f"(or all), got {text!r}")
    return names


def avatar_output_path(output: str, avatar: str) -> str:
    """<output>/<avatar file stem>_animated.glb."""
    stem = os.path.splitext(os.path.basename(avatar))[0]
    return os.path.join(output, f"{stem}_animated.glb")


def _report_dict(report: RetargetReport) -> Dict[str, Any]:
    return {"matched": len(report.matched), "meshes": list(report.meshes),
            "matched_targets": [f"{m.mesh}/{m.target} <- {m.kind} {m.source}"
                                for m in report.matched],
            "missing_units": list(report.missing_units),
            "missing_arkit": list(report.missing_arkit),
            "unused_targets": list(report.unused_targets),
            "head_node": report.head_node}


def _rate(count: int, seconds: float) -> Optional[float]:
    return round(count / seconds, 3) if seconds > 0 else None


def _right_panel(options: RetargetOptions, estimate: VideoEstimate, model,
                 frame_track: FrameTrack, report: Optional[RetargetReport]):
    """The avatar panel when the avatar's mesh can be read, else our model from a 3/4 view."""
    if options.avatar:
        try:
            mesh = load_morph_mesh(options.avatar)
            name = os.path.splitext(os.path.basename(options.avatar))[0]
            return preview_module.avatar_panel(mesh, report, frame_track, f"avatar: {name}")
        except AvatarError as error:
            logging.warning("preview: showing the face model instead of the avatar (%s)", error)
    return preview_module.model_panel(model, estimate, frame_track)


def fit_quality(estimate: VideoEstimate) -> Dict[str, Optional[float]]:
    """NME (a fraction of the landmark box side) of the model's landmarks against the front
    end's, mean and 95th percentile over frames with a face, and the mean per-frame change of
    the expression weights (None where there is nothing to measure)."""
    detected = estimate.landmarks_detected[estimate.face_found]
    fitted = estimate.landmarks_fitted_image()[estimate.face_found]
    errors = nme(fitted, detected, box_size(landmark_box(detected)))
    errors = errors[np.isfinite(errors)]
    jitter = mean_abs_change(estimate.per_frame("expression"), estimate.face_found)
    if not len(errors):
        return {"nme_mean": None, "nme_p95": None,
                "expression_jitter": None if np.isnan(jitter) else jitter}
    return {"nme_mean": round(float(np.mean(errors)), 4),
            "nme_p95": round(float(np.percentile(errors, 95)), 4),
            "expression_jitter": None if np.isnan(jitter) else jitter}


def run_retarget(options: RetargetOptions, estimator=None) -> Tuple[int, Dict[str, Any]]:
    """Runs the whole command (module doc). Returns (exit status 0 or 1, the summary).

    `estimator` (default: `make_estimator` from the options) maps a source to a VideoEstimate
    and carries the face model in `estimator.model`.
    """
    unknown = [n for n in options.outputs if n not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose among {', '.join(OUTPUTS)}")
    if options.avatar and not os.path.isfile(options.avatar):
        raise FileNotFoundError(f"avatar file {options.avatar!r} does not exist; pass --avatar "
                                "path/to/character.glb")
    wanted = set(options.outputs)
    if not options.avatar:
        wanted.discard("avatar")
    start = time.perf_counter()
    estimator = estimator or make_estimator(options.method, options.fit_config,
                                            options.face_model, options.checkpoint)
    model = estimator.model
    estimate = estimator(options.source, face=options.face, max_frames=options.max_frames,
                         progress=options.progress)
    os.makedirs(options.output, exist_ok=True)
    t_export = time.perf_counter()
    frame_track = smooth_track(animation_track(estimate, missing=options.missing),
                               options.smoothing)
    written: Dict[str, List[str]] = {}
    failures: Dict[str, str] = {}
    extra: Dict[str, Any] = {}
    path_of = lambda name: os.path.join(options.output, FILE_NAMES[name])

    if "coefficients" in wanted:
        written["coefficients"] = list(save_coefficients(
            estimate, os.path.join(options.output, "coefficients")))
    if "csv" in wanted:
        write_csv(frame_track, path_of("csv"))
        written["csv"] = [path_of("csv")]
    if "json" in wanted:
        write_json(frame_track, path_of("json"), smoothing=options.smoothing.to_dict())
        written["json"] = [path_of("json")]
    if "livelink" in wanted:
        write_livelink_csv(frame_track, path_of("livelink"), eyes=options.livelink_eyes)
        written["livelink"] = [path_of("livelink")]
    if "glb" in wanted:
        extra["glb_check"] = write_face_glb(path_of("glb"), model, estimate.identity, frame_track)
        written["glb"] = [path_of("glb")]
    report = None
    if "avatar" in wanted:
        out = avatar_output_path(options.output, options.avatar)
        try:
            report = retarget_avatar(options.avatar, frame_track, out, head_node=options.head_node)
            written["avatar"] = [out]
            extra["avatar"] = _report_dict(report)
            for line in report.summary().splitlines():
                logging.info("avatar: %s", line)
        except AvatarError as error:
            failures["avatar"] = str(error)
            logging.error("avatar: %s", error)
    export_s = time.perf_counter() - t_export

    preview_s = 0.0
    if "preview" in wanted:
        t_preview = time.perf_counter()
        right = _right_panel(options, estimate, model, frame_track, report)
        frames = preview_module.preview_frames(estimate, frame_track, model, right,
                                               size=options.preview_size)
        preview_module.write_preview(path_of("preview"), frames, frame_track.fps,
                                     frame_track.n_frames, options.progress)
        written["preview"] = [path_of("preview")]
        preview_s = time.perf_counter() - t_preview
    if "overlay" in wanted:
        write_video(path_of("overlay"), preview_module.overlay_frames(estimate, model),
                    estimate.fps)
        written["overlay"] = [path_of("overlay")]

    n, n_found = estimate.n_frames, estimate.n_found
    timings = estimate.timings
    summary = {
        "input": options.source, "method": options.method, "face_model": estimate.face_model,
        "frames": n, "frames_with_face": n_found, "video_fps": estimate.fps,
        "missing": options.missing, "smoothing": options.smoothing.to_dict(),
        "phases": {
            "detect_crop": {"seconds": round(timings["detect_crop_s"], 2),
                            "frames_per_second": _rate(n, timings["detect_crop_s"])},
            "estimate": {"seconds": round(timings["estimate_s"], 2),
                         "frames_per_second": _rate(n_found, timings["estimate_s"])},
            "export": {"seconds": round(export_s, 2)},
            "preview": {"seconds": round(preview_s, 2),
                        "frames_per_second": _rate(n, preview_s) if preview_s else None},
            "total_seconds": round(time.perf_counter() - start, 2),
        },
        "fit_quality": fit_quality(estimate),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "outputs": {name: {os.path.basename(p): os.path.getsize(p) for p in paths}
                    for name, paths in written.items()},
        **extra,
        "failures": failures,
    }
    with open(os.path.join(options.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return (1 if failures else 0), summary
