"""`cpem-jax fit`: per-video fitting with a locked identity, for checking and reusing the fit.

A shortcut of `cpem-jax retarget INPUT -o OUT --method fit --outputs coefficients,overlay`: the
same code path (one estimator, one VideoEstimate, the same writers), with the outputs a
researcher wants from a fit (the exact coefficients and an overlay video that shows how well the
model follows the face) instead of the animation exports.
"""
from __future__ import annotations

import argparse
import json

from cpem_jax.cli.options import (add_fit_options, fit_config_from_args, stop_on_interrupt,
                                  warnings_as_log_lines)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit the face model to a video, a folder of images or an image",
        description="Detects and follows one face, fits one identity for the whole input and "
        "per-frame expression, pose and lighting; writes coefficients (.npz + .json) and an "
        "overlay video. Same as `cpem-jax retarget INPUT -o OUT --method fit --outputs "
        "coefficients,overlay`.")
    p.add_argument("input", help="video file, folder of images, or one image")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--face-model", help="model .npz or ICT archive (default: CPEM_FACE_MODEL "
                   "or ../shared/assets/ICT-FaceKit-master.zip)")
    p.add_argument("--face", type=int, default=0, help="which face: 0 = largest (default)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    add_fit_options(p)
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay video")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from cpem_jax.export import SmoothingConfig
    from cpem_jax.retarget.output_files import check_output_folder
    from cpem_jax.retarget.pipeline import RetargetOptions, run_retarget
    from cpem_jax.retarget.run_state import RunState

    if not os.path.exists(args.input):
        raise FileNotFoundError(f"input {args.input!r} does not exist; give a video, a folder of "
                                f"images or an image (for a webcam use `cpem-jax retarget "
                                f"--webcam N`)")
    if args.face < 0 or (args.max_frames is not None and args.max_frames < 1):
        raise ValueError("--face must be >= 0 and --max-frames >= 1")
    check_output_folder(args.output)
    outputs = ("coefficients",) if args.no_overlay else ("coefficients", "overlay")
    options = RetargetOptions(source=args.input, output=args.output, method="fit",
                              fit_config=fit_config_from_args(args), face_model=args.face_model,
                              landmarker=getattr(args, "landmarker", "auto"),
                              face=args.face, max_frames=args.max_frames, outputs=outputs,
                              smoothing=SmoothingConfig(enabled=False),
                              progress=not args.quiet)
    state = RunState()
    with warnings_as_log_lines(), stop_on_interrupt(state, progress=not args.quiet):
        status, summary = run_retarget(options, state=state)
    for files in summary["outputs"].values():
        for file in files:
            print(f"wrote {os.path.join(args.output, file)}")
    print(json.dumps({"frames": summary["frames"],
                      "frames_with_face": summary["frames_with_face"],
                      "seconds": summary["phases"]["total_seconds"],
                      "fit_frames_per_second": summary["phases"]["estimate"]["frames_per_second"],
                      **summary["fit_quality"]}, indent=1))
    return status
