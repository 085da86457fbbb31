"""The fitting objective: the training losses (shared code) plus a temporal prior."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, Tuple

import flax.struct
import jax
import jax.numpy as jnp

from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.params import FrameParams, SharedParams, to_coefficients
from cpem_jax.geometry.camera import Camera
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.losses import (coefficient_regularization, expression_exclusive_loss,
                             expression_sparsity, landmark_loss, photometric_loss)

FRONTAL_YAW = math.radians(15.0)  # Eye landmarks weighted 10 within this yaw (method.md).


@dataclasses.dataclass(frozen=True)
class FitWeights:
    """Weights of the fitting terms.

    The landmark loss is in crop units (cpem_jax/losses/landmark.py); 80 there equals
    Deep3DFaceRecon's 1.6e-3 on pixels of a 224 crop. `temporal` penalises the squared change of
    expression, rotation (rad) and translation (/10 cm) between consecutive frames.
    """
    lm: float = 80.0
    pho: float = 1.9
    reg: float = 3e-4
    sp: float = 0.02
    exp: float = 10.0
    temporal: float = 0.005
    lighting_reg: float = 1e-3


@flax.struct.dataclass
class FitData:
    """A batch of N frames to fit.

    Attributes:
      image: [N, P, P, 3] float32 in [0, 1] face crops at the photometric resolution P.
      skin_mask: [N, P, P] float32.
      landmarks: [N, 68, 2] float32 pixels of the S x S crop the camera describes.
      anchor: FrameParams with leading [1]: the frame before this batch (temporal prior), and
      anchor_weight: [] float32, 0 when there is no previous frame.
    """
    image: jnp.ndarray
    skin_mask: jnp.ndarray
    landmarks: jnp.ndarray
    anchor: FrameParams
    anchor_weight: jnp.ndarray


def _temporal(frames: FrameParams, anchor: FrameParams, anchor_weight) -> jnp.ndarray:
    def sequence(x, a):
        return jnp.concatenate([a, x], axis=0)

    total = jnp.zeros((), jnp.float32)
    for name, scale in (("expression", 1.0), ("rotation", 1.0), ("translation", 0.1)):
        seq = sequence(getattr(frames, name), getattr(anchor, name)) * scale
        diff = jnp.sum((seq[1:] - seq[:-1]) ** 2, axis=-1)  # [N]
        step_weights = jnp.ones_like(diff).at[0].set(anchor_weight)
        total = total + jnp.sum(diff * step_weights) / jnp.maximum(jnp.sum(step_weights), 1.0)
    return total


def fit_terms(shared: SharedParams, frames: FrameParams, data: FitData, model: FaceModel,
              camera: Camera, weights: FitWeights, render_fn: Callable,
              photometric: bool) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """(total, named terms) of one batch; `photometric` (static) adds the rendered terms."""
    coeffs = to_coefficients(shared, frames)
    front = jnp.abs(jax.lax.stop_gradient(frames.rotation[:, 1])) <= FRONTAL_YAW
    size = float(camera.width)
    terms = {
        "lm": landmark_loss(project_landmarks(model, coeffs, camera), data.landmarks, front,
                            size),
        "reg": coefficient_regularization(shared.identity[None], shared.albedo[None]),
        "sp": expression_sparsity(frames.expression),
        "exp": expression_exclusive_loss(frames.expression, model.contradictory_pairs),
        "temporal": _temporal(frames, data.anchor, data.anchor_weight),
    }
    if photometric:
        size_p = data.image.shape[1]
        rendered = render_fn(model, coeffs, camera, image_size=(size_p, size_p))
        terms["pho"] = photometric_loss(data.image, rendered.image, rendered.mask, data.skin_mask)
        dc_free = frames.lighting.at[..., 0].set(0.0)
        terms["lighting_reg"] = jnp.mean(jnp.sum(dc_free ** 2, axis=(-2, -1)))
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, terms
