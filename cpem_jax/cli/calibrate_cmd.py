"""`cpem-jax calibrate`: a person's identity profile, for live runs to reuse.

    cpem-jax calibrate me.mp4 -o me.npz            # or --webcam 0
    cpem-jax retarget --webcam 0 -o out/ --identity me.npz

Follows one face through the first frames of a video or a camera, keeps the first `--frames`
frames that show it, and runs the offline fit's identity stage on them
(`estimation.calibrate.calibrate_identity`: keyframes chosen by pose, the identity fitted jointly
with their expression and pose; with the photometric term, which also fits the albedo, unless
`--no-photometric`). Writes the profile (`IdentityProfile`: identity, albedo, the face model's
name and sizes, the crop camera, how it was made; versioned) through a temporary file, so a
file with the final name is always whole.
"""
from __future__ import annotations

import argparse
import os
import sys

from cpem_jax.cli.options import (add_compile_cache_option, add_landmarker_option,
                                  enable_compile_cache, warnings_as_log_lines)

DEFAULT_FRAMES = 40


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="fit a person's identity once and save it for live runs",
        description="Fits one identity (and albedo) to the first frames of a video or a camera "
        "that show the face and saves it as a profile for `cpem-jax retarget --live/--webcam N "
        "--identity PROFILE`.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("input", nargs="?", help="video file (or a folder of images)")
    source.add_argument("--webcam", type=int, metavar="N", help="camera N")
    p.add_argument("-o", "--output", required=True, help="the profile to write (.npz)")
    p.add_argument("--face-model", help="model .npz or ICT archive (default: CPEM_FACE_MODEL "
                   "or ../shared/assets/ICT-FaceKit-master.zip)")
    p.add_argument("--face", type=int, default=0, help="which face: 0 = the largest")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help="frames with a face to collect (the identity stage picks its keyframes "
                   "among them by pose)")
    p.add_argument("--keyframes", type=int, default=8, help="frames the identity is fitted on")
    p.add_argument("--size", type=int, default=224, help="crop size of the fit (a live run "
                   "must use the same)")
    p.add_argument("--no-photometric", action="store_true",
                   help="landmarks only (seconds instead of a minute on a CPU; no albedo)")
    add_landmarker_option(p)
    add_compile_cache_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def check_output_file(path: str) -> None:
    """Refuses (one line) an output that is a folder or whose folder cannot be written."""
    if os.path.isdir(path):
        raise ValueError(f"-o {path!r} is a folder; pass the profile's file name, e.g. me.npz")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"-o {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"-o {path!r}: cannot write into {folder!r}; pass another path")


def run(args: argparse.Namespace) -> int:
    from cpem_jax.estimation.calibrate import calibrate_identity
    from cpem_jax.estimation.live_front import LiveFront, make_front
    from cpem_jax.estimation.streaming import StreamConfig
    from cpem_jax.face_model import load_face_model
    from cpem_jax.io.frames import open_frames

    if args.input is not None and not os.path.exists(args.input):
        raise FileNotFoundError(f"input {args.input!r} does not exist; give a video, a folder "
                                "of images, or --webcam N")
    if args.frames < 1 or args.keyframes < 1 or args.face < 0:
        raise ValueError("--frames and --keyframes must be >= 1 and --face >= 0")
    output = args.output if args.output.endswith(".npz") else args.output + ".npz"
    check_output_file(output)
    enable_compile_cache(args)
    config = StreamConfig(size=args.size, calibration_frames=args.frames,
                          keyframes=min(args.keyframes, args.frames),
                          calibration_photometric=not args.no_photometric)
    with warnings_as_log_lines():
        model = load_face_model(args.face_model)
        front = LiveFront(make_front(args.landmarker, args.face), face=args.face)
        spec = args.webcam if args.webcam is not None else args.input
        source = open_frames(spec)
        progress = None if args.quiet else _progress
        try:
            profile = calibrate_identity(source, front, model, config,
                                         source=str(spec if args.webcam is None
                                                    else f"webcam:{spec}"),
                                         progress=progress)
        finally:
            source.close()
    temp = os.path.join(os.path.dirname(os.path.abspath(output)),
                        f".{os.path.basename(output)[:-4]}.partial.npz")
    try:
        profile.save(temp)
        os.replace(temp, output)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    how = "photometric, with albedo" if profile.photometric else "landmarks only"
    print(f"wrote {output}: identity of {model.name} from {profile.keyframes} keyframes of "
          f"{profile.frames} frames ({how})")
    return 0


def _progress(collected: int, wanted: int, fitting: bool) -> None:
    if fitting:
        print(f"\nfitting the identity on {collected} frames ...", file=sys.stderr, flush=True)
    else:
        print(f"\rcollecting frames with a face: {collected}/{wanted}", end="", file=sys.stderr,
              flush=True)
