"""MediaPipe's own blendshape model as a peer on a synthetic split with exact expressions.

The dense fit reads the synthetic renders through MediaPipe's 478 points
(`benchmarks/synthetic_fit.py --landmarks mediapipe`). MediaPipe's FaceLandmarker also gives 52
ARKit blendshape weights from the same mesh, with a model trained for that. This runs it on the
same frames (VIDEO mode, each clip as one video from its first frame, one face) and scores its
weights with the fit's expression metrics: the ten-category MAE of strong expressions and the
all-unit MAE (`cpem_jax.evaluation.expression`). Its ARKit names are matched to the
split's units by `cpem_jax.export.arkit.arkit_name_for`; a unit with no ARKit name counts as 0,
and so does every unit of a frame where it finds no face (counted as a miss).

    cpem-jax synth --out /tmp/synth --split test --clips 50 --frames 8 --seed 0
    python benchmarks/synthetic_peer.py --data /tmp/synth/test --json /tmp/peer.json
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

FPS = 30.0


def peer_expressions(data: str, gt, task: str):
    """(expression [N, K] in ground-truth row order and unit order, frames without a face)."""
    from cpem_jax.evaluation import synthetic_eval
    from cpem_jax.export import ARKIT_NAMES
    from cpem_jax.export.arkit import arkit_name_for
    from cpem_jax.io.frames import Frame
    from cpem_jax.io import read_image
    from mediapipe_tracks import BlendshapeTracker

    frames = synthetic_eval.split_frames(data, gt)
    column = {name: k for k, name in enumerate(ARKIT_NAMES)}
    pairs = [(u, column[arkit_name_for(n)]) for u, n in enumerate(gt.unit_names)
             if arkit_name_for(n) in column]
    expression = np.zeros(np.shape(gt.expression))
    misses = 0
    for rows in gt.clip_rows():
        tracker = BlendshapeTracker(task)
        try:
            for i, r in enumerate(rows):
                frame = Frame(index=i, timestamp_s=i / FPS,
                              image=read_image(frames[r].image_path))
                weights = tracker.weights(frame)
                if weights is None:
                    misses += 1
                    continue
                for unit, k in pairs:
                    expression[r, unit] = weights[k]
        finally:
            tracker.close()
    return expression, misses, len(pairs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a split folder of `cpem-jax synth`")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from cpem_jax.detect.mediapipe_task import TaskFileError, find_task
    from cpem_jax.evaluation import expression as expression_metrics
    from cpem_jax.synthetic.ground_truth import load_ground_truth
    try:
        task = find_task()
        gt = load_ground_truth(args.data)
    except (TaskFileError, OSError, ValueError) as error:
        sys.exit(f"synthetic_peer: {error}")
    start, load0 = time.perf_counter(), os.getloadavg()
    expression, misses, matched = peer_expressions(args.data, gt, task)
    cats = expression_metrics.unit_category_mae(expression, gt.expression, gt.unit_names,
                                                expression_metrics.ACTIVE_THRESHOLD)
    out = {"data": args.data, "frames": len(gt), "misses": misses,
           "units_matched": matched, "units": len(gt.unit_names),
           "expression_avg_mae_10cat": cats["Avg"]["mae"],
           "expression_mae_all": float(np.abs(expression - gt.expression).mean()),
           "categories": {k: v["mae"] for k, v in cats.items()},
           "seconds": time.perf_counter() - start, "load_before": load0,
           "load_after": os.getloadavg()}
    print(json.dumps({k: v for k, v in out.items() if k != "categories"}, indent=1))
    print(" | ".join(f"{k} {v:.3f}" for k, v in out["categories"].items()))
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(out, f, indent=1)
        except OSError as error:
            print(f"--json {args.json}: cannot write ({error.strerror or error}); "
                  "pick a writable path", file=sys.stderr)


if __name__ == "__main__":
    main()
