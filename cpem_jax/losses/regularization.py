"""Coefficient priors: the l2 regulariser on identity/albedo and the l1 sparsity on expression."""
from __future__ import annotations

import jax.numpy as jnp

IDENTITY_REG_WEIGHT = 1.0
ALBEDO_REG_WEIGHT = 1.7e-3


def coefficient_regularization(identity: jnp.ndarray, albedo: jnp.ndarray,
                               identity_weight: float = IDENTITY_REG_WEIGHT,
                               albedo_weight: float = ALBEDO_REG_WEIGHT) -> jnp.ndarray:
    """L_reg = mean over frames of 1.0 * ||alpha||^2 + 1.7e-3 * ||delta||^2.

    Args:
      identity: [..., K_id] float32 identity coefficients alpha.
      albedo: [..., K_alb] float32 albedo coefficients delta (same leading shape).

    Returns:
      scalar float32.
    """
    if identity.shape[:-1] != albedo.shape[:-1]:
        raise ValueError(f"identity {identity.shape} and albedo {albedo.shape} must share "
                         f"their leading (frame) shape")
    per_frame = (identity_weight * jnp.sum(identity ** 2, axis=-1)
                 + albedo_weight * jnp.sum(albedo ** 2, axis=-1))
    return jnp.mean(per_frame)


def expression_sparsity(expression: jnp.ndarray) -> jnp.ndarray:
    """L_sp = mean |beta| over frames and units. expression [..., K_exp] -> scalar float32."""
    return jnp.mean(jnp.abs(expression))
