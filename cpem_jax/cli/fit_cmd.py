"""`cpem-jax fit`: per-video fitting with a locked identity (no trained network needed)."""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit the face model to a video, a folder of images or an image",
        description="Detects and follows one face, fits one identity for the whole input and "
        "per-frame expression, pose and lighting; writes coefficients (.npz + .json) and an "
        "overlay video.")
    p.add_argument("input", help="video file, folder of images, or one image")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--face-model", help="model .npz or ICT archive (default: CPEM_FACE_MODEL "
                   "or ../shared/assets/ICT-FaceKit-master.zip)")
    p.add_argument("--face", type=int, default=0, help="which face: 0 = largest (default)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    add_fit_options(p)
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay video")
    p.set_defaults(func=run)


def add_fit_options(parser) -> None:
    """The fitting options, shared by `cpem-jax fit` and `cpem-jax retarget --method fit`."""
    parser.add_argument("--size", type=int, default=224, help="crop size the model is fitted at")
    parser.add_argument("--no-photometric", action="store_true",
                        help="landmarks only (faster, no lighting/albedo)")
    parser.add_argument("--iterations-scale", type=float, default=1.0,
                        help="multiply every stage's iteration count (speed/quality trade-off)")


def fit_config_from_args(args):
    from cpem_jax.fit.fitter import FitConfig
    base = FitConfig()
    scale = lambda n: max(1, int(round(n * args.iterations_scale)))
    return FitConfig(size=args.size, photometric=not args.no_photometric,
                     identity_landmark_iters=scale(base.identity_landmark_iters),
                     identity_photo_iters=scale(base.identity_photo_iters),
                     track_landmark_iters=scale(base.track_landmark_iters),
                     track_photo_iters=scale(base.track_photo_iters))


def run(args: argparse.Namespace) -> int:
    from cpem_jax.detect.dlib_landmarker import DlibLandmarker
    from cpem_jax.evaluation.landmarks import box_size, landmark_box, nme
    from cpem_jax.evaluation.temporal import mean_abs_change
    from cpem_jax.face_model import load_face_model
    from cpem_jax.fit.overlay import overlay_frames
    from cpem_jax.fit.video import fit_video
    from cpem_jax.viz.overlay_video import write_video

    if not os.path.exists(args.input):
        raise FileNotFoundError(f"input {args.input!r} does not exist (fitting reads a file or a "
                                f"folder twice; for a webcam use `cpem-jax retarget --webcam N`)")
    model = load_face_model(args.face_model)
    config = fit_config_from_args(args)
    landmarker = DlibLandmarker()
    start = time.perf_counter()
    result = fit_video(args.input, model, landmarker, config, face=args.face,
                       max_frames=args.max_frames)
    os.makedirs(args.output, exist_ok=True)
    npz, js = result.track.save(os.path.join(args.output, "coefficients"))
    track = result.track
    errors = nme(track.landmarks_fitted, track.landmarks_detected,
                 box_size(landmark_box(track.landmarks_detected)))
    found = track.face_found
    summary = {
        "input": args.input, "frames": int(track.n_frames), "frames_with_face": int(found.sum()),
        "seconds": round(time.perf_counter() - start, 2),
        "fit_frames_per_second": round(found.sum() / max(result.timings["fit_s"], 1e-9), 3),
        "detect_crop_seconds": round(result.timings["detect_crop_s"], 2),
        "nme_mean": float(np.nanmean(errors)) if found.any() else None,
        "nme_p95": float(np.nanpercentile(errors, 95)) if found.any() else None,
        "expression_jitter": mean_abs_change(track.expression, found),
    }
    if not args.no_overlay:
        path = os.path.join(args.output, "overlay.mp4")
        write_video(path, overlay_frames(track, result.crops, model, config), track.fps)
        summary["overlay"] = path
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wrote {npz}, {js}")
    print(json.dumps(summary, indent=1))
    return 0
