"""Weighted 68-landmark loss.

Landmarks are in the iBUG/Multi-PIE 68-point order, in pixels of the network's input crop (u right,
v down). The loss unit is the crop size: both sets are divided by `image_size` before the squared
distance is taken, so a value of 1e-4 is an RMS-weighted error of 1% of the crop (2.24 px at 224).
This keeps the loss independent of the crop resolution. For scale: Deep3DFaceRecon measures in
pixels (weight 1.6e-3); the same weight in crop units would be 1.6e-3 * 224^2 ~ 80.

Weights (the paper): jaw contour (points 0-16) 1, inner face (17-67) 10, except the eyes (36-47),
which get 10 only on near-frontal frames (`front_face_flag`, |yaw| <= 15 deg, where dlib's eye
points are reliable) and 1 otherwise.
"""
from __future__ import annotations

import jax.numpy as jnp

N_LANDMARKS = 68
# iBUG 68-point index ranges (start, stop).
JAW_CONTOUR = (0, 17)
EYES = (36, 48)
CONTOUR_WEIGHT = 1.0
INNER_WEIGHT = 10.0
EYE_WEIGHT_FRONTAL = 10.0
EYE_WEIGHT_PROFILE = 1.0


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
