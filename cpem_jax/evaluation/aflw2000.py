"""AFLW2000-3D: 68-point 2D NME by yaw bins, normalised by the ground-truth box.

File layout (as distributed): ROOT/imageXXXXX.jpg with ROOT/imageXXXXX.mat beside it; each .mat
holds `pt3d_68` [3, 68] (x, y, z; x, y in image pixels, as given by the dataset: the same pixel
frame must be used by the predictor) and `Pose_Para` [1, 7] (pitch, yaw, roll in radians, then
translation and scale).

Protocol (3DDFA / CPEM): NME = mean over the 68 points of the 2D distance between predicted and
ground-truth landmarks, divided by sqrt(w * h) of the tight box of the ground-truth 2D landmarks;
frames are binned by |yaw| into [0,30], (30,60], (60,90] degrees (|yaw| > 90 goes to the last
bin); the headline number is the mean of the three bin means. CPEM reports 2.68 / 3.48 / 4.75 /
3.64 (%), 3DDFA-V2 2.89 / 3.57 / 4.49 / 3.65.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, List, Optional

import numpy as np

from cpem_jax.evaluation import landmarks
from cpem_jax.evaluation.image_input import load_rgb

N_POINTS = 68
# Paper numbers (NME in %), keys as landmarks.yaw_bin_labels() then the mean of the bins.
PAPER_AFLW2000_NME = {
    "CPEM paper": (2.68, 3.48, 4.75, 3.64),
    "3DDFA-V2 (from the CPEM paper)": (2.89, 3.57, 4.49, 3.65),
}
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class Aflw2000FormatError(ValueError):
    """An AFLW2000-3D file that does not match the documented layout."""


@dataclasses.dataclass
class Aflw2000Set:
    """names [N] file stems; image_paths [N]; landmarks [N, 68, 2] pixels; yaw_deg [N]."""
    names: List[str]
    image_paths: List[str]
    landmarks: np.ndarray
    yaw_deg: np.ndarray


def read_annotation(path: str):
    """One .mat -> (landmarks [68, 2] float64 pixels, pose [7] float64 as stored)."""
    from scipy import io as sio

    try:
        mat = sio.loadmat(path)
    except Exception as err:  # scipy raises several types for a bad file
        raise Aflw2000FormatError(f"{path}: not a readable MATLAB file ({err})") from None
    for key in ("pt3d_68", "Pose_Para"):
        if key not in mat:
            raise Aflw2000FormatError(f"{path}: lacks {key!r}; is this an AFLW2000-3D .mat?")
    pts = np.asarray(mat["pt3d_68"], np.float64)
    pose = np.asarray(mat["Pose_Para"], np.float64).reshape(-1)
    if pts.shape != (3, N_POINTS):
        raise Aflw2000FormatError(f"{path}: pt3d_68 is {pts.shape}, expected (3, 68)")
    if pose.shape != (7,):
        raise Aflw2000FormatError(f"{path}: Pose_Para has {pose.size} values, expected 7")
    return pts[:2].T.copy(), pose


def load_aflw2000(root: str, limit: Optional[int] = None) -> Aflw2000Set:
    """Reads every .mat of ROOT (sorted; the first `limit` when given) with its image."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"AFLW2000-3D root {root!r} is not a folder; pass the folder "
                                f"holding imageXXXXX.jpg and imageXXXXX.mat")
    mats = sorted(n for n in os.listdir(root) if n.lower().endswith(".mat"))
    if not mats:
        raise Aflw2000FormatError(f"no .mat files in {root!r}")
    mats = mats[:limit] if limit else mats
    names, paths, lms, yaws = [], [], [], []
    for name in mats:
        stem = name[:-4]
        image = next((os.path.join(root, stem + e) for e in _IMAGE_EXTENSIONS
                      if os.path.isfile(os.path.join(root, stem + e))), None)
        if image is None:
            raise Aflw2000FormatError(f"{os.path.join(root, name)} has no image {stem}.jpg")
        lm, pose = read_annotation(os.path.join(root, name))
        names.append(stem)
        paths.append(image)
        lms.append(lm)
        yaws.append(np.degrees(pose[1]))
    return Aflw2000Set(names, paths, np.stack(lms), np.asarray(yaws))


def aflw2000_scores(predicted: np.ndarray, target: np.ndarray, yaw_deg: np.ndarray) -> dict:
    """predicted, target [N, 68, 2] pixels, yaw_deg [N] -> `landmarks.nme_by_yaw_bins` in %.

    Rows of `predicted` with a NaN (no face) are left out and counted in "n_no_face".
    """
    predicted = np.asarray(predicted, np.float64)
    target = np.asarray(target, np.float64)
    if predicted.shape != target.shape or predicted.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be "
                         f"[N, 68, 2]")
    values = landmarks.nme(predicted, target, landmarks.box_size(landmarks.landmark_box(target)))
    out = landmarks.nme_by_yaw_bins(values * 100.0, yaw_deg)
    out["n_no_face"] = int((~np.isfinite(values)).sum())
    out["unit"] = "%"
    return out


def evaluate_aflw2000(predict_landmarks_fn: Callable[[np.ndarray], np.ndarray], root: str,
                      limit: Optional[int] = None) -> dict:
    """Runs a landmark predictor on AFLW2000-3D and scores it.

    Args:
      predict_landmarks_fn: image [H, W, 3] float32 RGB in [0, 1] -> [68, 2] pixels in the
        image (NaN when no face was found).
      root: the AFLW2000-3D folder.
      limit: evaluate only the first `limit` files (sorted), for quick checks.
    Returns:
      `aflw2000_scores` plus "dataset": "AFLW2000-3D".
    """
    data = load_aflw2000(root, limit)
    pred = np.full(data.landmarks.shape, np.nan)
    for i, path in enumerate(data.image_paths):
        p = np.asarray(predict_landmarks_fn(load_rgb(path)), np.float64)
        if p.shape != (N_POINTS, 2):
            raise ValueError(f"predict_landmarks_fn returned {p.shape}, expected (68, 2)")
        pred[i] = p
    out = aflw2000_scores(pred, data.landmarks, data.yaw_deg)
    out["dataset"] = "AFLW2000-3D"
    return out
