"""The face render: coefficients -> shaded image, mask, depth and 68 landmarks (batched).

A composition of the geometry chain (`cpem_jax.geometry.pipeline.face_geometry`: shape, pose,
SH shading, projection) with the render primitives (rasterize, interpolate, antialias).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import flax.struct
import jax
import jax.numpy as jnp

from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import Camera
from cpem_jax.geometry.pipeline import face_geometry
from cpem_jax.render.antialias import antialias, edge_neighbors
from cpem_jax.render.interpolate import interpolate
from cpem_jax.render.rasterize import rasterize


@flax.struct.dataclass
class FaceRender:
    """One batch of rendered faces.

    Attributes:
      image: [B, H, W, 3] float32 shaded face over `background`, antialiased at silhouettes
        (linear RGB, in [0, 1] for lighting that keeps the shading there).
      mask: [B, H, W] float32 in [0, 1]: 1 inside the face, fractional coverage at silhouette
        pixels (differentiable with respect to the vertex positions), 0 elsewhere.
      depth: [B, H, W] float32 depth of the visible surface in cm, 0 where uncovered.
      landmarks: [B, 68, 2] float32 projected landmarks in pixels of this image.
    """
    image: jnp.ndarray
    mask: jnp.ndarray
    depth: jnp.ndarray
    landmarks: jnp.ndarray


# Frames rendered together per step of a sequential loop over the batch (None: all at once).
# Groups of 4 made the forward pass faster per frame at batch 32 on CPU, but the backward
# pass slower (experiments/renderer/README.md), so the default renders the batch at once.
DEFAULT_FRAMES_PER_STEP = None


def map_in_chunks(fn: Callable, tree, batch: int, chunk: Optional[int]):
    """Applies a batched function `fn` to `tree` (leaves [B, ...]) `chunk` frames at a time.

    The batch is padded (with copies of its last frame) to a multiple of `chunk`, run through
    `jax.lax.map` over groups, and cut back to B. chunk None or >= B calls `fn` once.
    """
    if chunk is None or chunk >= batch or batch == 0:
        return fn(tree)
    steps = -(-batch // chunk)
    pad = steps * chunk - batch

    def group(x):
        x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
        return x.reshape((steps, chunk) + x.shape[1:])

    out = jax.lax.map(fn, jax.tree_util.tree_map(group, tree))
    return jax.tree_util.tree_map(lambda y: y.reshape((steps * chunk,) + y.shape[2:])[:batch],
                                  out)


def render_face(model: FaceModel, coefficients: Coefficients, camera: Camera,
                image_size: Optional[Tuple[int, int]] = None,
                background: Optional[jnp.ndarray] = None,
                neighbors: Optional[jnp.ndarray] = None,
                frames_per_step: Optional[int] = DEFAULT_FRAMES_PER_STEP) -> FaceRender:
    """Renders a batch of faces.

    Args:
      model: the face model.
      coefficients: Coefficients with batch shape [B] (identity [B, K_id], ..., translation
        [B, 3]).
      camera: the camera; its intrinsics are in pixels of a camera.height x camera.width image.
      image_size: (height, width) to render at (static); default the camera's. A different size
        scales the intrinsics (the same view, more or fewer pixels).
      background: [B, H, W, 3] or [3] colour behind the face; default black.
      neighbors: [F, 3] `edge_neighbors(model.triangles)`, to skip recomputing the topology.
      frames_per_step: render the batch this many frames at a time (a `lax.map` loop, same
        result, smaller working set); None (default) renders the whole batch at once.
    Returns:
      FaceRender with image [B, H, W, 3], mask [B, H, W], depth [B, H, W], landmarks [B, 68, 2].
    """
    if coefficients.rotation.ndim != 2:
        raise ValueError(f"render_face takes a batch of coefficients (rotation [B, 3]), got "
                         f"rotation shape {coefficients.rotation.shape}; add a batch axis with "
                         f"jax.tree_util.tree_map(lambda x: x[None], coefficients)")
    height, width = image_size if image_size is not None else camera.image_size
    batch = coefficients.rotation.shape[0]
    if background is None:
        background = jnp.zeros((3,), jnp.float32)
    background = jnp.broadcast_to(jnp.asarray(background, jnp.float32),
                                  (batch, height, width, 3))
    if neighbors is None:
        neighbors = edge_neighbors(model.triangles)

    def render(args):
        coeffs, back = args
        return _render_batch(model, coeffs, camera, (height, width), back, neighbors)

    return map_in_chunks(render, (coefficients, background), batch, frames_per_step)


def _render_batch(model, coefficients, camera, image_size, background, neighbors):
    """render_face on one group of frames; background [B, H, W, 3]."""
    height, width = image_size
    scale = jnp.array([width / camera.width, height / camera.height], jnp.float32)
    geometry = face_geometry(model, coefficients, camera)
    uv = geometry.uv * scale
    verts = jnp.concatenate([uv, geometry.depth[..., None]], axis=-1)
    triangles = model.triangles
    fragments = rasterize(verts, triangles, (height, width))
    color = interpolate(geometry.colors, fragments, triangles)
    coverage = fragments.mask[..., None].astype(jnp.float32)
    composed = color * coverage + background * (1.0 - coverage)
    blended = antialias(jnp.concatenate([composed, coverage], axis=-1), fragments, verts,
                        triangles, neighbors)
    return FaceRender(image=blended[..., :3], mask=blended[..., 3], depth=fragments.depth,
                      landmarks=geometry.landmarks_uv * scale)
