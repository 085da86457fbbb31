"""`cpem-jax prepare INPUT... -o DATA`: raw footage to the CPEM training layout.

Each input video (or folder of images, or image) becomes one clip of DATA, written in the layout
`cpem_jax.data` reads (crops, skin masks, both landmark sets, frontal flags) plus the teacher fit
of the video; see `cpem_jax.prepare` and the README's "Preparing training data". A rerun skips
finished videos; `--shard K/N` splits the inputs for a cluster job array.

Exit status: 0 every input prepared (now or before), 1 some input failed (each named on one line;
the others were prepared), 2 a usage error (one line), 130 interrupted (finished videos kept).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from cpem_jax.cli.errors import UserError
from cpem_jax.cli.options import (EXIT_INTERRUPTED, add_fit_options,
                                  add_landmarker_task_option, fit_config_from_args,
                                  warnings_as_log_lines)

LANDMARKERS = ("auto", "mediapipe", "dlib")


def register(subparsers) -> None:
    from cpem_jax.prepare.run import DEFAULT_YAW_THRESHOLD_DEG
    p = subparsers.add_parser(
        "prepare", help="turn videos, image folders and images into CPEM training data",
        description="Detects and follows one face per input, writes 224x224 crops, skin masks, "
        "the front end's and dlib's 68 landmarks, frontal flags and (unless --no-teacher) the "
        "identity-locked fit of each video as a teacher file, in the layout `cpem_jax.data` "
        "reads. Finished videos are skipped on a rerun; bad inputs are reported and skipped.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video, folder of images, image, or a folder of those (one person per "
                   "video, per image folder and per image)")
    p.add_argument("-o", "--output", required=True, metavar="DATA",
                   help="output folder (one CPEM source; created if needed)")
    p.add_argument("--no-teacher", action="store_true",
                   help="skip the fit: front end only (fast); frontal flags from mean-face PnP")
    p.add_argument("--shard", metavar="K/N", default="0/1",
                   help="prepare only shard K of N (0-based), e.g. "
                   "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; shards are disjoint")
    p.add_argument("--frontal-yaw", type=float, default=DEFAULT_YAW_THRESHOLD_DEG,
                   metavar="DEG", help="flag frames with |yaw| <= DEG as near-frontal "
                   f"(default {DEFAULT_YAW_THRESHOLD_DEG:g})")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="read at most N frames per input")
    p.add_argument("--face-model", help="model .npz or ICT archive for the fit (default: "
                   "CPEM_FACE_MODEL or ../shared/assets/ICT-FaceKit-master.zip)")
    add_fit_options(p)
    if "--landmarker" not in p._option_string_actions:  # Shared with the fit options or not.
        p.add_argument("--landmarker", choices=LANDMARKERS, default="auto",
                       help="front end: auto = MediaPipe's face mesh where it runs, else dlib")
        add_landmarker_task_option(p)
    p.add_argument("--dry-run", action="store_true",
                   help="list this shard's inputs with their ids and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace):
    from cpem_jax.prepare.inputs import parse_shard
    try:
        shard = parse_shard(args.shard)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {args.max_frames}")
    if not 0 <= args.frontal_yaw <= 90:
        raise UserError(f"--frontal-yaw must be in [0, 90] degrees, got {args.frontal_yaw:g}")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UserError(f"-o {args.output!r} is a file; give a folder (created if missing)")
    return shard


def run(args: argparse.Namespace) -> int:
    from cpem_jax.prepare import inputs as prepare_inputs
    from cpem_jax.prepare.run import PrepareOptions, prepare_items, summary

    shard = _check_args(args)
    items = prepare_inputs.select_shard(prepare_inputs.expand_inputs(args.inputs), shard)
    if args.dry_run:
        for item in items:
            state = f"BAD: {item.problem}" if item.problem else item.kind
            print(f"{item.key}\t{item.source}\t{state}")
        print(f"shard {shard[0]}/{shard[1]}: {len(items)} inputs")
        return 1 if any(item.problem for item in items) else 0
    options = PrepareOptions(
        output=args.output, teacher=not args.no_teacher, landmarker=args.landmarker,
        size=args.size, yaw_threshold_deg=args.frontal_yaw, max_frames=args.max_frames,
        fit_config=None if args.no_teacher else fit_config_from_args(args),
        face_model=args.face_model, progress=not args.quiet)
    os.makedirs(args.output, exist_ok=True)
    if options.teacher:
        from cpem_jax import compilation_cache
        cache = compilation_cache.enable()
        logging.info("JAX compilation cache: %s (the fit's programs compile once per shape, "
                     "then load from there; CPEM_COMPILE_CACHE can name a folder every task of "
                     "a job array shares)", cache)
    try:
        with warnings_as_log_lines():
            results = prepare_items(items, options)
    except KeyboardInterrupt:
        print(f"\ncpem-jax: interrupted; the videos finished so far are kept in {args.output}; "
              f"rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    done = summary(results, args.output)
    print(f"shard {shard[0]}/{shard[1]}: {done['prepared']} videos prepared "
          f"({done['prepared_frames']} frames, {done['frontal_frames']} near-frontal), "
          f"{done['already_done']} already done ({done['already_done_frames']} frames), "
          f"{len(done['failed'])} failed -> {args.output}")
    for failed in done["failed"]:
        print(f"failed: {failed['input']} ({failed['ids']}): {failed['reason']}")
    return 1 if done["failed"] else 0
