"""`cpem-jax evaluate`: score a checkpoint, a fit result or per-video fitting on a synthetic split
(--data), or the estimator and its front end on annotated still images (--aflw2000,
--landmarks68)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import time

from cpem_jax.cli.errors import UserError
from cpem_jax.cli.options import add_landmarker_task_option, warnings_as_log_lines


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a checkpoint or the fit: synthetic split, AFLW2000-3D, 68-point "
        "landmarks",
        description="--data: scores expression (MAE per unit and in the paper's ten "
        "categories), identity consistency, 68-point NME and pose error against the ground "
        "truth of a split written by `cpem-jax synth`; writes results.json, results.md and PNG "
        "plots. --aflw2000 / --landmarks68: runs the estimator (and its front end) on every "
        "annotated image, one identity per image, and writes results.json and results.md.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", help="a synthetic split folder (e.g. OUT/test)")
    where.add_argument("--aflw2000", metavar="DIR", help="an AFLW2000-3D folder "
                       "(imageXXXXX.jpg + .mat): NME by |yaw| bin and head-pose error")
    where.add_argument("--landmarks68", metavar="DIR", help="a folder of images with 68-point "
                       ".pts files beside them (300-W layout, searched recursively): NME by "
                       "inter-ocular distance and by box")
    p.add_argument("--out", required=True, help="report folder")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--checkpoint", help="training workdir (config.json + checkpoints/); on "
                      "still images also a weights file (cpem-jax model export-net)")
    what.add_argument("--fit-result", help="with --data: coefficients.npz of `cpem-jax fit` "
                      "run on one clip")
    p.add_argument("--method", choices=("fit", "net"),
                   help="'fit': per-video fitting (with --data: on every clip; on still images: "
                   "the default); 'net': the network of --checkpoint, or the weights shipped "
                   "with cpem-jax (still images)")
    p.add_argument("--landmarker", choices=("auto", "mediapipe", "dlib"), default="auto",
                   help="still images: the face front end (auto: MediaPipe where it runs, else "
                   "dlib)")
    add_landmarker_task_option(p)
    p.add_argument("--landmarker-only", action="store_true",
                   help="still images: score the front end's raw 68 points only (no estimator)")
    p.add_argument("--max-images", type=int, default=None,
                   help="still images: evaluate N images (AFLW2000-3D: a yaw-balanced subset; "
                   ".pts folder: the first N by path)")
    p.add_argument("--pts-origin", type=int, choices=(1, 0), default=1,
                   help="--landmarks68: 1 = 300-W's 1-based coordinates (default), 0 = 0-based "
                   "pixel indices")
    p.add_argument("--clip", help="with --fit-result: the clip it is of (index or person id); "
                   "needed when the data has several clips")
    p.add_argument("--face-model", help="model .npz or ICT archive (default: the checkpoint's, "
                   "else CPEM_FACE_MODEL or ../shared/assets/ICT-FaceKit-master.zip)")
    p.add_argument("--label", help="name of this row in the report (default from the input)")
    p.add_argument("--batch-size", type=int, default=16, help="network batch size")
    p.add_argument("--max-clips", type=int, default=None, help="with --data --method fit: fit "
                   "only the first N clips")
    p.add_argument("--iterations-scale", type=float, default=1.0,
                   help="with --method fit: multiply every fitting stage's iterations")
    p.add_argument("--no-photometric", action="store_true",
                   help="with --method fit: landmarks only")
    p.add_argument("--no-progress", action="store_true", help="still images: no progress bars")
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
    if args.data is None:
        return run_still_images(args)
    if args.checkpoint is None and args.fit_result is None and args.method is None:
        raise UserError("--data needs one of --checkpoint DIR, --fit-result FILE or "
                        "--method fit")
    if args.method == "net":
        raise UserError("--data scores a network with --checkpoint DIR (no --method net)")
    if args.method == "fit" and (args.checkpoint or args.fit_result):
        raise UserError("--data: give one of --checkpoint, --fit-result or --method fit")
    for flag in ("landmarker_only", "max_images"):
        if getattr(args, flag):
            raise UserError(f"--{flag.replace('_', '-')} applies to --aflw2000 / --landmarks68, "
                            f"not to --data")
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


def run_still_images(args: argparse.Namespace) -> int:
    """--aflw2000 / --landmarks68: the front end and (unless --landmarker-only) the estimator."""
    from cpem_jax.evaluation import still_images

    root = args.aflw2000 or args.landmarks68
    flag = "--aflw2000" if args.aflw2000 else "--landmarks68"
    if not os.path.isdir(root):
        raise UserError(f"{flag} {root!r} is not a folder; pass the folder holding the images "
                        f"and their {'.mat' if args.aflw2000 else '.pts'} files")
    if args.fit_result is not None:
        raise UserError(f"--fit-result applies to --data, not to {flag}")
    if args.max_images is not None and args.max_images < 1:
        raise UserError(f"--max-images must be >= 1, got {args.max_images}")
    if args.iterations_scale <= 0:
        raise UserError(f"--iterations-scale must be positive, got {args.iterations_scale}")
    method = args.method or ("net" if args.checkpoint else "fit")
    if args.landmarker_only and (args.method or args.checkpoint):
        raise UserError("--landmarker-only scores the front end alone; drop --method / "
                        "--checkpoint")
    if args.checkpoint and method == "fit":
        raise UserError("--checkpoint goes with --method net (the fit needs no checkpoint)")
    if args.checkpoint and not os.path.exists(args.checkpoint):
        raise UserError(f"checkpoint {args.checkpoint!r} does not exist; pass the --workdir of "
                        f"a training run or a weights file (cpem-jax model export-net)")
    # Read the annotations first: a wrong folder fails before any model loads.
    if args.aflw2000:
        from cpem_jax.evaluation.aflw2000 import load_aflw2000
        load_aflw2000(root, args.max_images)
    else:
        from cpem_jax.evaluation.landmarks68 import load_landmarks68
        load_landmarks68(root, args.max_images, args.pts_origin)
    from cpem_jax.detect import make_landmarker
    try:
        landmarker = make_landmarker(args.landmarker)
    except OSError as err:  # A missing model bundle, or a native library that does not load.
        raise UserError(f"the {args.landmarker} front end cannot run here: "
                        f"{str(err).splitlines()[0] if str(err) else type(err).__name__}; "
                        f"choose another with --landmarker") from None
    factory = None
    if not args.landmarker_only:
        from cpem_jax import compilation_cache
        cache = compilation_cache.enable()
        logging.info("JAX compilation cache: %s (each one-image estimate builds its programs "
                     "anew; the cache reuses the compiled code)", cache)
        from cpem_jax.estimation.estimate import make_estimator
        config = _image_fit_config(args) if method == "fit" else None

        def factory(front_end):
            return make_estimator(method, fit_config=config, face_model=args.face_model,
                                  checkpoint=args.checkpoint, landmarker=front_end)
    runner = still_images.run_aflw2000 if args.aflw2000 else still_images.run_landmarks68
    kwargs = ({"face_model": args.face_model} if args.aflw2000
              else {"origin": args.pts_origin})
    start = time.perf_counter()
    with warnings_as_log_lines():
        results = runner(root, landmarker, factory, limit=args.max_images,
                         progress=not args.no_progress, method=method, **kwargs)
    results["seconds_total"] = round(time.perf_counter() - start, 1)
    if args.label:
        results["label"] = args.label
    if not args.landmarker_only and method == "fit":
        results["fit_config"] = {"iterations_scale": args.iterations_scale,
                                 "photometric": not args.no_photometric}
    paths = still_images.write_still_image_report(results, args.out)
    keys = ("label", "n_images", "nme_by_yaw_bin", "nme_mean", "nme_interocular", "nme_box",
            "detector_misses", "pose_mae_deg", "seconds_per_image")
    from cpem_jax.evaluation.report import to_jsonable
    print(json.dumps(to_jsonable({"report": paths[1], **{k: results[k] for k in keys
                                                         if k in results}}), indent=1))
    return 0


def _image_fit_config(args):
    """FitConfig for one-image inputs: the defaults, with --iterations-scale/--no-photometric."""
    from cpem_jax.fit.fitter import FitConfig
    base = FitConfig()
    scale = lambda n: max(1, int(round(n * args.iterations_scale)))
    return FitConfig(photometric=not args.no_photometric,
                     identity_landmark_iters=scale(base.identity_landmark_iters),
                     identity_photo_iters=scale(base.identity_photo_iters),
                     track_landmark_iters=scale(base.track_landmark_iters),
                     track_photo_iters=scale(base.track_photo_iters))
