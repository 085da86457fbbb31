"""`cpem-jax retarget` end to end: estimate -> smooth -> write every output -> summary.json.

Outputs (in `RetargetOptions.output`; `OUTPUTS` names them for `--outputs`):
  coefficients  coefficients.npz + coefficients.json  the estimator's CoefficientTrack
  csv           blendshapes.csv     52 ARKit weights, head pose, time, face flag per frame
  json          blendshapes.json    the same plus our units and the unsmoothed values ("raw")
  livelink      livelink.csv        Live Link Face CSV (Unreal / Blender importers)
  glb           face.glb            our face (fitted identity) with one morph target per unit and
                                    the animation (weights + head rotation) at the video's rate
  avatar        <name>_animated.glb the avatar with the animation on its morph targets (--avatar)
  preview       preview.mp4         input | face model | avatar (see preview)
and always summary.json: frames, frames with a face, seconds and frames per second of each
phase, output sizes, the avatar report and anything that failed.

An output that fails (an avatar without morph targets, say) is reported and the others are still
written: `run_retarget` then returns exit status 1. Problems that leave nothing to write (no face
anywhere, an unreadable input) raise and the command exits with status 2.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pygltflib

from cpem_jax.export.avatar import AvatarError, RetargetReport, retarget_avatar
from cpem_jax.export.csv_json import write_csv, write_json
from cpem_jax.export.gltf import write_glb
from cpem_jax.export.livelink import write_livelink_csv
from cpem_jax.export.schema import FrameTrack
from cpem_jax.export.smoothing import SmoothingConfig, smooth_track
from cpem_jax.retarget import estimate as estimate_module
from cpem_jax.retarget import preview as preview_module
from cpem_jax.retarget.gltf_mesh import load_morph_mesh

OUTPUTS = ("coefficients", "csv", "json", "livelink", "glb", "avatar", "preview")
FILE_NAMES = {"csv": "blendshapes.csv", "json": "blendshapes.json", "livelink": "livelink.csv",
              "glb": "face.glb", "preview": "preview.mp4"}


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
      outputs: names from OUTPUTS to write.
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
    outputs: Sequence[str] = OUTPUTS
    smoothing: SmoothingConfig = SmoothingConfig()
    missing: str = "zero"
    avatar: Optional[str] = None
    head_node: Optional[str] = None
    livelink_eyes: str = "derived"
    preview_size: int = 224
    progress: bool = True


def parse_outputs(text: str) -> Tuple[str, ...]:
    """"csv,json,glb" -> ("csv", "json", "glb"), checking every name; "all" -> OUTPUTS."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == ("all",):
        return OUTPUTS
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown or not names:
        raise ValueError(f"--outputs takes a comma-separated list of {', '.join(OUTPUTS)} "
                         f"(or all), got {text!r}")
    return names


def avatar_output_path(output: str, avatar: str) -> str:
    """<output>/<avatar file stem>_animated.glb."""
    stem = os.path.splitext(os.path.basename(avatar))[0]
    return os.path.join(output, f"{stem}_animated.glb")


def face_glb(path: str, model, identity: np.ndarray, track: FrameTrack) -> Dict[str, int]:
    """Writes face.glb and reads it back with pygltflib to check it.

    Returns:
      {"targets", "keyframes", "vertices"} as read back from the file.
    Raises:
      RuntimeError: the file read back does not hold what was written.
    """
    mesh = preview_module.face_model_mesh(model, identity)
    write_glb(path, mesh.vertices, mesh.triangles, mesh.deltas, model.expression_names, track)
    gltf = pygltflib.GLTF2.load(path)
    targets = len(gltf.meshes[0].primitives[0].targets or [])
    animation = gltf.animations[0] if gltf.animations else None
    keyframes = gltf.accessors[animation.samplers[0].input].count if animation else 0
    vertices = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION].count
    if targets != len(model.expression_names) or keyframes != track.n_frames:
        raise RuntimeError(f"{path} reads back with {targets} targets and {keyframes} keyframes, "
                           f"expected {len(model.expression_names)} and {track.n_frames}")
    return {"targets": targets, "keyframes": keyframes, "vertices": vertices}


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


def _right_panel(options: RetargetOptions, est, frame_track: FrameTrack,
                 report: Optional[RetargetReport]):
    """The avatar panel when the avatar's mesh can be read, else our model from a 3/4 view."""
    if options.avatar:
        try:
            mesh = load_morph_mesh(options.avatar)
            name = os.path.splitext(os.path.basename(options.avatar))[0]
            return preview_module.avatar_panel(mesh, report, frame_track, f"avatar: {name}")
        except AvatarError as error:
            logging.warning("preview: showing the face model instead of the avatar (%s)", error)
    return preview_module.model_panel(est.model, est.fit.track, frame_track)


def run_retarget(options: RetargetOptions) -> Tuple[int, Dict[str, Any]]:
    """Runs the whole command (module doc). Returns (exit status 0 or 1, the summary)."""
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
    est = estimate_module.estimate(options.source, options.method, options.fit_config,
                                   options.face_model, options.checkpoint, options.face,
                                   options.max_frames, options.progress)
    coefficients = est.fit.track
    os.makedirs(options.output, exist_ok=True)
    t_export = time.perf_counter()
    frame_track = smooth_track(coefficients.to_frame_track(missing=options.missing),
                               options.smoothing)
    written: Dict[str, List[str]] = {}
    failures: Dict[str, str] = {}
    extra: Dict[str, Any] = {}
    path_of = lambda name: os.path.join(options.output, FILE_NAMES[name])

    if "coefficients" in wanted:
        written["coefficients"] = list(coefficients.save(os.path.join(options.output,
                                                                      "coefficients")))
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
        extra["glb_check"] = face_glb(path_of("glb"), est.model,
                                      preview_module.shared_identity(coefficients), frame_track)
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
        right = _right_panel(options, est, frame_track, report)
        missing = coefficients.frame_index[~coefficients.face_found]
        whole = preview_module.whole_frames(options.source, missing, options.preview_size,
                                            options.max_frames)
        frames = preview_module.preview_frames(coefficients, est.fit.crops, frame_track,
                                               est.model, est.camera, right,
                                               size=options.preview_size, no_face_images=whole)
        preview_module.write_preview(path_of("preview"), frames, frame_track.fps,
                                     frame_track.n_frames, options.progress)
        written["preview"] = [path_of("preview")]
        preview_s = time.perf_counter() - t_preview

    n, n_found = coefficients.n_frames, int(coefficients.face_found.sum())
    timings = est.fit.timings
    summary = {
        "input": options.source, "method": options.method, "face_model": coefficients.face_model,
        "frames": n, "frames_with_face": n_found, "video_fps": coefficients.fps,
        "missing": options.missing, "smoothing": options.smoothing.to_dict(),
        "phases": {
            "detect_crop": {"seconds": round(timings["detect_crop_s"], 2),
                            "frames_per_second": _rate(n, timings["detect_crop_s"])},
            "estimate": {"seconds": round(timings["fit_s"], 2),
                         "frames_per_second": _rate(n_found, timings["fit_s"])},
            "export": {"seconds": round(export_s, 2)},
            "preview": {"seconds": round(preview_s, 2),
                        "frames_per_second": _rate(n, preview_s) if preview_s else None},
            "total_seconds": round(time.perf_counter() - start, 2),
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "outputs": {name: {os.path.basename(p): os.path.getsize(p) for p in paths}
                    for name, paths in written.items()},
        **extra,
        "failures": failures,
    }
    with open(os.path.join(options.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return (1 if failures else 0), summary
