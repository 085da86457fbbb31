"""Photometric loss: an l2,1 norm of the RGB error over the visible skin.

L_pho = sum_p m_p * ||I_p - R_p||_2 / sum_p m_p per image, with m = render_mask * skin_mask, then
the mean over images. The per-pixel norm is the Euclidean norm over RGB (not squared), so outliers
(hair, occluders that slip through the skin mask) pull less than with an l2 loss.
"""
from __future__ import annotations

import jax.numpy as jnp

from cpem_jax.losses.safe_math import safe_norm

# Mask areas at or below this count as empty (the loss is then 0 with zero gradient).
EMPTY_AREA = 1e-6


def photometric_loss(image: jnp.ndarray, render: jnp.ndarray, render_mask: jnp.ndarray,
                     skin_mask: jnp.ndarray) -> jnp.ndarray:
    """Mean over images of the masked per-pixel RGB distance divided by the mask area.

    Args:
      image: [N, H, W, 3] float32 in [0, 1], the input frames.
      render: [N, H, W, 3] float32, the rendered faces.
      render_mask: [N, H, W] float32 in [0, 1], where the render covers the image.
      skin_mask: [N, H, W] float32 in [0, 1], where the input shows skin.

    Returns:
      scalar float32. An image with an empty mask contributes 0 (and finite, zero gradients).
    """
    if image.shape != render.shape or image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"photometric_loss expects image and render [N, H, W, 3] of equal "
                         f"shape, got {image.shape} and {render.shape}")
    if render_mask.shape != image.shape[:-1] or skin_mask.shape != image.shape[:-1]:
        raise ValueError(f"masks must be [N, H, W] = {image.shape[:-1]}, got "
                         f"{render_mask.shape} and {skin_mask.shape}")
    mask = render_mask * skin_mask
    distance = safe_norm(image - render, axis=-1)                       # [N, H, W]
    area = jnp.sum(mask, axis=(1, 2))                                   # [N]
    nonempty = area > EMPTY_AREA
    per_image = jnp.sum(distance * mask, axis=(1, 2)) / jnp.where(nonempty, area, 1.0)
    return jnp.mean(jnp.where(nonempty, per_image, 0.0))
