"""MediaPipe's points on the synthetic renders against the exact ground truth.

How well the front end reads a synthetic split is what limits the dense fit there
(`benchmarks/synthetic_fit.py --landmarks mediapipe`). For every frame this runs
`MediaPipeLandmarker.detect` (a frame where it finds no face is counted as a miss and scored from
a box on the ground-truth landmarks, as synthetic_fit does) and compares:
- its 68 iBUG points with the split's exact 68 (NME in % of sqrt(w * h) of the ground-truth box;
  all 68 and the inner 51, the jaw's convention differing between the two);
- its two iris centres (points 468 / 473) with the exact limbus centres, which are where the
  renders draw the irises (`synthetic.features`; splits of `--plain-faces` have no irises), in %
  of the exact inter-ocular distance (outer eye corners);
- how open each eye is (`dense_landmarks.eye_openness`) against the same measure on the exact
  mesh points: mean absolute difference, and its correlation over frames.

    cpem-jax synth --out /tmp/synth --split test --clips 50 --frames 8 --seed 0
    python benchmarks/synthetic_front_end.py --data /tmp/synth/test --json /tmp/front.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(os.environ.get("CPEM_SRC", REPO)))


def exact_dense(dense, gt, row, camera):
    """The 478 exact points of ground-truth row `row` in pixels [478, 2]."""
    from cpem_jax.face_model import dense_landmarks as dl
    from cpem_jax.geometry.camera import project, transform
    from cpem_jax.geometry.rotation import euler_to_matrix
    points = dl.dense_points(dense, gt.identity[row], gt.expression[row])
    cam = transform(points, euler_to_matrix(gt.rotation[row]), gt.translation[row], camera)
    return np.asarray(project(camera, cam)[0], np.float64)


def nme(pred, truth):
    """pred, truth [N, 2] -> mean point error in % of sqrt(w * h) of truth's box."""
    box = truth.max(0) - truth.min(0)
    return 100.0 * np.linalg.norm(pred - truth, axis=-1).mean() / np.sqrt(box[0] * box[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a split folder of `cpem-jax synth`")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    from cpem_jax.detect.backends import make_landmarker
    from cpem_jax.evaluation import synthetic_eval
    from cpem_jax.face_model import load_face_model
    from cpem_jax.face_model import dense_landmarks as dl
    from cpem_jax.geometry.camera import default_camera
    from cpem_jax.io import read_image
    from cpem_jax.synthetic.ground_truth import load_ground_truth

    gt = load_ground_truth(args.data)
    model = load_face_model()
    dense = dl.dense_landmarks_for(model)
    if dense is None:
        sys.exit("error: the face model has no dense landmark table (use ICT)")
    camera = default_camera(gt.image_size, focal=gt.focal_px, distance_cm=gt.distance_cm)
    frames = synthetic_eval.split_frames(args.data, gt)
    landmarker = make_landmarker("mediapipe")
    rows = range(len(gt) if args.max_frames is None else min(args.max_frames, len(gt)))
    misses, nme68, nme51, iris, open_pred, open_true = 0, [], [], [], [], []
    start = time.perf_counter()
    for r in rows:
        image = read_image(frames[r].image_path)
        found = landmarker.detect(image)
        if len(found):
            best = int(np.argmax((found.boxes[:, 2] - found.boxes[:, 0])
                                 * (found.boxes[:, 3] - found.boxes[:, 1])))
            points = found.dense[best]
        else:
            misses += 1
            truth = gt.landmarks[r]
            box = np.concatenate([truth.min(0), truth.max(0)])[None].astype(np.float32)
            points = landmarker.dense_in_boxes(image, box)[0]
        points = np.asarray(points, np.float64)[:, :2]
        exact = exact_dense(dense, gt, r, camera)
        lm68 = np.asarray(landmarker.landmarks_from_dense(points), np.float64)
        truth68 = np.asarray(gt.landmarks[r], np.float64)
        nme68.append(nme(lm68, truth68))
        nme51.append(nme(lm68[17:], truth68[17:]))
        ocular = np.linalg.norm(truth68[36] - truth68[45])
        iris.append(100.0 * np.linalg.norm(points[[473, 468]] - exact[[473, 468]], axis=-1)
                    / ocular)
        open_pred.append(dl.eye_openness(dense, points))
        open_true.append(dl.eye_openness(dense, exact))
    open_pred, open_true = np.asarray(open_pred), np.asarray(open_true)
    out = {
        "data": os.path.abspath(args.data), "frames": len(rows), "misses": misses,
        "nme68_percent": float(np.mean(nme68)), "nme51_percent": float(np.mean(nme51)),
        "iris_error_percent_iod": float(np.mean(iris)),
        "iris_error_median_percent_iod": float(np.median(iris)),
        "eye_openness_mae": float(np.abs(open_pred - open_true).mean()),
        "eye_openness_corr": float(np.corrcoef(open_pred.ravel(), open_true.ravel())[0, 1]),
        "seconds": time.perf_counter() - start, "load_after": os.getloadavg(),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
