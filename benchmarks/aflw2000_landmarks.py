"""Raw 68-point landmarks of the face front-ends on AFLW2000-3D: NME per |yaw| bin and speed.

For each backend (dlib: HOG detector + shape predictor; MediaPipe: BlazeFace detector + 478-point
face mesh, 68 points taken from it), every image is run through `FaceLandmarker.detect`; where
the detector misses the annotated face, the landmarks come from a box placed on the ground truth
(`cpem_jax.evaluation.aflw2000.predict_aflw2000`) and the image is counted as a miss in its bin.
NME is normalised by sqrt(w * h) of the ground-truth 68-point box (the AFLW2000-3D convention).
Both backends run in the same process, one after the other, on the same images.

Run (figures go to experiments/aflw2000/README.md):
  python benchmarks/aflw2000_landmarks.py
  python benchmarks/aflw2000_landmarks.py --root /path/to/AFLW2000 --limit 300 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cpem_jax.evaluation import aflw2000  # noqa: E402


def _default_root() -> str:
    shared = os.environ.get("CPEM_SHARED", str(REPO.parent / "shared"))
    return os.path.join(shared, "data", "aflw2000-3d-sample")


def _make(name: str):
    from cpem_jax.detect.backends import make_landmarker
    return make_landmarker(name)


def _git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes in the working tree" if dirty else "")


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for module in ("numpy", "cv2", "mediapipe", "dlib"):
        try:
            out[module] = getattr(__import__(module), "__version__", "?")
        except ImportError:
            out[module] = "not installed"
    return out


def run_backend(name: str, data) -> dict:
    """One backend on `data` -> scores, timings and per-image results."""
    start = time.perf_counter()
    landmarker = _make(name)
    setup_s = time.perf_counter() - start
    result = aflw2000.predict_aflw2000(landmarker, data, progress=False)
    if hasattr(landmarker, "close"):
        landmarker.close()
    scores = aflw2000.aflw2000_scores(result.landmarks, data.landmarks, data.yaw_deg,
                                      result.missed)
    hit = ~result.missed
    detected_only = aflw2000.aflw2000_scores(
        np.where(hit[:, None, None], result.landmarks, np.nan), data.landmarks, data.yaw_deg)
    per_image = aflw2000.landmarks.nme(
        result.landmarks, data.landmarks,
        aflw2000.landmarks.box_size(aflw2000.landmarks.landmark_box(data.landmarks))) * 100
    return {
        "backend": name, "setup_s": setup_s, "scores": scores,
        "detected_only": detected_only,
        "detect_s_per_image": float(result.detect_s.mean()),
        "fallback_s_per_miss": float(result.fallback_s[result.missed].mean())
        if result.missed.any() else float("nan"),
        "total_s_per_image": float((result.detect_s + result.fallback_s).mean()),
        "cpu_s_per_image": float(result.cpu_s.mean()),
        "per_image": [{"name": n, "yaw_deg": float(y), "nme_pct": float(e), "missed": bool(m)}
                      for n, y, e, m in zip(data.names, data.yaw_deg, per_image, result.missed)],
    }


def _fmt(value, digits=2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown(runs: list) -> str:
    labels = list(runs[0]["scores"]["bins"])
    head = ["front-end (raw 68 points)"] + [f"yaw {b}" for b in labels] + ["mean of bins"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for run in runs:
        s = run["scores"]
        cells = [f"{_fmt(s['bins'][b]['nme'])} (miss {s['bins'][b]['missed']}/"
                 f"{s['bins'][b]['count'] + s['bins'][b]['unscored']}"
                 + (f", unscored {s['bins'][b]['unscored']}" if s['bins'][b]['unscored'] else "")
                 + ")" for b in labels]
        lines.append("| " + " | ".join([run["backend"]] + cells + [_fmt(s["mean_of_bins"])])
                     + " |")
    for label, values in aflw2000.PAPER_AFLW2000_NME.items():
        lines.append("| " + " | ".join([label + ", dense-model fit"]
                                       + [f"{v:.2f}" for v in values]) + " |")
    lines += ["", "| front-end | NME on detected images only (mean of bins) | s/image detect "
              "(wall) | s per fallback call (wall) | s/image all (wall) | CPU s/image | "
              "setup s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        lines.append(f"| {run['backend']} | {_fmt(run['detected_only']['mean_of_bins'])} | "
                     f"{_fmt(run['detect_s_per_image'], 3)} | "
                     f"{_fmt(run['fallback_s_per_miss'], 3)} | "
                     f"{_fmt(run['total_s_per_image'], 3)} | {_fmt(run['cpu_s_per_image'], 3)} | "
                     f"{_fmt(run['setup_s'], 2)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=_default_root(),
                        help="AFLW2000-3D folder (default: the shared 100-image sample)")
    parser.add_argument("--limit", type=int, default=None,
                        help="a yaw-balanced subset of this many images")
    parser.add_argument("--backends", nargs="+", default=["dlib", "mediapipe"],
                        choices=["dlib", "mediapipe"])
    parser.add_argument("--json", default=None, help="also write all results to this file")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        sys.exit(f"AFLW2000-3D folder {args.root!r} not found; pass --root or set CPEM_SHARED.")
    data = aflw2000.load_aflw2000(args.root, args.limit)
    bins = np.bincount(aflw2000.landmarks.yaw_bin_index(data.yaw_deg), minlength=3)
    load_before = _load()
    runs = [run_backend(name, data) for name in args.backends]
    info = {"command": "python " + " ".join([os.path.relpath(__file__, REPO)] + sys.argv[1:]),
            "commit": _git_state(), "load_before": load_before, "load_after": _load(),
            "images": len(data.names), "images_per_bin": bins.tolist(), "versions": _versions(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    print(json.dumps(info, indent=1))
    print(markdown(runs))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"info": info, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
