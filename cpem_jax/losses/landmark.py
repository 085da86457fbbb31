"""Weighted landmark losses: the paper's 68 points, and dense points (MediaPipe's 478) where the
face model has a dense table (`cpem_jax.face_model.dense_landmarks`).

Landmarks are in the iBUG/Multi-PIE 68-point order, in pixels of the network's input crop (u right,
v down). The loss unit is the crop size: both sets are divided by `image_size` before the squared
distance is taken, so a value of 1e-4 is an RMS-weighted error of 1% of the crop (2.24 px at 224).
This keeps the loss independent of the crop resolution. For scale: Deep3DFaceRecon measures in
pixels (weight 1.6e-3); the same weight in crop units would be 1.6e-3 * 224^2 ~ 80.

Weights (the paper): jaw contour (points 0-16) 1, inner face (17-67) 10, except the eyes (36-47),
which get 10 only on flagged frames (`front_face_flag`: in the paper's training data |yaw| <= 15
deg, where its inner points come from dlib; in the fit |yaw| <= `objective.FRONTAL_YAW`) and 1
otherwise.

Dense points (`dense_landmark_loss`): the same crop units; each point has a weight per frame,
its region's weight (`DENSE_REGION_WEIGHTS`: the lid and inner/outer lip contours, which carry
blinks and mouth shapes, 20; brows and nose 10; iris 10; face oval and the rest of the surface 5,
so that the mean weight over the 478 points, 7.8, is the 68-point set's 7.75 and the one `lm`
weight of the objective fits both) times the detection's own factors (a closed eye's iris is
not seen, see `cpem_jax.fit`) times visibility: a point whose surface normal faces away from the
camera (the far side of a turned head) weighs `BACK_FACING_WEIGHT` (0.3), ramping to 1 as the
normal turns toward the camera. The rule replaces the 68-point set's frontal flag: the mesh
points are 3D surface points, so a profile view keeps every point, each trusted as far as it is
seen. The loss is sum(weight * squared offset) / (N * P): a point with weight 0 (not detected,
outside the model's face area) adds nothing, without changing the scale of the others.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from cpem_jax.face_model.dense_landmarks import DenseLandmarks, dense_points
from cpem_jax.face_model.model import Coefficients
from cpem_jax.geometry.camera import Camera, project, transform
from cpem_jax.geometry.rotation import euler_to_matrix

N_LANDMARKS = 68
# iBUG 68-point index ranges (start, stop).
JAW_CONTOUR = (0, 17)
EYES = (36, 48)
CONTOUR_WEIGHT = 1.0
INNER_WEIGHT = 10.0
EYE_WEIGHT_FRONTAL = 10.0
EYE_WEIGHT_PROFILE = 1.0
DENSE_REGION_WEIGHTS = {"surface": 5.0, "contour": 1.0, "brows": 10.0, "nose": 10.0,
                        "eyelids": 20.0, "lips": 20.0, "iris": 10.0}
BACK_FACING_WEIGHT = 0.3
# Normal z-component (toward the camera) from which a point counts as fully seen.
FACING_FULL = 0.3


def landmark_weights(front_face_flag: jnp.ndarray) -> jnp.ndarray:
    """front_face_flag [N] bool -> per-landmark weights [N, 68] float32."""
    index = jnp.arange(N_LANDMARKS)
    base = jnp.where((index >= JAW_CONTOUR[0]) & (index < JAW_CONTOUR[1]), CONTOUR_WEIGHT,
                     INNER_WEIGHT)
    is_eye = (index >= EYES[0]) & (index < EYES[1])
    flag = jnp.asarray(front_face_flag, bool)[:, None]
    eye_weight = jnp.where(flag, EYE_WEIGHT_FRONTAL, EYE_WEIGHT_PROFILE)     # [N, 1]
    return jnp.where(is_eye[None, :], eye_weight, base[None, :]).astype(jnp.float32)


def landmark_loss(predicted: jnp.ndarray, target: jnp.ndarray, front_face_flag: jnp.ndarray,
                  image_size: float) -> jnp.ndarray:
    """Mean over frames and the 68 points of weight * ||(predicted - target) / image_size||^2.

    Args:
      predicted: [N, 68, 2] float32, projected model landmarks, pixels of the crop.
      target: [N, 68, 2] float32, detected landmarks, pixels of the crop.
      front_face_flag: [N] bool, True on near-frontal frames (eye points weighted 10).
      image_size: crop size in pixels (224 in the paper), the loss unit.

    Returns:
      scalar float32.
    """
    if predicted.shape != target.shape or predicted.shape[-2:] != (N_LANDMARKS, 2):
        raise ValueError(f"landmark_loss expects predicted and target [N, 68, 2], got "
                         f"{predicted.shape} and {target.shape}")
    if jnp.shape(front_face_flag) != predicted.shape[:1]:
        raise ValueError(f"front_face_flag must be [N] = {predicted.shape[:1]}, got "
                         f"{jnp.shape(front_face_flag)}")
    if not image_size or image_size <= 0:
        raise ValueError(f"image_size must be the crop size in pixels (> 0), got {image_size}")
    offset = (predicted - target) / image_size
    squared = jnp.sum(offset * offset, axis=-1)                          # [N, 68]
    return jnp.mean(landmark_weights(front_face_flag) * squared)


def dense_region_weights(dense: DenseLandmarks) -> jnp.ndarray:
    """[P] float32: each point's region weight (`DENSE_REGION_WEIGHTS`), 0 where not valid."""
    table = jnp.array([DENSE_REGION_WEIGHTS[name] for name in dense.region_names], jnp.float32)
    return jnp.where(dense.valid, table[dense.region], 0.0)


def facing(dense: DenseLandmarks, rotation: jnp.ndarray) -> jnp.ndarray:
    """How much each point faces the camera: rotation [N, 3] -> [N, P] in [-1, 1], the camera-z
    component of the rotated rest normal (1: facing the camera). No gradient flows through it."""
    matrix = euler_to_matrix(jax.lax.stop_gradient(rotation))
    return jnp.einsum("nj,pj->np", matrix[:, 2, :], dense.normals)


def visibility_weights(dense: DenseLandmarks, rotation: jnp.ndarray) -> jnp.ndarray:
    """[N, P] in [BACK_FACING_WEIGHT, 1]: 1 for points facing the camera (normal z >=
    FACING_FULL), BACK_FACING_WEIGHT for points facing away, linear in between."""
    ramp = jnp.clip(facing(dense, rotation) / FACING_FULL, 0.0, 1.0)
    return BACK_FACING_WEIGHT + (1.0 - BACK_FACING_WEIGHT) * ramp


def project_dense(dense: DenseLandmarks, coeffs: Coefficients, camera: Camera) -> jnp.ndarray:
    """The P dense points projected: Coefficients [N] -> [N, P, 2] pixels of the camera."""
    points = dense_points(dense, coeffs.identity, coeffs.expression)
    moved = transform(points, euler_to_matrix(coeffs.rotation), coeffs.translation, camera)
    return project(camera, moved)[0]


def dense_landmark_loss(predicted: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray,
                        image_size: float) -> jnp.ndarray:
    """sum over frames and points of weight * ||(predicted - target) / image_size||^2 / (N * P).

    Args:
      predicted: [N, P, 2] float32 projected model points, pixels of the crop.
      target: [N, P, 2] float32 detected points, pixels (may be NaN where the weight is 0).
      weights: [N, P] float32 >= 0 per-point weights (module docstring).
      image_size: crop size in pixels, the loss unit.
    Returns:
      scalar float32 (finite, with finite gradients, where targets are NaN under weight 0).
    """
    if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[-1] != 2:
        raise ValueError(f"dense_landmark_loss expects predicted and target [N, P, 2], got "
                         f"{predicted.shape} and {target.shape}")
    if weights.shape != predicted.shape[:2]:
        raise ValueError(f"weights must be [N, P] = {predicted.shape[:2]}, got {weights.shape}")
    if not image_size or image_size <= 0:
        raise ValueError(f"image_size must be the crop size in pixels (> 0), got {image_size}")
    used = weights > 0
    offset = jnp.where(used[..., None], predicted - jnp.where(used[..., None], target, 0.0),
                       0.0) / image_size
    squared = jnp.sum(offset * offset, axis=-1)                          # [N, P]
    return jnp.sum(jnp.where(used, weights, 0.0) * squared) / (predicted.shape[0]
                                                                * predicted.shape[1])
