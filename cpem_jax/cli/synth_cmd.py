"""`cpem-jax synth`: generate the synthetic benchmark (clips with exact ground truth)."""
from __future__ import annotations

import argparse
import json
import os
import time

from cpem_jax.cli.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="render synthetic clips with exact ground truth (CPEM folder layout)",
        description="Renders clips of random identities with smooth expression and pose changes "
        "and writes OUT/<split>/ in the CPEM training layout plus ground_truth.npz. Train and "
        "test splits of one seed never share an identity. Train on OUT/train (not OUT).")
    p.add_argument("--out", required=True, help="output folder; splits go to OUT/train, OUT/test")
    p.add_argument("--split", choices=("train", "test", "both"), default="both",
                   help="which split to write (default both)")
    p.add_argument("--clips", type=int, default=40, help="clips (people) of the train split, or "
                   "of the one split written (default 40)")
    p.add_argument("--frames", type=int, default=4, help="frames per clip (default 4)")
    p.add_argument("--test-clips", type=int, default=10, help="with --split both: test clips "
                   "(default 10)")
    p.add_argument("--test-frames", type=int, default=8, help="with --split both: frames per "
                   "test clip (default 8)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=int, default=8, help="frames rendered per call")
    p.add_argument("--landmark-noise", type=float, default=1.5,
                   help="landmark noise std in pixels at 224 px (default 1.5)")
    p.add_argument("--png", action="store_true", help="write PNG frames instead of JPEG (q95)")
    p.add_argument("--plain-faces", action="store_true",
                   help="render the bare face mesh: no eyeballs, mouth interior, brows or lip "
                        "colour (the renders of earlier versions; the ground truth is the same)")
    p.add_argument("--face-model", help="model .npz or ICT archive (default: CPEM_FACE_MODEL "
                   "or ../shared/assets/ICT-FaceKit-master.zip)")
    p.add_argument("--overwrite", action="store_true", help="replace existing split folders")
    p.add_argument("--montage", action="store_true",
                   help="also write OUT/<split>/montage.png (frames with landmarks)")
    p.set_defaults(func=run)


def _plan(args) -> list:
    if args.split == "both":
        return [("train", args.clips, args.frames), ("test", args.test_clips, args.test_frames)]
    return [(args.split, args.clips, args.frames)]


def run(args: argparse.Namespace) -> int:
    from cpem_jax.face_model import load_face_model
    from cpem_jax.synthetic.generator import SynthConfig, generate_split
    from cpem_jax.synthetic.montage import write_montage

    plan = _plan(args)
    configs = [SynthConfig(n_clips=clips, n_frames=frames, image_size=args.size, seed=args.seed,
                           split=split, batch_size=args.batch_size,
                           landmark_noise_px=args.landmark_noise,
                           image_ext=".png" if args.png else ".jpg",
                           features=not args.plain_faces)
               for split, clips, frames in plan]   # Validates every split before rendering.
    for config in configs:
        split_dir = os.path.join(args.out, config.split)
        if os.path.isdir(split_dir) and os.listdir(split_dir) and not args.overwrite:
            raise UserError(f"{split_dir!r} is not empty; pass --overwrite to replace it")
    model = load_face_model(args.face_model)
    summary = {}
    for config in configs:
        split_dir = os.path.join(args.out, config.split)
        start = time.perf_counter()
        gt = generate_split(model, split_dir, config, overwrite=args.overwrite)
        seconds = time.perf_counter() - start
        entry = {"folder": split_dir, "clips": config.n_clips, "frames": len(gt),
                 "size": config.image_size, "seed": config.seed, "seconds": round(seconds, 1),
                 "frames_per_second": round(len(gt) / max(seconds, 1e-9), 2)}
        if args.montage:
            entry["montage"] = write_montage(split_dir, os.path.join(split_dir, "montage.png"))
        summary[config.split] = entry
    print(json.dumps(summary, indent=1))
    return 0
