"""Per-vertex attributes -> per-pixel values through the rasterizer's barycentrics."""
from __future__ import annotations

import jax.numpy as jnp

from cpem_jax.render.rasterize import Fragments


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
    # Per pixel, the three vertex rows of its triangle in `attributes` flattened to [B*V or V, C],
    # then a gather of those rows: the backward is a scatter-add straight into the attribute
    # rows (no per-triangle intermediate table, which measured ~1.5-2.5x slower backward).
    n_tri, n_vert = triangles.shape[0], attributes.shape[-2]
    rows = jnp.clip(fragments.tri_id, 0, n_tri - 1).reshape(batch, height * width)
    offset = ((jnp.arange(batch, dtype=jnp.int32) * n_vert)[:, None] if attributes.ndim == 3
              else 0)
    flat = attributes.reshape(-1, channels)
    bary = fragments.bary.reshape(-1, 3)
    out = sum(bary[:, k:k + 1]
              * jnp.take(flat, (jnp.take(triangles[:, k], rows) + offset).reshape(-1), axis=0)
              for k in range(3))
    return out.reshape(batch, height, width, channels)
