"""The 68 iBUG points in the 3D convention, as vertices of ICT-FaceKit.

Two conventions share the iBUG numbering. The 2D one (300-W, dlib) puts the jaw on the visible
outline, which slides over the face as the head turns; ICT's own landmark vertices
(`FaceModel.landmark_ids`, from its vertex_indices.json) are the points the 68-point fit aims at
dlib's detections. The 3D one (300W-LP and AFLW2000-3D, from 3D face model fits) puts every
point at a fixed place on the 3D face, whatever the view: 68 fixed vertices of the Basel Face
Model fitted to each image (Zhu et al., CVPR 2016). Scored against 3D-style annotations, ICT's
own vertices sit off them by a convention, not by the fit.

The table (`data/ict_ibug68_3d.npz`, written by benchmarks/build_ict_ibug68.py) takes the
convention from that definition: BFM's mean shape at its 68 keypoints, aligned to ICT's mean
shape by a similarity transform on the 51 inner points (ICT's own landmark vertices of the same
numbers), and for each iBUG point a vertex of ICT's narrow face area near its aligned keypoint,
left-right symmetric (mirror pairs of points on mirror vertices of ICT's symmetric mean shape,
midline points on the midline). No image is used. It holds the vertex ids, each chosen vertex's
distance to its aligned keypoint and that of ICT's own, the alignment's residual, the source's
sha256 and the format version. On the AFLW2000-3D sample the fitted face read at these vertices
scores 2.92 / 4.06 / 8.14 % NME by yaw bin (mean 5.04) against 3.72 / 5.62 / 9.69 (6.34) at
ICT's own, in the same run (experiments/dense_fit, section 21).
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from cpem_jax.face_model.dense_landmarks import is_ict, read_versioned_npz
from cpem_jax.face_model.model import FaceModel

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ict_ibug68_3d.npz")
FORMAT_VERSION = 2
N_POINTS = 68
BUILDER = "benchmarks/build_ict_ibug68.py"


class Ibug68TableError(ValueError):
    """The 3D-convention table is missing, unreadable, of another version or not for ICT."""


def read_ibug68_3d(path: str = DATA_FILE) -> dict:
    """The table as a dict of numpy arrays; Ibug68TableError names what is wrong and the fix."""
    table = read_versioned_npz(path, FORMAT_VERSION, "3D-convention landmark table", BUILDER,
                               Ibug68TableError)
    ids = np.asarray(table.get("vertex_ids", ()))
    if ids.shape != (N_POINTS,) or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0:
        raise Ibug68TableError(f"{path!r}: vertex_ids must be {N_POINTS} vertex indices, got "
                               f"shape {ids.shape}; rebuild it with `python {BUILDER}`")
    return table


def ibug68_3d_ids(model: FaceModel, path: str = DATA_FILE) -> Optional[np.ndarray]:
    """[68] int32 vertex ids of the 3D-convention iBUG points on `model`, or None for a model
    the table is not built for (not ICT). Raises Ibug68TableError for an unusable table."""
    if not is_ict(model):
        return None
    ids = np.asarray(read_ibug68_3d(path)["vertex_ids"], np.int64)
    if ids.max() >= model.n_vertices:
        raise Ibug68TableError(f"{path!r} names vertex {int(ids.max())}, but {model.name} has "
                               f"{model.n_vertices}; rebuild it with `python {BUILDER}`")
    return ids.astype(np.int32)
