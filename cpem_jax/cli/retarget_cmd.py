"""`cpem-jax retarget`: a video, images or a webcam -> ARKit CSV/JSON, Live Link CSV, glTF, avatar.

The work is in `cpem_jax.retarget.pipeline`; this module turns the command line into
`RetargetOptions`, records a webcam first when asked, and prints what was written.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from cpem_jax.cli.options import (add_fit_options, fit_config_from_args, stop_on_interrupt,
                                  warnings_as_log_lines)
from cpem_jax.export.face_glb import GLB_NAMES
from cpem_jax.export.livelink import APP_FPS
from cpem_jax.export.smoothing import OneEuroParams, SmoothingConfig

EXIT_STATUS_HELP = ("exit status: 0 every requested output written; 1 some output failed (e.g. "
                    "an avatar none of whose morph targets we drive), the others written; 2 "
                    "nothing could be done (no face, unreadable input, bad option or output "
                    "folder), with one line saying why; 130 stopped by Ctrl-C (complete outputs "
                    "kept and listed in summary.json)")


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where it says something (not None/False, not already in
    the help text)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def register(subparsers) -> None:
    defaults = SmoothingConfig()
    p = subparsers.add_parser(
        "retarget", help="estimate facial motion and write ARKit CSV/JSON, Live Link CSV, glTF, "
        "an animated avatar and a preview",
        description="Detects one face (the largest unless --face N), estimates expression and "
        "head pose in every frame, smooths them (One Euro filter) and writes them as ARKit "
        "blendshape CSV/JSON, a Live Link Face CSV, a glTF face with morph-target animation, "
        "your avatar animated by morph target name (--avatar) and a side-by-side preview MP4.",
        epilog=EXIT_STATUS_HELP, formatter_class=_DefaultsFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("input", nargs="?", help="video file, folder of images, or one image")
    source.add_argument("--webcam", type=int, metavar="N",
                        help="record camera N (until --max-frames or Ctrl-C) to "
                        "OUTPUT/webcam_capture.mp4, then process that file: the fit needs the "
                        "whole sequence, so a camera is not processed live")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--method", choices=("fit", "net"), default="fit",
                   help="fit: per-video fitting (no trained weights needed); net: the trained "
                   "network frame by frame (needs --checkpoint)")
    p.add_argument("--checkpoint", metavar="DIR", help="training workdir for --method net")
    p.add_argument("--face-model", help="model .npz or ICT archive (default: CPEM_FACE_MODEL "
                   "or ../shared/assets/ICT-FaceKit-master.zip)")
    p.add_argument("--face", type=int, default=0, help="which face: 0 = the largest, 1 = the "
                   "next largest, ...")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--outputs", default="all", help="comma-separated subset of coefficients, "
                   "csv, json, livelink, glb, avatar, preview, overlay (the fit overlay video); "
                   "all = every one but overlay")
    p.add_argument("--no-preview", action="store_true", help="skip the preview video")
    p.add_argument("--preview-size", type=int, default=224, help="preview panel side, pixels")
    p.add_argument("--avatar", metavar="GLB", help="your character (.glb/.gltf with morph "
                   "targets, ARKit or ICT names): writes OUTPUT/<name>_animated.glb")
    p.add_argument("--avatar-map", metavar="JSON", help="for an avatar whose shape keys have "
                   "other names: a JSON object {their name: ARKit or face-model unit name}, "
                   'e.g. {"Smile": "mouthSmileLeft"}')
    p.add_argument("--head-node", help="avatar node (bone) whose rotation follows the head; "
                   "default: no head rotation is written into the avatar")
    p.add_argument("--missing", choices=("zero", "hold"), default="zero",
                   help="frames without a face: zero = neutral face at rest, hold = repeat the "
                   "last frame with a face (face_found is 0 in both)")
    p.add_argument("--livelink-eyes", choices=("derived", "zero"), default="derived",
                   help="Live Link eye angles from the eyeLook* weights, or 0")
    p.add_argument("--livelink-fps", type=float, default=APP_FPS,
                   help="rows per second of livelink.csv (the iPhone app records at 60)")
    p.add_argument("--glb-names", choices=GLB_NAMES, default="arkit",
                   help="face.glb morph targets: arkit = the 52 ARKit blendshapes (merged as in "
                   "the CSV), units = one per face-model unit under its own name")
    smoothing = p.add_argument_group("temporal smoothing (One Euro filter; cutoffs in Hz, "
                                     "beta in 1/unit; raw values stay in blendshapes.json)")
    smoothing.add_argument("--no-smoothing", action="store_true", help="write unsmoothed values")
    for name, unit in (("expression", "weight"), ("rotation", "radian"),
                       ("translation", "cm")):
        params = getattr(defaults, name)
        smoothing.add_argument(f"--{name}-min-cutoff", type=float, default=params.min_cutoff,
                               help=f"{name}: cutoff of a still signal (lower = smoother)")
        smoothing.add_argument(f"--{name}-beta", type=float, default=params.beta,
                               help=f"{name}: cutoff rise per {unit}/s of speed (higher = "
                               "less lag in fast motion)")
    add_fit_options(p.add_argument_group("per-video fitting (--method fit)"))
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def smoothing_from_args(args: argparse.Namespace) -> SmoothingConfig:
    """The SmoothingConfig the smoothing options describe."""
    base = SmoothingConfig()
    params = {name: OneEuroParams(min_cutoff=getattr(args, f"{name}_min_cutoff"),
                                  beta=getattr(args, f"{name}_beta"),
                                  d_cutoff=getattr(base, name).d_cutoff)
              for name in ("expression", "rotation", "translation")}
    return SmoothingConfig(enabled=not args.no_smoothing, **params)


def options_from_args(args: argparse.Namespace, source: str):
    """RetargetOptions from the parsed command line."""
    from cpem_jax.retarget.pipeline import RetargetOptions, parse_outputs
    outputs = parse_outputs(args.outputs)
    if args.no_preview:
        outputs = tuple(o for o in outputs if o != "preview")
    if args.face < 0 or (args.max_frames is not None and args.max_frames < 1):
        raise ValueError("--face must be >= 0 and --max-frames >= 1")
    if args.preview_size < 16:
        raise ValueError(f"--preview-size must be at least 16 pixels, got {args.preview_size}")
    if "avatar" in outputs and args.outputs != "all" and not args.avatar:
        raise ValueError("--outputs avatar needs --avatar character.glb")
    if args.avatar_map and not args.avatar:
        raise ValueError("--avatar-map needs --avatar character.glb")
    if not args.livelink_fps > 0:
        raise ValueError(f"--livelink-fps must be positive, got {args.livelink_fps}")
    return RetargetOptions(
        source=source, output=args.output, method=args.method,
        fit_config=fit_config_from_args(args) if args.method == "fit" else None,
        checkpoint=args.checkpoint, face_model=args.face_model,
        landmarker=getattr(args, "landmarker", "auto"), face=args.face,
        max_frames=args.max_frames, outputs=outputs, smoothing=smoothing_from_args(args),
        missing=args.missing, avatar=args.avatar, avatar_map=args.avatar_map,
        head_node=args.head_node, livelink_eyes=args.livelink_eyes,
        livelink_fps=args.livelink_fps, glb_names=args.glb_names,
        preview_size=args.preview_size, progress=not args.quiet)


def run(args: argparse.Namespace) -> int:
    from cpem_jax.retarget.pipeline import RunState, check_output_folder, run_retarget
    source = args.input
    if source is not None and not os.path.exists(source):
        raise FileNotFoundError(f"input {source!r} does not exist; give a video, a folder of "
                                "images, an image, or --webcam N")
    options = options_from_args(args, source or "")
    check_output_folder(args.output)
    with warnings_as_log_lines():
        if args.webcam is not None:
            from cpem_jax.retarget.webcam import capture_webcam
            options.source = os.path.join(args.output, "webcam_capture.mp4")
            capture_webcam(args.webcam, options.source, args.max_frames, not args.quiet)
        state = RunState()
        with stop_on_interrupt(state, progress=not args.quiet):
            status, summary = run_retarget(options, state=state)
    for name, files in summary["outputs"].items():
        for file, size in files.items():
            print(f"wrote {os.path.join(args.output, file)} ({size / 1024:.1f} KiB)")
    if "avatar" in summary:
        avatar = summary["avatar"]
        print(f"avatar: {avatar['matched']} targets driven; lacks {len(avatar['missing_units'])} "
              f"of our units ({', '.join(avatar['missing_units']) or 'none'}); "
              f"{len(avatar['unused_targets'])} targets unused "
              f"({', '.join(avatar['unused_targets']) or 'none'})")
    phases = summary["phases"]
    preview_fps = phases["preview"]["frames_per_second"]
    print(f"{summary['frames']} frames, {summary['frames_with_face']} with a face; "
          f"detect {phases['detect_crop']['frames_per_second']} fps, estimate "
          f"{phases['estimate']['frames_per_second']} fps, preview "
          f"{'skipped' if preview_fps is None else f'{preview_fps} fps'}; summary in "
          f"{os.path.join(args.output, 'summary.json')}")
    for name, message in summary["failures"].items():
        print(f"cpem-jax: {name} not written: {message}", file=sys.stderr)
    logging.debug("%s", json.dumps(summary))
    return status
