"""`cpem-jax retarget` end to end: estimate -> smooth -> write every output -> summary.json.

Outputs (in `RetargetOptions.output`; `OUTPUTS` names them for `--outputs`):
  coefficients  coefficients.npz + coefficients.json  the VideoEstimate, exact (export.coefficients)
  csv           blendshapes.csv     52 ARKit weights, head pose, time, face flag per frame
  json          blendshapes.json    the same plus our units and the unsmoothed values ("raw")
  livelink      livelink.csv        Live Link Face CSV at the app's 60 fps (Unreal / Blender)
  glb           face.glb            our face (fitted identity) with the 52 ARKit morph targets
                                    (or one per unit, `glb_names="units"`) and the animation
                                    (weights + head rotation) at the video's rate
  avatar        <name>_animated.glb the avatar with the animation on its morph targets (--avatar)
  preview       preview.mp4         input | face model | avatar (see preview)
  overlay       overlay.mp4         crop | model rendered over it | landmarks: the fit's quality
and always summary.json: frames, frames with a face, seconds and frames per second of each
phase, the landmark error of the model against the front end (NME), output sizes, the avatar
report and anything that failed.

The walk of one video: `estimate_video` (cpem_jax.estimation: read, detect, crop, estimate, one
pass over the frames) returns a `VideoEstimate`; every writer of `cpem_jax.export` and the
preview consume it. A live run (`--live`, `--realtime`, `--webcam N`) goes frame by frame through
`cpem_jax.retarget.live` instead, with the same output-folder and avatar checks.

Bad input is refused before any work where it can be: the output folder (`check_output_folder`:
not a file, not below a file, writable), the options, and the avatar (`avatar.check_avatar`:
readable, with morph targets of which at least one is driven, and the head node). Problems that
leave nothing to write (no face anywhere, an unreadable input, a bad folder or option) raise and
the command exits with status 2. An output that fails (an unusable avatar, a full disk) is
reported and the others are still written: `run_retarget` then returns exit status 1.

Files: every output is written under a temporary name and renamed when complete, and the
summary.json is written last (`retarget.output_files.OutputFiles`). `RunState`
(`retarget.run_state`) follows the run so that an interrupted run can say how far it got and
write a summary of what is complete (`RunState.finish_interrupted`, called by the command's
Ctrl-C handler).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from cpem_jax.estimation.estimate import default_landmarker, make_estimator
from cpem_jax.estimation.video_estimate import VideoEstimate
from cpem_jax.evaluation.landmarks import box_size, landmark_box, nme
from cpem_jax.evaluation.temporal import mean_abs_change
from cpem_jax.export import (AvatarError, FrameTrack, RetargetReport, SmoothingConfig,
                             animation_track, check_avatar, load_avatar_map, load_morph_mesh,
                             retarget_avatar, save_coefficients, smooth_track, write_csv,
                             write_face_glb, write_json, write_livelink_csv)
from cpem_jax.export.livelink import APP_FPS
from cpem_jax.io.video_writer import write_video
from cpem_jax.retarget import preview as preview_module
from cpem_jax.retarget.output_files import SUMMARY, OutputFiles, check_output_folder
from cpem_jax.retarget.run_state import CountingLandmarker, RunState

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
      checkpoint: for "net", a training workdir or a weights file (None: the shipped weights).
      face_model: face model spec, or None for the default.
      landmarker: the front end by name ("auto", "mediapipe", "dlib").
      face: which face (0 = largest).
      max_frames: stop after N frames, or None.
      outputs: names from OUTPUTS to write (default all but the overlay).
      smoothing: One Euro settings (enabled or not).
      missing: "zero" or "hold", how frames without a face are filled.
      avatar: the user's .glb, or None.
      avatar_map: JSON file {avatar target name: ARKit or unit name}, or None.
      head_node: avatar node whose rotation follows the head, or None.
      livelink_eyes: "derived" or "zero".
      livelink_fps: rows per second of livelink.csv (the app's 60 by default).
      glb_names: "arkit" (52 ARKit targets) or "units" (one per model unit) in face.glb.
      preview_size: panel side of the preview, pixels.
      progress: show progress bars.
    """
    source: str
    output: str
    method: str = "fit"
    fit_config: Any = None
    checkpoint: Optional[str] = None
    face_model: Optional[str] = None
    landmarker: str = "auto"
    face: int = 0
    max_frames: Optional[int] = None
    outputs: Sequence[str] = DEFAULT_OUTPUTS
    smoothing: SmoothingConfig = SmoothingConfig()
    missing: str = "zero"
    avatar: Optional[str] = None
    avatar_map: Optional[str] = None
    head_node: Optional[str] = None
    livelink_eyes: str = "derived"
    livelink_fps: float = APP_FPS
    glb_names: str = "arkit"
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


def avatar_report_dict(report: RetargetReport) -> Dict[str, Any]:
    """The summary's `avatar` object (also written by the live run, `retarget.live`)."""
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
                 frame_track: FrameTrack, report: Optional[RetargetReport],
                 target_map: Optional[Mapping[str, str]], avatar_usable: bool):
    """The avatar panel when the avatar's mesh can be read and is driven, else our model from a
    3/4 view."""
    if options.avatar and avatar_usable:
        try:
            mesh = load_morph_mesh(options.avatar)
            name = os.path.splitext(os.path.basename(options.avatar))[0]
            return preview_module.avatar_panel(mesh, report, frame_track, f"avatar: {name}",
                                               target_map)
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


def check_avatar_first(options: RetargetOptions, wanted: set, unit_names: Sequence[str],
                       failures: Dict[str, str]) -> Optional[Mapping[str, str]]:
    """The avatar checks that need no track, before any work (module doc; the live run,
    `retarget.live`, makes them too). Returns the
    `--avatar-map` table. An unusable avatar is recorded in `failures` and dropped from
    `wanted`; when it was the only output asked for, its AvatarError is raised instead."""
    if not options.avatar:
        return None
    target_map = (load_avatar_map(options.avatar_map, unit_names) if options.avatar_map
                  else None)
    if "avatar" not in wanted and "preview" not in wanted:
        return target_map
    try:
        check_avatar(options.avatar, unit_names, target_map, options.head_node)
    except AvatarError as error:
        if not wanted - {"avatar"}:
            raise
        failures["avatar"] = str(error)
        wanted.discard("avatar")
        logging.error("avatar not written: %s (the other outputs are made; stop with Ctrl-C "
                      "to fix the avatar first)", error)
    return target_map


def run_retarget(options: RetargetOptions, estimator=None,
                 state: Optional[RunState] = None) -> Tuple[int, Dict[str, Any]]:
    """Runs the whole command (module doc). Returns (exit status 0 or 1, the summary).

    `estimator` (default: `make_estimator` from the options, with a `CountingLandmarker`) maps a
    source to a VideoEstimate and carries the face model in `estimator.model`. `state` is
    updated as the run goes, for a Ctrl-C handler.
    """
    state = state or RunState()
    unknown = [n for n in options.outputs if n not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose among {', '.join(OUTPUTS)}")
    if options.avatar and not os.path.isfile(options.avatar):
        raise FileNotFoundError(f"avatar file {options.avatar!r} does not exist; pass --avatar "
                                "path/to/character.glb")
    check_output_folder(options.output)
    wanted = set(options.outputs)
    if not options.avatar:
        wanted.discard("avatar")
    failures: Dict[str, str] = {}
    start = time.perf_counter()
    state.phase = "loading the face model and the front end"
    if estimator is None:
        state.landmarker = CountingLandmarker(default_landmarker(options.landmarker))
        estimator = make_estimator(options.method, options.fit_config, options.face_model,
                                   options.checkpoint, landmarker=state.landmarker)
    model = estimator.model
    target_map = check_avatar_first(options, wanted, model.expression_names, failures)
    avatar_usable = "avatar" not in failures

    files = OutputFiles(options.output)
    files.remove_stale()
    state.files = files
    state.summary = {"input": options.source, "method": options.method}
    state.phase = "detecting and estimating"
    estimate = estimator(options.source, face=options.face, max_frames=options.max_frames,
                         progress=options.progress)
    state.n_frames = estimate.n_frames
    state.summary.update(frames=estimate.n_frames, frames_with_face=estimate.n_found,
                         video_fps=estimate.fps)
    t_export = time.perf_counter()
    frame_track = smooth_track(animation_track(estimate, missing=options.missing),
                               options.smoothing)
    extra: Dict[str, Any] = {}
    path_of = lambda name: os.path.join(options.output, FILE_NAMES[name])

    def write(name: str, finals: Sequence[str], writer) -> None:
        """Runs writer(temporary paths) for one output; an OSError or RuntimeError is that
        output's failure, the others are still written."""
        state.phase = f"writing {', '.join(os.path.basename(p) for p in finals)}"
        try:
            with files.writing(name, finals) as temps:
                writer(temps)
        except OSError as error:
            failures[name] = f"{error.strerror or error} ({error.filename or finals[0]})"
            logging.error("%s not written: %s", name, failures[name])
        except RuntimeError as error:  # a file that reads back wrong, a render that fails
            failures[name] = str(error)
            logging.error("%s not written: %s", name, failures[name])

    if "coefficients" in wanted:
        stem = os.path.join(options.output, "coefficients")
        write("coefficients", [stem + ".npz", stem + ".json"],
              lambda temps: save_coefficients(estimate, temps[0][:-len(".npz")]))
    if "csv" in wanted:
        write("csv", [path_of("csv")], lambda temps: write_csv(frame_track, temps[0]))
    if "json" in wanted:
        write("json", [path_of("json")], lambda temps: write_json(
            frame_track, temps[0], smoothing=options.smoothing.to_dict()))
    if "livelink" in wanted:
        write("livelink", [path_of("livelink")], lambda temps: extra.update(
            livelink_rows=write_livelink_csv(frame_track, temps[0], eyes=options.livelink_eyes,
                                             fps=options.livelink_fps),
            livelink_fps=options.livelink_fps))
    if "glb" in wanted:
        write("glb", [path_of("glb")], lambda temps: extra.update(glb_check=write_face_glb(
            temps[0], model, estimate.identity, frame_track, names=options.glb_names)))
    report = None
    if "avatar" in wanted:
        out = avatar_output_path(options.output, options.avatar)
        try:
            def animate(temps):
                nonlocal report
                report = retarget_avatar(options.avatar, frame_track, temps[0],
                                         head_node=options.head_node, target_map=target_map)
            write("avatar", [out], animate)
            if report is not None:
                extra["avatar"] = avatar_report_dict(report)
                for line in report.summary().splitlines():
                    logging.info("avatar: %s", line)
        except AvatarError as error:
            failures["avatar"] = str(error)
            logging.error("avatar: %s", error)
    export_s = time.perf_counter() - t_export

    preview_s = 0.0
    if "preview" in wanted:
        t_preview = time.perf_counter()
        right = _right_panel(options, estimate, model, frame_track, report, target_map,
                             avatar_usable)
        frames = preview_module.preview_frames(estimate, frame_track, model, right,
                                               size=options.preview_size)
        write("preview", [path_of("preview")], lambda temps: preview_module.write_preview(
            temps[0], frames, frame_track.fps, frame_track.n_frames, options.progress))
        preview_s = time.perf_counter() - t_preview
    if "overlay" in wanted:
        write("overlay", [path_of("overlay")], lambda temps: write_video(
            temps[0], preview_module.overlay_frames(estimate, model), estimate.fps))

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
        "outputs": files.sizes(),
        **extra,
        "failures": failures,
    }
    state.phase = f"writing {SUMMARY}"
    with files.lock:
        files.write_json(SUMMARY, summary)
    state.phase = "done"
    return (1 if failures else 0), summary
