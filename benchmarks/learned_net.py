"""A trained network on a prepared video it did not see, against that video's teacher fit.

    python benchmarks/learned_net.py --weights runs/light_loo \
        --data data/prepared --person hdtf_WDA_KatieHill_000 --out loo.json

On every frame of the held-out person's prepared crops (`cpem-jax prepare` output):
  - expression: per-unit MAE of the 52 ARKit weights, network vs the teacher (the identity-locked
    fit of that video), and the same for a constant predictor (the mean teacher weights of the
    other videos), so "learned" is measured against guessing the average face;
  - landmarks: NME (mean point error / sqrt(box area) of the front end's 68 points) of the
    network's projected 68 points against the front end's, beside the fit's own NME;
  - head pose: mean absolute error per angle (pitch, yaw, roll), degrees, against the fit;
  - speed: frames/s of the network alone (batches of --batch crops, after one compiling call).
`--weights` is a training workdir or a weights file (`cpem-jax model export-net`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import cv2
import jax
import numpy as np

from cpem_jax.data import cpem_folder
from cpem_jax.data import teacher as teacher_lib
from cpem_jax.evaluation.landmarks import box_size, landmark_box, nme
from cpem_jax.evaluation.pose import wrapped_difference_deg
from cpem_jax.export.arkit import ARKIT_NAMES, build_arkit_mapping
from cpem_jax.geometry.pipeline import project_landmarks


def load_predictor(weights: str):
    from cpem_jax.estimation.net_weights import load_weights
    from cpem_jax.estimation.network import NetPredictor
    return NetPredictor.from_workdir(weights) if os.path.isdir(weights) else load_weights(weights)


def held_out_frames(data: str, person: str):
    index = cpem_folder.build_index(data)
    clips = [c for c in index.clips if c.person_id == person]
    if not clips:
        sys.exit(f"no person {person!r} in {data}")
    return index, clips


def predict(predictor, paths, batch: int):
    """Coefficients of every crop, and the network-alone frames/s (after compilation)."""
    s = predictor.image_size
    crops = np.stack([cv2.resize(cv2.imread(p)[..., ::-1], (s, s), interpolation=cv2.INTER_AREA)
                      for p in paths])
    predictor(crops[:batch])  # Compiles the batch shape.
    outputs, seconds = [], 0.0
    for start in range(0, len(crops), batch):
        chunk = crops[start:start + batch]
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        t0 = time.perf_counter()
        out = predictor(chunk)
        seconds += time.perf_counter() - t0
        outputs.append(jax.tree_util.tree_map(lambda x: np.asarray(x)[:batch - pad], out))
    coeffs = jax.tree_util.tree_map(lambda *x: np.concatenate(x), *outputs)
    return coeffs, len(crops) / seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True, help="prepared folder (cpem-jax prepare)")
    parser.add_argument("--person", required=True, help="the held-out person id")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args(argv)

    predictor = load_predictor(args.weights)
    model = predictor.model
    names = list(model.expression_names)
    index, clips = held_out_frames(args.data, args.person)
    teachers = teacher_lib.load_teachers(index, names)
    frame_ids = [f for c in clips for f in c.frame_ids]
    rows = [teachers[c.clip_id].lookup(f) for c in clips for f in c.frame_ids]
    teacher_row = {f: teachers[c.clip_id].rows.get(f) for c in clips for f in c.frame_ids}
    keep = np.array([r[3] for r in rows])
    frame_ids = [f for f, k in zip(frame_ids, keep) if k]
    rows = [r for r in rows if r[3]]
    t_exp, t_rot, t_tr = (np.stack([r[i] for r in rows]) for i in range(3))
    frames = [index.frames[f] for f in frame_ids]

    coeffs, fps = predict(predictor, [f.image_path for f in frames], args.batch)
    arkit = build_arkit_mapping(names)
    net_arkit, fit_arkit = arkit.to_arkit(np.asarray(coeffs.expression)), arkit.to_arkit(t_exp)
    others = [t for cid, t in teachers.items()
              if index.clips[cid].person_id != args.person]
    mean_exp = np.concatenate([t.expression[list(t.rows.values())] for t in others]).mean(0)
    mean_arkit = arkit.to_arkit(mean_exp[None])
    per_unit = np.abs(net_arkit - fit_arkit).mean(0)
    per_unit_mean = np.abs(mean_arkit - fit_arkit).mean(0)

    front = np.stack([cpem_folder.read_landmarks(f.landmarks_path) for f in frames])
    crop = frames[0].image_size[0]
    net_lm = np.asarray(project_landmarks(model, coeffs, predictor.camera)) * (
        crop / predictor.image_size)
    norm = box_size(landmark_box(front))
    net_nme = nme(net_lm, front, norm)
    npz_path, _ = teacher_lib.teacher_paths(teacher_lib.source_dir_of(frames[0]), args.person,
                                            clips[0].video_id)
    with np.load(npz_path) as data:
        picked = [teacher_row[f] for f in frame_ids]
        affine = np.asarray(data["crop_affine"])[picked]         # image -> crop pixels
        fit_lm = np.einsum("nij,npj->npi", affine[:, :, :2],
                           np.asarray(data["landmarks_fitted"])[picked]) + affine[:, None, :, 2]
    fit_nme = nme(fit_lm, front, norm)
    pose_err = wrapped_difference_deg(np.asarray(coeffs.rotation), t_rot)
    result = {
        "weights": os.path.abspath(args.weights), "step": predictor.step,
        "person": args.person, "frames": len(frames), "image_size": predictor.image_size,
        "expression_mae_arkit52": float(per_unit.mean()),
        "expression_mae_arkit52_mean_predictor": float(per_unit_mean.mean()),
        "expression_mae_per_unit": {a: round(float(v), 4) for a, v in
                                    zip(ARKIT_NAMES, per_unit)},
        "landmark_nme_vs_front_end_pct": float(np.nanmean(net_nme) * 100),
        "fit_landmark_nme_vs_front_end_pct": float(np.nanmean(fit_nme) * 100),
        "pose_mae_deg_vs_fit": {k: float(v) for k, v in
                                zip(("pitch", "yaw", "roll"), pose_err.mean(0))},
        "pose_mae_deg_vs_fit_mean": float(pose_err.mean()),
        "network_frames_per_second": float(fps), "batch": args.batch,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "expression_mae_per_unit"},
                     indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
