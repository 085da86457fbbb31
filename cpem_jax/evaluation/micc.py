"""MICC Florence: geometric error (mm) of the per-video shape against each subject's 3D scan.

File layout this reader expects (ASSUMPTION about the MICC distribution; check your copy):
  ROOT/subject_XX/...               one folder per subject (any name starting "subject")
    .../<anything>/*.obj|*.ply|*.wrl   the subject's ground-truth scan(s) in mm; when several,
                                      one whose path contains "frontal1" is preferred, else the
                                      first in sorted order
    .../<anything>/*.avi|*.mp4|*.mjpg|*.mov|*.mkv   the videos; each is assigned a condition by
                                      its path (case-insensitive): "cooperative" ->
                                      cooperative, else "outdoor" -> outdoor, else "indoor" ->
                                      indoor; other videos are listed in "skipped_videos".
Protocol (Genova et al. 2018, as in CPEM): for each video the predictor returns ONE shape (the
average of its per-frame shapes, identity and neutral expression); `geometry_error.scan_error`
crops the scan to 95 mm around its nose tip (the max-z point unless given), aligns with
similarity ICP and measures point-to-plane distances; the table reports, per condition, the mean
over videos of the per-video RMSE. CPEM reports 2.08 / 2.09 / 2.02 mm.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from cpem_jax.evaluation import geometry_error, scan_io

CONDITIONS = ("cooperative", "indoor", "outdoor")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mjpg", ".mjpeg", ".mov", ".mkv", ".m4v")
PAPER_MICC_RMSE_MM = {"CPEM paper": (2.08, 2.09, 2.02)}


class MiccFormatError(ValueError):
    """A MICC folder that does not match the documented layout."""


def condition_of(path: str) -> Optional[str]:
    """A video path -> "cooperative" | "outdoor" | "indoor" | None (by its path, any case)."""
    p = path.lower()
    for key in ("cooperative", "outdoor", "indoor"):
        if key in p:
            return key
    return None


def _walk(folder: str, extensions: Sequence[str]) -> List[str]:
    out = []
    for base, _, files in os.walk(folder):
        out += [os.path.join(base, f) for f in files if os.path.splitext(f)[1].lower() in
                extensions]
    return sorted(out)


def find_subjects(root: str, subjects: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    """subject -> {"scan": path, "videos": {path: condition}, "skipped_videos": [paths]}."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"MICC root {root!r} is not a folder; pass the folder holding "
                                f"the subject_XX folders")
    names = sorted(d for d in os.listdir(root)
                   if d.lower().startswith("subject") and os.path.isdir(os.path.join(root, d)))
    if subjects is not None:
        missing = sorted(set(subjects) - set(names))
        if missing:
            raise MiccFormatError(f"MICC root {root!r} lacks subjects {missing[:5]}")
        names = [n for n in names if n in set(subjects)]
    if not names:
        raise MiccFormatError(f"no subject* folders in {root!r}")
    out = {}
    for name in names:
        folder = os.path.join(root, name)
        scans = _walk(folder, scan_io.SCAN_EXTENSIONS)
        if not scans:
            raise MiccFormatError(f"{folder} has no scan ({', '.join(scan_io.SCAN_EXTENSIONS)})")
        preferred = [s for s in scans if "frontal1" in s.lower()]
        videos, skipped = {}, []
        for v in _walk(folder, VIDEO_EXTENSIONS):
            cond = condition_of(os.path.relpath(v, folder))
            if cond is None:
                skipped.append(v)
            else:
                videos[v] = cond
        out[name] = {"scan": (preferred or scans)[0], "videos": videos, "skipped_videos": skipped}
    return out


def summarise(per_video: List[dict], groups: Sequence[str]) -> dict:
    """Mean / std / count of the per-video "rmse_mm" per group and over all."""
    out = {}
    for g in list(groups) + ["all"]:
        vals = np.array([v["rmse_mm"] for v in per_video if g == "all" or v["group"] == g])
        out[g] = {"rmse_mm_mean": float(vals.mean()) if len(vals) else float("nan"),
                  "rmse_mm_std": float(vals.std()) if len(vals) else float("nan"),
                  "count": int(len(vals))}
    return out


def evaluate_micc(predict_shape_fn: Callable[[str], Optional[np.ndarray]], root: str,
                  triangles: np.ndarray, nose_index: int, pred_unit_to_mm: float = 10.0,
                  scan_unit_to_mm: float = 1.0, subjects: Optional[Sequence[str]] = None,
                  **scan_error_kwargs) -> dict:
    """Scores per-video shapes against the MICC scans.

    Args:
      predict_shape_fn: video path -> the video's average shape [V, 3] in model units (None
        when no face was found in the video: counted in "n_no_face").
      triangles: [F, 3] the predicted mesh's triangles (FaceModel.triangles).
      nose_index: the predicted nose-tip vertex (FaceModel.landmark_ids[30]).
      pred_unit_to_mm: mm per model unit (ICT: 10). scan_unit_to_mm: mm per scan unit (MICC: 1).
      scan_error_kwargs: passed to geometry_error.scan_error (crop_radius_mm, icp_iterations...).
    Returns:
      {"dataset": "MICC Florence", "conditions": {cond: {"rmse_mm_mean", "rmse_mm_std",
       "count"}, "all": ...}, "per_video": [{"subject", "video", "group", "rmse_mm", ...}],
       "n_no_face", "skipped_videos"}.
    """
    found = find_subjects(root, subjects)
    per_video, n_no_face, skipped = [], 0, []
    for subject, info in found.items():
        skipped += info["skipped_videos"]
        if not info["videos"]:
            continue
        scan, _ = scan_io.read_scan(info["scan"])
        for video, cond in info["videos"].items():
            shape = predict_shape_fn(video)
            if shape is None:
                n_no_face += 1
                continue
            err = geometry_error.scan_error(shape, triangles, scan, nose_index,
                                            pred_unit_to_mm=pred_unit_to_mm,
                                            scan_unit_to_mm=scan_unit_to_mm, **scan_error_kwargs)
            per_video.append({"subject": subject, "video": os.path.relpath(video, root),
                              "group": cond, "rmse_mm": err["rmse_mm"],
                              "mean_mm": err["mean_mm"], "scale": err["scale"]})
    return {"dataset": "MICC Florence", "conditions": summarise(per_video, CONDITIONS),
            "per_video": per_video, "n_no_face": n_no_face, "skipped_videos": skipped}
