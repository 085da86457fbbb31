"""Shape, albedo and landmarks of the morphable model from coefficients."""
import jax.numpy as jnp

from cpem_jax.face_model.model import Coefficients, FaceModel


def face_shape(model: FaceModel, coeffs: Coefficients) -> jnp.ndarray:
    """S = S_mean + B_id @ alpha + D_exp @ beta.

    Args:
      model: the face model.
      coeffs: identity [..., K_id], expression [..., K_exp].
    Returns:
      vertices [..., V, 3] in model space, cm.
    """
    identity = jnp.einsum("vck,...k->...vc", model.id_basis, coeffs.identity)
    expression = jnp.einsum("vck,...k->...vc", model.exp_basis, coeffs.expression)
    return model.mean_shape + identity + expression


def face_albedo(model: FaceModel, coeffs: Coefficients) -> jnp.ndarray:
    """T = T_mean + B_tex @ delta: albedo [..., K_alb] -> [..., V, 3] linear RGB (not clipped)."""
    return model.albedo_mean + jnp.einsum("vck,...k->...vc", model.albedo_basis, coeffs.albedo)


def landmarks_3d(model: FaceModel, vertices: jnp.ndarray) -> jnp.ndarray:
    """vertices [..., V, 3] -> the 68 landmark vertices [..., 68, 3] (iBUG order)."""
    return jnp.take(vertices, model.landmark_ids, axis=-2)
