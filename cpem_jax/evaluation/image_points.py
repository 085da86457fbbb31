"""The estimated face's points in image pixels, read at chosen places of the face model: at
the dense front end's 68 (`dense68_image`) or at given vertices (`vertices_image`, e.g. the
3D-convention iBUG points of `cpem_jax.face_model.ibug68_3d`), for scoring against annotated
images (`cpem_jax.evaluation.annotated`)."""
from __future__ import annotations

import numpy as np

from cpem_jax.detect.base import N_LANDMARKS
from cpem_jax.detect.crop import apply_affine, invert_affine


def dense68_image(estimate, table) -> np.ndarray:
    """The estimated face's 68 points taken where the dense front end takes its own: the model's
    surface points of mesh vertices `IBUG68_FROM_MESH` (through the model's dense
    correspondence `table`, a `DenseLandmarks`), projected by the estimate's crop camera and
    mapped to image pixels -> [N, 68, 2] float64 (NaN rows where no face).

    The model's own 68 landmark vertices are one choice of 68 surface points; these are the
    ones MediaPipe's 68 are read at, so the two score the same points."""
    from cpem_jax.detect.mediapipe_mesh import IBUG68_FROM_MESH
    from cpem_jax.losses.landmark import project_dense

    if not np.any(estimate.face_found):
        return _in_image(estimate, None)
    return _in_image(estimate, np.asarray(project_dense(table, estimate.coefficients(),
                                                        estimate.camera))[:, IBUG68_FROM_MESH])


def vertices_image(estimate, model, ids) -> np.ndarray:
    """The estimated face's vertices `ids` [L] of its face `model`, projected by the estimate's
    crop camera and mapped to image pixels -> [N, L, 2] float64 (NaN rows where no face)."""
    from cpem_jax.geometry.pipeline import project_landmarks

    if not np.any(estimate.face_found):
        return _in_image(estimate, None, len(ids))
    return _in_image(estimate, np.asarray(project_landmarks(
        model, estimate.coefficients(), estimate.camera, ids)))


def _in_image(estimate, crop, n_points: int = N_LANDMARKS) -> np.ndarray:
    """crop [M, L, 2] crop pixels of the frames with a face (None: no face) -> [N, L, 2] float64
    image pixels through each frame's crop affine, NaN rows where no face."""
    n_points = n_points if crop is None else crop.shape[1]
    out = np.full((len(estimate.face_found), n_points, 2), np.nan)
    for row, i in enumerate(np.flatnonzero(estimate.face_found) if crop is not None else ()):
        out[i] = apply_affine(invert_affine(estimate.crop_affine[i]),
                              np.asarray(crop[row], np.float64))
    return out
