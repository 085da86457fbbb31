"""`cpem-jax retarget`: a video, images or a webcam -> ARKit CSV/JSON, Live Link CSV, glTF, avatar.

The work is in `cpem_jax.retarget.pipeline` (offline: the whole input, then every output) and
`cpem_jax.retarget.live` (`--live`, the default for `--webcam`: frame by frame as they arrive);
this module turns the command line into their options and prints what was written.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from cpem_jax.cli.options import (EXIT_INTERRUPTED, add_compile_cache_option, add_fit_options,
                                  enable_compile_cache, fit_config_from_args, stop_on_interrupt,
                                  warnings_as_log_lines)
from cpem_jax.export.face_glb import GLB_NAMES
from cpem_jax.export.livelink import APP_FPS
from cpem_jax.export.smoothing import OneEuroParams, SmoothingConfig
from cpem_jax.export.vmc import DEFAULT_PORT, NAME_STYLES

DEFAULT_CALIBRATION_FRAMES = 40
DEFAULT_LIVE_ITERATIONS = 30

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
                        help="camera N, processed live (see --live) until --max-frames, Ctrl-C "
                        "or the preview window is closed; with --offline, recorded to "
                        "OUTPUT/webcam_capture.mp4 first and then fitted as a file")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--method", choices=("fit", "net"), default="fit",
                   help="fit: per-video fitting (no trained weights needed); net: the trained "
                   "network frame by frame (the weights shipped with cpem-jax, or --checkpoint)")
    p.add_argument("--checkpoint", metavar="PATH", help="for --method net: a training workdir or "
                   "a weights file (cpem-jax model export-net)")
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
    live = p.add_argument_group(
        "live (each frame estimated as it arrives, outputs appended as they go; the default "
        "for --webcam)")
    live.add_argument("--live", action="store_true",
                      help="process the input frame by frame: an identity calibrated on the "
                      "first frames (or --identity), then a landmark fit per frame; writes "
                      "blendshapes.csv/.jsonl and livelink.csv row by row, then "
                      "blendshapes.json, face.glb and the avatar at the end")
    live.add_argument("--realtime", action="store_true",
                      help="replay the video file at its real rate (implies --live): frames "
                      "the estimator has no time for are dropped, as with a camera")
    live.add_argument("--offline", action="store_true",
                      help="with --webcam: record first, then fit the recording as a file")
    live.add_argument("--identity", metavar="PROFILE",
                      help="identity profile from `cpem-jax calibrate` (no live calibration)")
    live.add_argument("--calibration-frames", type=int, default=DEFAULT_CALIBRATION_FRAMES,
                      help="frames with a face collected for the live identity calibration "
                      "(until it is done, frames are fitted with the mean face)")
    live.add_argument("--vmc", metavar="HOST:PORT",
                      help=f"stream every frame to a VMC receiver (VSeeFace, VNyan, Warudo, "
                      f"...) over OSC/UDP; port {DEFAULT_PORT} when left out")
    live.add_argument("--vmc-names", choices=NAME_STYLES, default="perfectsync",
                      help="blendshape names sent: perfectsync (EyeBlinkLeft) or arkit "
                      "(eyeBlinkLeft)")
    add_compile_cache_option(p)
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


def is_live(args: argparse.Namespace) -> bool:
    """Whether the command line asks for a live run (checking the live flags' combinations;
    a bad one raises ValueError with one line)."""
    webcam = args.webcam is not None
    if args.offline and not webcam:
        raise ValueError("--offline goes with --webcam (a file is processed offline unless "
                         "--live or --realtime is given)")
    if args.offline and (args.live or args.realtime):
        raise ValueError("--offline and --live/--realtime exclude each other")
    if args.realtime and webcam:
        raise ValueError("--realtime replays a video file at its rate; a camera is live already")
    live = args.live or args.realtime or (webcam and not args.offline)
    if live and args.method != "fit":
        raise ValueError("a live run fits the face model per frame; --method net is offline "
                         "only (drop --live/--realtime, or --offline for a webcam)")
    if not live:
        named = [flag for flag, on in (("--identity", args.identity), ("--vmc", args.vmc),
                                       ("--calibration-frames", args.calibration_frames
                                        != DEFAULT_CALIBRATION_FRAMES)) if on]
        if named:
            raise ValueError(f"{', '.join(named)} belong to live runs; add --live (or "
                             "--realtime, or use --webcam)")
    if args.calibration_frames < 1:
        raise ValueError(f"--calibration-frames must be >= 1, got {args.calibration_frames}")
    return live


def live_options_from_args(args: argparse.Namespace):
    """LiveOptions from the parsed command line."""
    from cpem_jax.estimation.streaming import StreamConfig
    from cpem_jax.export.vmc import parse_address
    from cpem_jax.retarget.live import LiveOptions
    if args.iterations_scale <= 0:
        raise ValueError(f"--iterations-scale must be positive, got {args.iterations_scale}")
    if args.identity and not os.path.isfile(args.identity):
        raise FileNotFoundError(f"identity profile {args.identity!r} does not exist; make one "
                                f"with `cpem-jax calibrate VIDEO -o {args.identity}`")
    iterations = max(1, int(round(DEFAULT_LIVE_ITERATIONS * args.iterations_scale)))
    return LiveOptions(
        webcam=args.webcam, realtime=args.realtime,
        vmc=parse_address(args.vmc) if args.vmc else None, vmc_names=args.vmc_names,
        identity=args.identity, window=False if args.no_preview else None,
        stream=StreamConfig(size=args.size, iterations=iterations,
                            calibration_frames=args.calibration_frames))


def run(args: argparse.Namespace) -> int:
    from cpem_jax.retarget.output_files import check_output_folder
    from cpem_jax.retarget.pipeline import run_retarget
    from cpem_jax.retarget.run_state import RunState
    source = args.input
    if source is not None and not os.path.exists(source):
        raise FileNotFoundError(f"input {source!r} does not exist; give a video, a folder of "
                                "images, an image, or --webcam N")
    live = is_live(args)
    options = options_from_args(args, source or "")
    if live:
        from cpem_jax.retarget.live import live_outputs
        options.outputs = live_outputs(options.outputs, explicit=args.outputs != "all")
        live_options = live_options_from_args(args)
    check_output_folder(args.output)
    enable_compile_cache(args)
    if live:
        return run_live_command(args, options, live_options)
    with warnings_as_log_lines():
        if args.webcam is not None:
            from cpem_jax.retarget.webcam import capture_webcam
            options.source = os.path.join(args.output, "webcam_capture.mp4")
            capture_webcam(args.webcam, options.source, args.max_frames, not args.quiet)
        state = RunState()
        with stop_on_interrupt(state, progress=not args.quiet):
            status, summary = run_retarget(options, state=state)
    print_written(args.output, summary)
    phases = summary["phases"]
    preview_fps = phases["preview"]["frames_per_second"]
    print(f"{summary['frames']} frames, {summary['frames_with_face']} with a face; "
          f"detect {phases['detect_crop']['frames_per_second']} fps, estimate "
          f"{phases['estimate']['frames_per_second']} fps, preview "
          f"{'skipped' if preview_fps is None else f'{preview_fps} fps'}; summary in "
          f"{os.path.join(args.output, 'summary.json')}")
    print_failures(summary)
    logging.debug("%s", json.dumps(summary))
    return status


def run_live_command(args: argparse.Namespace, options, live_options) -> int:
    """`retarget --live` / `--realtime` / `--webcam N`: runs `retarget.live.run_live` and prints
    what it wrote and how fast it went."""
    from cpem_jax.retarget.live import run_live
    from cpem_jax.retarget.run_state import LiveRunState, interrupted_line
    state = LiveRunState()
    with warnings_as_log_lines(), stop_on_interrupt(state, progress=False):
        status, summary = run_live(options, live_options, state=state)
    print_written(args.output, summary)
    stats = summary["live"]
    print(f"live: {stats['frames_processed']} frames ({summary['frames_with_face']} with a face) "
          f"at {stats['frames_per_second']} frames/s from a {stats['source_fps']} fps source, "
          f"{stats['dropped_frames']} dropped; latency median {stats['latency_ms_median']} ms, "
          f"p95 {stats['latency_ms_p95']} ms; CPU {stats['cpu_ms_per_frame']} ms/frame; first "
          f"output after {stats['first_output_s']} s; summary in "
          f"{os.path.join(args.output, 'summary.json')}")
    print_failures(summary)
    logging.debug("%s", json.dumps(summary))
    if status == EXIT_INTERRUPTED:
        print(f"cpem-jax: {interrupted_line(stats['frames_processed'], 'live', summary['outputs'])}",
              file=sys.stderr)
    return status


def print_written(folder: str, summary) -> None:
    for name, files in summary["outputs"].items():
        for file, size in files.items():
            print(f"wrote {os.path.join(folder, file)} ({size / 1024:.1f} KiB)")
    if "avatar" in summary:
        avatar = summary["avatar"]
        print(f"avatar: {avatar['matched']} targets driven; lacks {len(avatar['missing_units'])} "
              f"of our units ({', '.join(avatar['missing_units']) or 'none'}); "
              f"{len(avatar['unused_targets'])} targets unused "
              f"({', '.join(avatar['unused_targets']) or 'none'})")


def print_failures(summary) -> None:
    for name, message in summary["failures"].items():
        what = "" if name in ("face", "vmc") else f"{name} not written: "
        print(f"cpem-jax: {what}{message}", file=sys.stderr)
