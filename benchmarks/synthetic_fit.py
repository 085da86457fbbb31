"""The per-video fit on the synthetic benchmark, from the ground-truth landmark files or from
MediaPipe run on the rendered frames.

`cpem-jax evaluate --method fit` fits each clip to the split's landmark files (the exact 68
landmarks plus detector-like noise). The synthetic frames carry no dense ground truth, so the
realistic path for the dense fit is to run the front end on the rendered images: with
`--landmarks mediapipe` every frame goes through `MediaPipeLandmarker.detect` (a frame where it
finds no face gets its points from a box on the ground-truth landmarks, and is counted), the 478
points feed the fit and its 68 iBUG points the skin mask. The synthetic frame is the crop (its
camera is the fit's camera), so pose and landmarks compare with the ground truth directly.
Scores: `cpem_jax.evaluation.synthetic_eval.evaluate_estimates` (ten-category MAE of strong
expressions, all-unit MAE, NME, pose).

Run (figures go to experiments/dense_fit/README.md):
  cpem-jax synth --out /tmp/synth --split test --clips 50 --frames 8 --seed 0
  python benchmarks/synthetic_fit.py --data /tmp/synth/test --landmarks mediapipe \\
      --max-clips 20 --json /tmp/synth_mp.json
`--single` fits every frame on its own, the way `cpem-jax fit IMAGE` fits a photo (one frame:
identity and expression from that image alone), instead of each clip as one video.
`--save FILE.npz` also writes the per-frame estimates (expression, pose, landmarks, identity,
ground-truth row order, with unit names and frame keys) for per-unit diagnosis.
`CPEM_SRC=/path/to/other/checkout` runs another version of the package (e.g. an older commit
exported with `git archive`).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SRC = Path(os.environ.get("CPEM_SRC", REPO))
sys.path.insert(0, str(SRC))


def _front_end(kind, frames, gt, rows, landmarker):
    """(landmarks [n, 68, 2], dense [n, 478, 2] or None, misses) of the clip's frames."""
    from cpem_jax.data import cpem_folder
    if kind == "files":
        return np.stack([cpem_folder.load_frame(frames[r])["landmarks"] for r in rows]), None, 0
    from cpem_jax.io import read_image
    lms, dense, misses = [], [], 0
    for r in rows:
        image = read_image(frames[r].image_path)
        found = landmarker.detect(image)
        if len(found):
            best = int(np.argmax((found.boxes[:, 2] - found.boxes[:, 0])
                                 * (found.boxes[:, 3] - found.boxes[:, 1])))
            lms.append(found.landmarks[best])
            dense.append(found.dense[best])
        else:
            misses += 1
            truth = gt.landmarks[r]
            box = np.concatenate([truth.min(0), truth.max(0)])[None].astype(np.float32)
            d = landmarker.dense_in_boxes(image, box)[0]
            dense.append(d)
            lms.append(landmarker.landmarks_from_dense(d))
    return np.stack(lms), np.stack(dense), misses


def fit_clip(fitter, est, rows, crops, lms, dense, single: bool) -> None:
    """Fits one clip's frames (ground-truth rows `rows`) and writes the estimates into `est`:
    the clip as one video, or with `single` each frame alone (one fit per frame)."""
    parts = [slice(i, i + 1) for i in range(len(rows))] if single else [slice(None)]
    for part in parts:
        kwargs = {"dense": dense[part]} if dense is not None else {}
        fit = fitter.fit(crops[part], lms[part].astype(np.float32), progress=False, **kwargs)
        at = np.asarray(rows)[part]
        est.identity[at] = np.asarray(fit.shared.identity)[None]
        est.expression[at] = np.asarray(fit.frames.expression)
        est.rotation[at] = np.asarray(fit.frames.rotation)
        est.translation[at] = np.asarray(fit.frames.translation)
        est.landmarks[at] = np.asarray(fit.landmarks_fitted)


def save_estimates(path, est, gt):
    """Write the estimates (ground-truth row order) with the unit names and frame keys to an
    .npz; an unwritable path gets one line on stderr and the run goes on to its report."""
    try:
        np.savez_compressed(path, expression=est.expression, rotation=est.rotation,
                            translation=est.translation, landmarks=est.landmarks,
                            identity=est.identity, unit_names=np.asarray(gt.unit_names),
                            frame_key=np.asarray(gt.frame_key))
    except OSError as err:
        print(f"--save {path}: cannot write ({err.strerror or err}); pick a writable path",
              file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a synthetic split folder")
    parser.add_argument("--landmarks", choices=("files", "mediapipe", "mediapipe68"),
                        default="files", help="files: the split's noisy 68-point files; "
                        "mediapipe: MediaPipe's 478 points on the rendered frames; mediapipe68: "
                        "its 68 points only")
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--single", action="store_true",
                        help="fit each frame alone, as a single image (no shared identity)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--save", default=None, help="also write the per-frame estimates "
                        "(expression, rotation, translation, landmarks, identity; ground-truth "
                        "row order) to this .npz")
    args = parser.parse_args(argv)

    from cpem_jax.evaluation import synthetic_eval
    from cpem_jax.face_model import load_face_model
    from cpem_jax.fit.fitter import FitConfig, SequenceFitter
    from cpem_jax.synthetic.ground_truth import load_ground_truth

    gt = load_ground_truth(args.data)
    frames = synthetic_eval.split_frames(args.data, gt)
    model = load_face_model()
    config = FitConfig(size=gt.image_size)
    has_dense = "dense" in inspect.signature(SequenceFitter.__init__).parameters
    dense_table = None
    landmarker = None
    if args.landmarks != "files":
        from cpem_jax.detect.backends import make_landmarker
        landmarker = make_landmarker("mediapipe")
        if args.landmarks == "mediapipe" and has_dense:
            from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
            dense_table = dense_landmarks_for(model)
    fitter = (SequenceFitter(model, config, dense=dense_table) if has_dense
              else SequenceFitter(model, config))
    est = synthetic_eval.Estimates.empty(gt, f"fit ({args.landmarks})")
    clip_rows = gt.clip_rows()[:args.max_clips]
    misses, start, load0 = 0, time.perf_counter(), os.getloadavg()
    for c, rows in enumerate(clip_rows):
        crops = synthetic_eval.load_images([frames[r] for r in rows])
        lms, dense, missed = _front_end(args.landmarks, frames, gt, rows, landmarker)
        misses += missed
        fit_clip(fitter, est, rows, crops, lms, dense if dense_table is not None else None,
                 args.single)
        if not args.quiet:
            print(f"clip {c + 1}/{len(clip_rows)} {time.perf_counter() - start:.0f} s",
                  flush=True)
    results = synthetic_eval.evaluate_estimates(est, gt, np.asarray(model.id_basis))
    if args.save:
        save_estimates(args.save, est, gt)
    summary = results["Summary"]
    cats = results["Expression MAE (ten categories)"]["categories"]
    print(json.dumps({k: summary[k] for k in ("frames", "expression_avg_mae_10cat",
                                               "expression_mae_all", "expression_mae_active",
                                               "expression_mae_inactive", "nme_percent",
                                               "pose_geodesic_mean_deg")}, indent=1))
    print(" | ".join(f"{k} {v['mae']:.3f}" for k, v in cats.items()))
    if args.json:
        out = {"src": str(SRC), "landmarks": args.landmarks, "clips": len(clip_rows),
               "single": args.single,
               "misses": misses, "seconds": time.perf_counter() - start, "load_before": load0,
               "load_after": os.getloadavg(), "results": results}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist")
                      else float(o))


if __name__ == "__main__":
    main()
