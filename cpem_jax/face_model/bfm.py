"""Loader for BFM09 as the paper uses it, with an expression basis the user brings.

Files (licence-restricted, never shipped): `BFM_model_front.mat` as processed by Deep3DFaceRecon
(BFM09 with ears and neck removed, 35,709 vertices) and an expression basis in the same topology
(the paper: 46 FaceWarehouse FACS blendshapes as deltas from the neutral, weights in [0, 1]).

BFM_model_front.mat keys read here (N vertices, F triangles):
  meanshape [1, 3N] or [3N, 1] (x0 y0 z0 x1 ...), idBase [3N, K_id] (already scaled by the
  standard deviations, so weights ~N(0, 1)), meantex [1, 3N] and texBase [3N, K_tex] in 0..255,
  tri [F, 3] 1-based, keypoints [68] 1-based (iBUG order).
Expression basis file (.npz, .npy or .mat): `exp_basis` (or `exBase`) [3N, K] or [N, 3, K]; optional
  `names` [K] (unit names; default fw_00 ... fw_K-1) and `pairs` [P, 2] of unit names
  (contradictory pairs; default: none, which switches the expression-exclusive loss off).
Units: auto-detected from the mean shape (the one of um, mm, cm, dm or m that puts the outer eye
corners about 9 cm apart, as in ICT's mean face) and converted to cm.
"""
from __future__ import annotations

import logging
import os
from typing import Dict

import numpy as np
import scipy.io

from cpem_jax.face_model import expressions, regions
from cpem_jax.face_model.model import FaceModel

BFM_KEYS = ("meanshape", "idBase", "meantex", "texBase", "tri", "keypoints")
EXP_KEYS = ("exp_basis", "exBase")
OUTER_EYE_CORNERS = (36, 45)
EYE_CORNER_DISTANCE_CM = 9.0
UNIT_SCALES_TO_CM = {"um": 1e-4, "mm": 0.1, "cm": 1.0, "dm": 10.0, "m": 100.0}
FIX_HINT = ("BFM09 cannot be downloaded automatically (licence): register at the Basel Face Model "
            "site, build BFM_model_front.mat with Deep3DFaceRecon's script, and bring an "
            "expression basis in the same topology.")


class BfmFormatError(ValueError):
    """A BFM or expression-basis file that lacks what the loader needs."""


def _read_arrays(path: str, what: str) -> Dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist. {FIX_HINT}")
    try:
        if path.endswith(".mat"):
            return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
        if path.endswith(".npy"):
            return {"exp_basis": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, NotImplementedError) as err:
        raise BfmFormatError(f"cannot read {what} {path!r} ({err}). {FIX_HINT}") from None


def _per_vertex(flat: np.ndarray, n_vertices: int, key: str) -> np.ndarray:
    """[3N, K] or [1, 3N] or [N, 3, K] -> [N, 3, K] (or [N, 3] for vectors)."""
    arr = np.asarray(flat, np.float32)
    if arr.ndim == 3 and arr.shape[:2] == (n_vertices, 3):
        return arr
    if arr.ndim == 2 and 1 in arr.shape and arr.size == 3 * n_vertices:
        return arr.reshape(n_vertices, 3)
    if arr.ndim == 2 and arr.shape[0] == 3 * n_vertices:
        return arr.reshape(n_vertices, 3, arr.shape[1])
    raise BfmFormatError(f"{key} has shape {arr.shape}; expected [3N, K], [1, 3N] or [N, 3, K] "
                         f"with N = {n_vertices} vertices")


def detect_unit_scale(mean_shape: np.ndarray, landmark_ids: np.ndarray) -> float:
    """The factor (one of UNIT_SCALES_TO_CM) that converts the mean shape to cm."""
    a, b = (mean_shape[landmark_ids[i]] for i in OUTER_EYE_CORNERS)
    distance = float(np.linalg.norm(a - b))
    if not np.isfinite(distance) or distance <= 0:
        raise BfmFormatError("the mean shape's outer eye corners coincide; check `keypoints`")
    return min(UNIT_SCALES_TO_CM.values(),
               key=lambda s: abs(np.log(distance * s / EYE_CORNER_DISTANCE_CM)))


def load_bfm(bfm_path: str, expression_path: str, name: str = "bfm09") -> FaceModel:
    """BFM_model_front.mat + an expression basis -> FaceModel (cm)."""
    bfm = _read_arrays(bfm_path, "BFM model")
    missing = [k for k in BFM_KEYS if k not in bfm]
    if missing:
        raise BfmFormatError(f"{bfm_path!r} lacks {missing}; expected Deep3DFaceRecon's "
                             f"BFM_model_front.mat with keys {list(BFM_KEYS)}. {FIX_HINT}")
    n = np.asarray(bfm["meanshape"]).size // 3
    mean_shape = _per_vertex(bfm["meanshape"], n, "meanshape")
    id_basis = _per_vertex(bfm["idBase"], n, "idBase")
    albedo_mean = _per_vertex(bfm["meantex"], n, "meantex") / 255.0
    albedo_basis = _per_vertex(bfm["texBase"], n, "texBase") / 255.0
    triangles = np.asarray(bfm["tri"], np.int64) - 1
    landmark_ids = np.asarray(bfm["keypoints"], np.int64).ravel() - 1
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.min() < 0 or \
            triangles.max() >= n:
        raise BfmFormatError(f"`tri` must be [F, 3] 1-based vertex ids in 1..{n}")
    if landmark_ids.shape != (68,) or landmark_ids.min() < 0 or landmark_ids.max() >= n:
        raise BfmFormatError(f"`keypoints` must hold 68 1-based vertex ids in 1..{n}")

    exp = _read_arrays(expression_path, "expression basis")
    key = next((k for k in EXP_KEYS if k in exp), None)
    if key is None:
        raise BfmFormatError(f"{expression_path!r} lacks an expression basis: expected one of "
                             f"{list(EXP_KEYS)} ([3N, K] or [N, 3, K] deltas, N = {n})")
    exp_basis = _per_vertex(exp[key], n, key)
    k_exp = exp_basis.shape[-1]
    names = [str(s).strip() for s in np.asarray(exp.get("names", [])).ravel()]
    if not names:
        names = [f"fw_{i:02d}" for i in range(k_exp)]
        logging.warning("%s: no unit `names` in %s; using fw_00..fw_%02d", name,
                        expression_path, k_exp - 1)
    if len(names) != k_exp:
        raise BfmFormatError(f"{expression_path!r}: {len(names)} names for {k_exp} units")
    raw_pairs = np.asarray(exp.get("pairs", np.zeros((0, 2), str)))
    pairs = [tuple(str(s).strip() for s in p) for p in raw_pairs.reshape(-1, 2)]
    if not pairs:
        logging.warning("%s: no contradictory `pairs` in %s; the expression-exclusive loss "
                        "has nothing to act on", name, expression_path)

    scale = detect_unit_scale(mean_shape, landmark_ids)
    mean_cm = mean_shape * scale
    return FaceModel(
        mean_shape=mean_cm.astype(np.float32),
        id_basis=(id_basis * scale).astype(np.float32),
        exp_basis=(exp_basis * scale).astype(np.float32),
        albedo_mean=albedo_mean.astype(np.float32),
        albedo_basis=albedo_basis.astype(np.float32),
        triangles=triangles.astype(np.int32),
        landmark_ids=landmark_ids.astype(np.int32),
        contradictory_pairs=expressions.pair_indices(names, pairs, name),
        regions=regions.landmark_regions(mean_cm, landmark_ids),
        expression_names=tuple(names),
        name=name,
    )


