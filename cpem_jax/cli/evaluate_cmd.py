"""`cpem-jax evaluate`: score a checkpoint, a fit result or per-video fitting on a synthetic split."""
from __future__ import annotations

import argparse
import json
import os
import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="evaluate on a synthetic test split with exact ground truth",
        description="Scores expression (MAE per unit and in the paper's ten categories), "
        "identity consistency, 68-point NME and pose error against the ground truth of a split "
        "written by `cpem-jax synth`; writes results.json, results.md and PNG plots.")
    p.add_argument("--data", required=True, help="a synthetic split folder (e.g. OUT/test)")
    p.add_argument("--out", required=True, help="report folder")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="training workdir (config.json + checkpoints/)")
    what.add_argument("--fit-result", help="coefficients.npz of `cpem-jax fit` run on one clip")
    what.add_argument("--method", choices=("fit",),
                      help="'fit': run per-video fitting on every clip here")
    p.add_argument("--clip", help="with --fit-result: the clip it is of (index or person id); "
                   "needed when the data has several clips")
    p.add_argument("--face-model", help="model .npz or ICT archive (default: the checkpoint's, "
                   "else CPEM_FACE_MODEL or ../shared/assets/ICT-FaceKit-master.zip)")
    p.add_argument("--label", help="name of this row in the report (default from the input)")
    p.add_argument("--batch-size", type=int, default=16, help="network batch size")
    p.add_argument("--max-clips", type=int, default=None, help="with --method fit: fit only "
                   "the first N clips")
    p.add_argument("--iterations-scale", type=float, default=1.0,
                   help="with --method fit: multiply every fitting stage's iterations")
    p.add_argument("--no-photometric", action="store_true",
                   help="with --method fit: landmarks only")
    p.set_defaults(func=run)


def _fit_config(args, size: int, focal_px: float, distance_cm: float):
    from cpem_jax.fit.fitter import FitConfig
    base = FitConfig()
    scale = lambda n: max(1, int(round(n * args.iterations_scale)))
    return FitConfig(size=size, photo_size=min(base.photo_size, size),
                     photometric=not args.no_photometric,
                     identity_landmark_iters=scale(base.identity_landmark_iters),
                     identity_photo_iters=scale(base.identity_photo_iters),
                     track_landmark_iters=scale(base.track_landmark_iters),
                     track_photo_iters=scale(base.track_photo_iters),
                     focal_per_pixel=focal_px / size, distance_cm=distance_cm)


def run(args: argparse.Namespace) -> int:
    from cpem_jax.evaluation import synthetic_eval
    from cpem_jax.evaluation.report import to_jsonable, write_report
    from cpem_jax.synthetic.ground_truth import load_ground_truth

    gt = load_ground_truth(args.data)           # First: a wrong --data fails fast.
    if args.checkpoint is not None and not os.path.isdir(args.checkpoint):
        raise FileNotFoundError(f"checkpoint folder {args.checkpoint!r} does not exist; pass "
                                f"the --workdir of a training run")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    frames = synthetic_eval.split_frames(args.data, gt)
    start = time.perf_counter()
    model = None
    if args.checkpoint is not None:
        from cpem_jax.estimation.network import NetPredictor
        predictor = NetPredictor.from_workdir(args.checkpoint, args.face_model)
        model = predictor.model
        est = synthetic_eval.predict_network(predictor, gt, frames, args.batch_size)
        label = args.label or f"{os.path.basename(os.path.normpath(args.checkpoint))} " \
                              f"(step {predictor.step})"
    else:
        from cpem_jax.face_model import load_face_model
        model = load_face_model(args.face_model)
        if args.fit_result is not None:
            from cpem_jax.export.coefficients import load_coefficients
            track = load_coefficients(args.fit_result)
            clip = synthetic_eval.resolve_clip(gt, args.clip)
            est = synthetic_eval.estimates_from_track(track, gt, clip)
            label = args.label or f"fit result ({gt.clip_key(clip)})"
        else:
            clips = None if args.max_clips is None else range(min(args.max_clips, gt.n_clips))
            config = _fit_config(args, gt.image_size, gt.focal_px, gt.distance_cm)
            est = synthetic_eval.fit_clips(model, gt, frames, config, clips)
            label = args.label or "per-video fit"
    results = synthetic_eval.evaluate_estimates(est, gt, model.id_basis)
    results["Summary"]["seconds"] = round(time.perf_counter() - start, 1)
    paths = write_report(results, args.out, f"Synthetic benchmark ({gt.split} split, "
                         f"{len(gt)} frames): {label}", label=label)
    print(json.dumps(to_jsonable({"report": paths["markdown"], **results["Summary"]}), indent=1))
    return 0
