"""The per-image fit on AFLW2000-3D: 68-point NME per |yaw| bin with each face front end.

For every image and backend: the front end's landmarks (and MediaPipe's 478 points) come from
`evaluation.aflw2000.predict_aflw2000` (detector, or for a detector miss a box placed on the
ground truth, counted as a miss); the face is cropped as `cpem-jax fit` crops it
(`detect.crop.square_from_landmarks`, 224 px) and fitted as one image (`fit.SequenceFitter`,
the default FitConfig unless --no-photometric); the fitted model's 68 landmarks are mapped back
to the image and scored against `pt3d_68` (NME / sqrt(w * h) of the ground-truth box, in %).

Two fitted 68-point sets are scored: the face model's own 68 landmarks (ICT-FaceKit's vertex
list, what every writer of the project reports) and, for a fit to MediaPipe's points, the
fitted model's dense points at MediaPipe's 68 iBUG vertices (`IBUG68_FROM_MESH`, the same
definition as the front end's raw 68). The raw front-end NME and the fitted yaw against the
ground-truth yaw (project convention, `Aflw2000Set.project_pose`) are reported too.

Run (figures go to experiments/dense_fit/README.md; research-use data, never copied):
  python benchmarks/aflw2000_fit.py --backends mediapipe,dlib --json /tmp/aflw_fit.json
`CPEM_SRC=/path/to/other/checkout` runs another version of the package (e.g. an older commit
exported with `git archive`); features it lacks (dense points) are skipped.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SRC = Path(os.environ.get("CPEM_SRC", REPO))
sys.path.insert(0, str(SRC))

from cpem_jax.evaluation import aflw2000  # noqa: E402


def _default_root() -> str:
    shared = os.environ.get("CPEM_SHARED", str(REPO.parent / "shared"))
    return os.path.join(shared, "data", "aflw2000-3d-sample")


def _git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def fit_backend(name: str, data, photometric: bool, iterations_scale: float, progress: bool):
    """One backend: front-end predictions, then one fit per image -> dict of arrays."""
    from cpem_jax.detect.backends import make_landmarker
    from cpem_jax.detect.crop import (CropConfig, apply_affine, crop_affine, invert_affine,
                                      square_from_landmarks, warp_image)
    from cpem_jax.face_model import load_face_model
    from cpem_jax.fit.fitter import FitConfig, SequenceFitter
    from cpem_jax.io import read_image

    landmarker = make_landmarker(name)
    pred = aflw2000.predict_aflw2000(landmarker, data, progress=progress)
    model = load_face_model()
    base = FitConfig()
    scale = lambda n: max(1, int(round(n * iterations_scale)))
    config = FitConfig(photometric=photometric,
                       identity_landmark_iters=scale(base.identity_landmark_iters),
                       identity_photo_iters=scale(base.identity_photo_iters))
    dense_table = None
    has_dense = "dense" in inspect.signature(SequenceFitter.__init__).parameters
    if has_dense and hasattr(landmarker, "dense_in_boxes"):
        from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
        dense_table = dense_landmarks_for(model)
    fitter = (SequenceFitter(model, config, dense=dense_table) if has_dense
              else SequenceFitter(model, config))
    crop_config = CropConfig(size=config.size)
    n = len(data.names)
    out = {"fit68": np.full((n, 68, 2), np.nan), "fit68_mesh": np.full((n, 68, 2), np.nan),
           "yaw_fit_deg": np.full(n, np.nan), "fit_s": np.zeros(n)}
    iterator = range(n)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc=f"fit {name}", unit="image")
    for i in iterator:
        lm = pred.landmarks[i]
        if not np.isfinite(lm).all():
            continue
        image = read_image(data.image_paths[i])
        affine = crop_affine(square_from_landmarks(lm, crop_config), config.size)
        crop = warp_image(image, affine, (config.size, config.size), crop_config.border)
        kwargs = {}
        if dense_table is not None:
            dense = landmarker.dense_in_boxes(image, pred.boxes[i][None].astype(np.float32))[0]
            kwargs["dense"] = apply_affine(affine, dense)[None].astype(np.float32)
        start = time.perf_counter()
        fit = fitter.fit(crop[None], apply_affine(affine, lm.astype(np.float32))[None],
                         progress=False, **kwargs)
        out["fit_s"][i] = time.perf_counter() - start
        back = invert_affine(affine)
        out["fit68"][i] = apply_affine(back, np.asarray(fit.landmarks_fitted[0], np.float64))
        if getattr(fit, "dense_fitted", None) is not None:
            from cpem_jax.detect.mediapipe_mesh import IBUG68_FROM_MESH
            out["fit68_mesh"][i] = apply_affine(back, np.asarray(
                fit.dense_fitted[0][IBUG68_FROM_MESH], np.float64))
        out["yaw_fit_deg"][i] = np.degrees(float(fit.frames.rotation[0, 1]))
    if hasattr(landmarker, "close"):
        landmarker.close()
    out["raw68"] = pred.landmarks
    out["missed"] = pred.missed
    return out


def yaw_ratio(fit_deg, true_deg, yaw_bins_deg):
    """Mean fitted |yaw| / true |yaw| per |yaw| bin (bins by the release yaw)."""
    from cpem_jax.evaluation import landmarks
    idx = landmarks.yaw_bin_index(yaw_bins_deg)
    out = {}
    for b, label in enumerate(landmarks.yaw_bin_labels()):
        rows = (idx == b) & np.isfinite(fit_deg) & (np.abs(true_deg) > 5)
        out[label] = (float(np.mean(np.abs(fit_deg[rows]) / np.abs(true_deg[rows])))
                      if rows.any() else None)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=_default_root())
    parser.add_argument("--backends", default="mediapipe,dlib")
    parser.add_argument("--no-photometric", action="store_true")
    parser.add_argument("--iterations-scale", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    data = aflw2000.load_aflw2000(args.root, args.limit)
    load0 = os.getloadavg()
    report = {"code": _git_state(), "src": str(SRC), "photometric": not args.no_photometric,
              "images": len(data.names), "load_before": load0, "backends": {}}
    true_yaw = np.degrees(data.project_pose[:, 1])
    for name in args.backends.split(","):
        t0 = time.perf_counter()
        res = fit_backend(name, data, not args.no_photometric, args.iterations_scale,
                          not args.quiet)
        entry = {"seconds": time.perf_counter() - t0,
                 "fit_seconds_per_image": float(np.mean(res["fit_s"][res["fit_s"] > 0]))}
        for key in ("raw68", "fit68", "fit68_mesh"):
            if np.isfinite(res[key]).any():
                entry[key] = aflw2000.aflw2000_scores(res[key], data.landmarks, data.yaw_deg,
                                                      res["missed"])
        entry["yaw_ratio"] = yaw_ratio(res["yaw_fit_deg"], true_yaw, data.yaw_deg)
        entry["per_image"] = {"names": data.names, "yaw_deg": data.yaw_deg.tolist(),
                              "yaw_fit_deg": res["yaw_fit_deg"].tolist(),
                              "true_project_yaw_deg": true_yaw.tolist()}
        report["backends"][name] = entry
        rows = [(key, entry[key]) for key in ("raw68", "fit68", "fit68_mesh") if key in entry]
        for key, scores in rows:
            bins = " / ".join(f"{b['nme']:.2f}" for b in scores["bins"].values())
            print(f"{name:9s} {key:10s} {bins} / mean {scores['mean_of_bins']:.2f}")
        print(f"{name:9s} yaw ratio {entry['yaw_ratio']}  fit s/image "
              f"{entry['fit_seconds_per_image']:.2f}")
    report["load_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=float)


if __name__ == "__main__":
    main()
