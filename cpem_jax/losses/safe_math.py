"""Norms and ratios whose gradients stay finite at zero (shared by the loss modules)."""
from __future__ import annotations

import jax.numpy as jnp


def safe_norm(x: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
    """Euclidean norm over `axis`, with gradient 0 (not NaN) where the vector is exactly 0.

    x [..., D, ...] -> [...] (the `axis` removed).
    """
    squared = jnp.sum(x * x, axis=axis)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
