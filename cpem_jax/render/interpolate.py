"""Per-vertex attributes -> per-pixel values through the rasterizer's barycentrics."""
from __future__ import annotations

import jax.numpy as jnp

from cpem_jax.render.rasterize import Fragments, gather_rows


def interpolate(attributes: jnp.ndarray, fragments: Fragments,
                triangles: jnp.ndarray) -> jnp.ndarray:
    """Interpolates vertex attributes at each pixel centre (perspective-correct).

    Differentiable with respect to `attributes` and, through `fragments.bary`, to the vertex
    positions given to `rasterize`. Uncovered pixels get 0 (and zero gradient).

    Args:
      attributes: [B, V, C] or [V, C] (shared by the batch) float32 per-vertex values.
      fragments: from `rasterize`, tri_id [B, H, W], bary [B, H, W, 3].
      triangles: [F, 3] int32, the ones given to `rasterize`.
    Returns:
      [B, H, W, C] float32.
    """
    attributes = jnp.asarray(attributes, jnp.float32)
    batch, height, width = fragments.tri_id.shape
    if attributes.ndim not in (2, 3):
        raise ValueError(f"attributes must be [B, V, C] or [V, C], got shape {attributes.shape}")
    if attributes.ndim == 3 and attributes.shape[0] != batch:
        raise ValueError(f"attributes batch {attributes.shape[0]} does not match the fragments' "
                         f"batch {batch}; pass [V, C] to share one set across the batch")
    channels = attributes.shape[-1]
    if batch == 0 or triangles.shape[0] == 0:
        return jnp.zeros((batch, height, width, channels), jnp.float32)
    # Per-triangle table [B or 1, F, 3C]: corner 0's channels, then corner 1's, corner 2's.
    table = jnp.concatenate([attributes[..., triangles[:, k], :] for k in range(3)], axis=-1)
    if table.ndim == 2:
        rows = jnp.clip(fragments.tri_id, 0, triangles.shape[0] - 1).reshape(-1)
        values = jnp.take(table, rows, axis=0).T
    else:
        values = gather_rows(table, fragments.tri_id)
    bary = fragments.bary.reshape(-1, 3).T
    out = sum(bary[k] * values[k * channels:(k + 1) * channels] for k in range(3))
    return out.T.reshape(batch, height, width, channels)
