"""What per-video fitting optimises: one identity and albedo, per-frame everything else."""
from __future__ import annotations

import flax.struct
import jax.numpy as jnp

from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.shading import ambient_lighting


@flax.struct.dataclass
class SharedParams:
    """Per video: identity [K_id] (~N(0, 1)) and albedo [K_alb]."""
    identity: jnp.ndarray
    albedo: jnp.ndarray


@flax.struct.dataclass
class FrameParams:
    """Per frame, for N frames: expression [N, K_exp] in [0, 1] (kept there by projection),
    rotation [N, 3] radians, translation [N, 3] cm, lighting [N, 3, 9]."""
    expression: jnp.ndarray
    rotation: jnp.ndarray
    translation: jnp.ndarray
    lighting: jnp.ndarray


def init_shared(model: FaceModel) -> SharedParams:
    return SharedParams(identity=jnp.zeros((model.n_identity,), jnp.float32),
                        albedo=jnp.zeros((model.n_albedo,), jnp.float32))


def init_frames(model: FaceModel, n: int, ambient: float = 0.9) -> FrameParams:
    return FrameParams(expression=jnp.zeros((n, model.n_expression), jnp.float32),
                       rotation=jnp.zeros((n, 3), jnp.float32),
                       translation=jnp.zeros((n, 3), jnp.float32),
                       lighting=ambient_lighting(ambient, (n,)))


def to_coefficients(shared: SharedParams, frames: FrameParams) -> Coefficients:
    """The shared identity/albedo broadcast to every frame -> Coefficients with leading [N]."""
    n = frames.expression.shape[0]
    return Coefficients(identity=jnp.broadcast_to(shared.identity, (n,) + shared.identity.shape),
                        expression=frames.expression,
                        albedo=jnp.broadcast_to(shared.albedo, (n,) + shared.albedo.shape),
                        lighting=frames.lighting, rotation=frames.rotation,
                        translation=frames.translation)


def project_frames(frames: FrameParams) -> FrameParams:
    """Keeps expression weights in [0, 1] (projected gradient descent)."""
    return frames.replace(expression=jnp.clip(frames.expression, 0.0, 1.0))
