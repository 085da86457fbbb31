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
numbers), and for each iBUG point a vertex near its aligned keypoint, left-right symmetric
(mirror pairs of points on mirror vertices of ICT's symmetric mean shape, midline points on the
midline). No image is used. It holds two choices: `vertex_ids` on ICT's full face area, where
every keypoint has a vertex within 0.5 cm, and `narrow_vertex_ids` on the narrow area alone,
whose edge lies 0.9-1.3 cm in front of the outer jaw keypoints (0-3, 13-16); with each, the
chosen vertices' distances to the aligned keypoints and those of ICT's own, the alignment's
residual, the source's sha256 and the format version.

The fit renders the narrow area, but ICT's areas share their leading vertices (the full area's
first 6706 are the narrow area's) and every blendshape covers both, so the fitted coefficients
place the full area's vertices too: `ibug68_3d_reading` hands back the full-area model of the
same source to read them with, or the narrow choice where no full area can be had (a converted
narrow .npz). Scores on the AFLW2000-3D sample: experiments/dense_fit, sections 21 and 23.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

import numpy as np

from cpem_jax.face_model.dense_landmarks import is_ict, read_versioned_npz
from cpem_jax.face_model.model import FaceModel

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ict_ibug68_3d.npz")
FORMAT_VERSION = 3
N_POINTS = 68
BUILDER = "benchmarks/build_ict_ibug68.py"
_LOG = logging.getLogger(__name__)


class Ibug68TableError(ValueError):
    """The 3D-convention table is missing, unreadable, of another version or not for ICT."""


def read_ibug68_3d(path: str = DATA_FILE) -> dict:
    """The table as a dict of numpy arrays; Ibug68TableError names what is wrong and the fix."""
    table = read_versioned_npz(path, FORMAT_VERSION, "3D-convention landmark table", BUILDER,
                               Ibug68TableError)
    for key in ("vertex_ids", "narrow_vertex_ids"):
        ids = np.asarray(table.get(key, ()))
        if ids.shape != (N_POINTS,) or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0:
            raise Ibug68TableError(f"{path!r}: {key} must be {N_POINTS} vertex indices, got "
                                   f"shape {ids.shape}; rebuild it with `python {BUILDER}`")
    return table


def ibug68_3d_ids(model: FaceModel, path: str = DATA_FILE) -> Optional[np.ndarray]:
    """[68] int32 vertex ids of the 3D-convention iBUG points on `model` (the full-area choice
    where the model has those vertices, else the narrow-area one), or None for a model the
    table is not built for (not ICT). Raises Ibug68TableError for an unusable table."""
    if not is_ict(model):
        return None
    return _ids_on(model, read_ibug68_3d(path), path)


def _ids_on(model: FaceModel, table: dict, path: str) -> np.ndarray:
    """[68] int32: the table's first choice whose vertices `model` has (`ibug68_3d_ids`)."""
    for key in ("vertex_ids", "narrow_vertex_ids"):
        ids = np.asarray(table[key], np.int64)
        if ids.max() < model.n_vertices:
            return ids.astype(np.int32)
    raise Ibug68TableError(f"{path!r} names vertex {int(ids.max())}, but {model.name} has "
                           f"{model.n_vertices}; rebuild it with `python {BUILDER}`")


def ibug68_3d_reading(model: FaceModel, spec: Optional[str] = None,
                      path: str = DATA_FILE) -> Tuple[Optional[FaceModel], Optional[np.ndarray]]:
    """(the model to read the 3D-convention points with, their [68] int32 vertex ids) for
    coefficients fitted with `model` (loaded from `spec`, see `load_face_model`); (None, None)
    for a model without a table.

    A narrow-area ICT model gets ICT's full face area from the same source when that model
    carries `model`'s vertices and bases unchanged in its leading vertices (module docstring);
    otherwise `model` itself with the narrow choice. Raises Ibug68TableError for an unusable
    table."""
    if not is_ict(model):
        return None, None
    table = read_ibug68_3d(path)
    ids, full = _ids_on(model, table, path), np.asarray(table["vertex_ids"], np.int32)
    if np.array_equal(ids, full):
        return model, ids
    from cpem_jax.face_model.registry import FaceModelNotFound, load_face_model
    from cpem_jax.face_model.cache import ModelCacheError
    try:
        wide = load_face_model(spec, area="full")
    except (FaceModelNotFound, ModelCacheError, OSError, ValueError) as err:
        _LOG.warning("3D-convention points on the narrow face area: the full area could not be "
                     "loaded (%s)", str(err).splitlines()[0] if str(err) else type(err).__name__)
        return model, ids
    n = model.n_vertices
    same = (is_ict(wide) and wide.n_vertices > int(full.max())
            and wide.n_identity == model.n_identity and wide.n_expression == model.n_expression
            and all(np.array_equal(np.asarray(getattr(wide, name))[:n],
                                   np.asarray(getattr(model, name)))
                    for name in ("mean_shape", "id_basis", "exp_basis")))
    if not same:
        _LOG.warning("3D-convention points on the narrow face area: %s has no full face area "
                     "matching the fitted model", spec or "the default face model")
        return model, ids
    return wide, full
