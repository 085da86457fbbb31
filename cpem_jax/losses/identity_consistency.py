"""Identity-consistent loss: every frame of a clip should predict the clip's mean identity."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def identity_consistency_loss(identity: jnp.ndarray) -> jnp.ndarray:
    """L_idc = mean over clips and frames of ||alpha_t - alpha_bar||^2.

    alpha_bar, the mean identity of the T frames of a clip, is a fixed label: no gradient flows
    through it, so the gradient for frame t is 2 (alpha_t - alpha_bar) / (B * T).

    Args:
      identity: [B, T, K_id] float32 identity coefficients of B clips of T frames.

    Returns:
      scalar float32 (0 when T == 1).
    """
    if identity.ndim != 3:
        raise ValueError(f"identity_consistency_loss expects identity [B, T, K_id], got "
                         f"{identity.shape}; unfold [B*T, K] with cpem_jax.networks.unfold_frames")
    target = jax.lax.stop_gradient(jnp.mean(identity, axis=1, keepdims=True))   # [B, 1, K]
    return jnp.mean(jnp.sum((identity - target) ** 2, axis=-1))
