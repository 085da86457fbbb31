"""Triangle rasterization: screen-space vertices -> per-pixel triangle id, barycentrics, depth.

Conventions (shared by every module in `cpem_jax.render`):
  - Input vertices are in screen space, `verts [B, V, 3]` float32: (u, v) in pixels with u to the
    right and v downward, pixel (i, j) covering [i, i+1) x [j, j+1) so its centre is at
    (i + 0.5, j + 0.5); the third column is the positive depth in front of the camera.
  - A triangle takes part only if all three depths exceed `near`, its coordinates are finite and
    its screen area is not degenerate. Triangles crossing the near plane are discarded whole
    (screen-space input cannot be clipped: a vertex behind the camera has no meaningful (u, v)).
  - A pixel is covered by a triangle when its centre lies inside or on the triangle's edges (both
    windings are drawn; there is no back-face culling). The front-most covering triangle wins; two
    candidates within a relative depth of `_DEPTH_TIE` count as a tie, won by the smaller id.
  - Barycentrics are perspective-correct: `sum_i bary_i * attr_i` is the attribute of the 3D
    surface point seen through the pixel centre, and `depth = 1 / sum_i (b_i / z_i)` where `b_i`
    are the screen-space (affine) barycentrics.

Visibility (which triangle) is computed without gradient. Barycentrics and depth are then
recomputed from the chosen triangle's vertices with ordinary jnp ops, so they are differentiable
with respect to `verts` (the interior derivative; silhouette derivatives come from `antialias`).

How visibility is computed (pure jnp, jit- and vmap-safe, the same on CPU and GPU):
  1. Each triangle's pixel bounding box is cut into `_TILE` x `_TILE` tiles ("tasks"). Edge
     functions and inverse depth are planes over the screen, so a task evaluates them at its
     pixels with a few multiply-adds.
  2. The first `tasks_per_triangle * B * F` tasks form one static block (vectorized); a scatter-max
     of inverse depth builds the z-buffer. At 224 x 224 a face mesh's triangles are ~1-2 pixels
     and need ~2 tasks each, so this block holds all of them.
  3. Any further tasks (close-ups, huge triangles) run in a `lax.while_loop` of `_CHUNK` tasks
     per step, skipped entirely (`lax.cond`) when there are none. No triangle size leaves holes.
  4. A second pass over the same candidates scatters the smallest triangle id among those whose
     inverse depth reaches the z-buffer.
"""
from __future__ import annotations

from typing import Tuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_NEAR = 1e-3
# Twice the signed screen area (px^2) below which a triangle counts as degenerate.
MIN_AREA2 = 1e-8
# Side in pixels of the tiles triangles' bounding boxes are cut into (2 measured fastest for the
# ICT face at 224 px, see experiments/renderer/README.md).
_TILE = 2
# Tile tasks evaluated in one static block, per (frame, triangle): the ICT face at 224 px needs
# ~2.1; any excess goes through a loop of _CHUNK tasks per step (correct, slower).
DEFAULT_TASKS_PER_TRIANGLE = 2.5
_CHUNK = 4096
_DEPTH_TIE = 1e-6


@flax.struct.dataclass
class Fragments:
    """What a rasterizer sees through each pixel centre.

    Attributes:
      tri_id: [B, H, W] int32 front-most triangle index, -1 where no triangle covers the pixel.
      bary: [B, H, W, 3] float32 perspective-correct barycentrics (sum to 1), 0 where uncovered.
      depth: [B, H, W] float32 depth of the visible surface, 0 where uncovered.
    """
    tri_id: jnp.ndarray
    bary: jnp.ndarray
    depth: jnp.ndarray

    @property
    def mask(self) -> jnp.ndarray:
        """[B, H, W] bool, True where a triangle covers the pixel centre."""
        return self.tri_id >= 0


def _check_inputs(verts, triangles, image_size) -> Tuple[int, int]:
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be [B, V, 3] screen-space (u, v, depth), got shape "
                         f"{verts.shape}; add a batch axis with verts[None] for a single mesh")
    if triangles.ndim != 2 or triangles.shape[-1] != 3:
        raise ValueError(f"triangles must be [F, 3] vertex indices, got shape {triangles.shape}")
    if not jnp.issubdtype(triangles.dtype, jnp.integer):
        raise ValueError(f"triangles must be an integer array, got {triangles.dtype}; "
                         "convert with triangles.astype(jnp.int32)")
    if not isinstance(triangles, jax.core.Tracer):
        tri_np = np.asarray(triangles)
        if tri_np.size and (tri_np.min() < 0 or tri_np.max() >= verts.shape[1]):
            raise ValueError(f"triangles index vertices outside [0, {verts.shape[1]}): "
                             f"min {tri_np.min()}, max {tri_np.max()}")
    try:
        height, width = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive, got {(height, width)}")
    return height, width


def triangle_geometry(verts: jnp.ndarray, triangles: jnp.ndarray, near: float = DEFAULT_NEAR):
    """Per-triangle screen geometry, as separate [B, F] arrays (fast on CPU: no size-3 axes).

    Args:
      verts: [B, V, 3] screen-space vertices (u, v, depth).
      triangles: [F, 3] int32 vertex indices.
      near: depths at or below this are behind the camera.
    Returns:
      u, v, z: tuples of three [B, F] arrays, corner k of every triangle.
      area2: [B, F] twice the signed screen area (u1-u0)(v2-v0) - (v1-v0)(u2-u0).
      valid: [B, F] bool (every corner in front of `near`, finite, not degenerate).
    """
    cols = [verts[..., c] for c in range(3)]
    u, v, z = (tuple(col[:, triangles[:, k]] for k in range(3)) for col in cols)
    area2 = (u[1] - u[0]) * (v[2] - v[0]) - (v[1] - v[0]) * (u[2] - u[0])
    valid = jnp.isfinite(area2) & (jnp.abs(area2) > MIN_AREA2)
    for k in range(3):
        valid = valid & (z[k] > near) & jnp.isfinite(z[k])
    return u, v, z, area2, valid


def edge_planes(u, v):
    """Edge functions as planes over the screen.

    Edge function k (the edge opposite corner k) at a point (x, y) is
    `e_k = A_k * (x - u_0) + B_k * (y - v_0) + C_k`, C = (area2, 0, 0), and e_k / area2 is the
    screen-space barycentric of corner k.

    Args:
      u, v: tuples of three [...] corner coordinates.
    Returns:
      A, B: tuples of three [...] arrays.
    """
    a = tuple(-(v[(k + 2) % 3] - v[(k + 1) % 3]) for k in range(3))
    b = tuple(u[(k + 2) % 3] - u[(k + 1) % 3] for k in range(3))
    return a, b


def _bounds(c, size):
    """Index range [lo, hi] of pixel centres (i + 0.5) spanned by corners c (three [...] arrays)
    along an axis of `size` pixels."""
    cmin = jnp.clip(jnp.minimum(jnp.minimum(c[0], c[1]), c[2]), -2.0, size + 2.0)
    cmax = jnp.clip(jnp.maximum(jnp.maximum(c[0], c[1]), c[2]), -2.0, size + 2.0)
    lo = jnp.maximum(jnp.ceil(cmin - 0.5), 0).astype(jnp.int32)
    hi = jnp.minimum(jnp.floor(cmax - 0.5), size - 1).astype(jnp.int32)
    return lo, hi


def _visibility(verts, triangles, height, width, near, tasks_per_triangle):
    """Front-most triangle per pixel, [B, H, W] int32 (-1 = none); no gradient."""
    verts = jax.lax.stop_gradient(verts)
    batch, n_tri = verts.shape[0], triangles.shape[0]
    n_pix = height * width
    n_item = batch * n_tri
    oob = batch * n_pix
    u, v, z, area2, valid = triangle_geometry(verts, triangles, near)
    x_lo, x_hi = _bounds(u, width)
    y_lo, y_hi = _bounds(v, height)
    nx, ny = x_hi - x_lo + 1, y_hi - y_lo + 1
    live = valid & (nx > 0) & (ny > 0)

    # Planes over the bounding box, origin at the centre of its top-left pixel, oriented so that
    # inside means every edge value >= 0; inverse depth is a plane too (perspective).
    sign = jnp.where(area2 < 0, -1.0, 1.0)
    edge_a, edge_b = edge_planes(u, v)
    edge_a = [a * sign for a in edge_a]
    edge_b = [b * sign for b in edge_b]
    dx0 = x_lo.astype(jnp.float32) + 0.5 - u[0]
    dy0 = y_lo.astype(jnp.float32) + 0.5 - v[0]
    abs_area2 = jnp.abs(area2)
    edge_0 = [edge_a[k] * dx0 + edge_b[k] * dy0 + (abs_area2 if k == 0 else 0.0)
              for k in range(3)]
    safe_area2 = jnp.where(valid, abs_area2, 1.0)
    inv_z = [1.0 / (safe_area2 * jnp.where(valid, z[k], 1.0)) for k in range(3)]
    depth_planes = [sum(e[k] * inv_z[k] for k in range(3)) for e in (edge_0, edge_a, edge_b)]
    planes = jnp.stack(edge_0 + edge_a + edge_b + depth_planes, axis=-1).reshape(n_item, 12)

    # Each triangle's pixel bounding box is cut into _TILE x _TILE tiles, one task each.
    tiles_x = (nx + _TILE - 1) // _TILE
    n_tiles = jnp.where(live, tiles_x * ((ny + _TILE - 1) // _TILE), 0).reshape(n_item)
    ends = jnp.cumsum(n_tiles)
    starts = ends - n_tiles
    total = ends[-1]
    first_pix = (jnp.arange(batch, dtype=jnp.int32) * n_pix)[:, None] + y_lo * width + x_lo
    tri_ids = jnp.broadcast_to(jnp.arange(n_tri, dtype=jnp.int32), (batch, n_tri))
    ints = jnp.stack([first_pix, x_lo, y_lo, tiles_x, tri_ids, starts.reshape(batch, n_tri)],
                     axis=-1).reshape(n_item, 6)
    # Tile pixel offsets, [T*T, 1] (the task axis is last everywhere below).
    col = jnp.tile(jnp.arange(_TILE, dtype=jnp.int32), _TILE)[:, None]
    row = jnp.repeat(jnp.arange(_TILE, dtype=jnp.int32), _TILE)[:, None]
    colf, rowf = col.astype(jnp.float32), row.astype(jnp.float32)

    def tasks(task, owner):
        """Candidates of tasks [N] owned by items owner [N].

        Returns pix [T*T, N] batch-global flat pixel index (oob where not covered), inverse
        depth [T*T, N] (0 where not covered) and triangle id [N].
        """
        p = planes[owner].T
        fp, xl, yl, tx, tri, start = ints[owner].T
        local = task - start
        tx = jnp.maximum(tx, 1)
        sx, sy = (local % tx) * _TILE, (local // tx) * _TILE
        dx = sx.astype(jnp.float32)[None, :] + colf
        dy = sy.astype(jnp.float32)[None, :] + rowf
        inside = (task < total)[None, :]
        for k in range(3):
            inside = inside & (p[k][None, :] + p[3 + k][None, :] * dx + p[6 + k][None, :] * dy >= 0)
        inv = p[9][None, :] + p[10][None, :] * dx + p[11][None, :] * dy
        inside = (inside & ((xl + sx)[None, :] + col < width) & ((yl + sy)[None, :] + row < height)
                  & (inv > 0))
        pix = (fp + sy * width + sx)[None, :] + row * width + col
        return jnp.where(inside, pix, oob), jnp.where(inside, inv, 0.0), tri

    # Static block: the first `capacity` tasks (enough for typical meshes at face-crop sizes).
    # An item's first task sits at `starts`; a running max of item ids scattered there gives
    # every task its owner.
    capacity = max(int(np.ceil(tasks_per_triangle * n_item)), 1)
    item_ids = jnp.arange(n_item, dtype=jnp.int32)
    marks = jnp.full((capacity,), -1, jnp.int32).at[starts].max(
        jnp.where(n_tiles > 0, item_ids, -1), mode="drop")
    owner_s = jnp.maximum(jax.lax.cummax(marks), 0)
    # The barrier keeps XLA from recomputing the candidates inside each consumer.
    static = jax.lax.optimization_barrier(tasks(jnp.arange(capacity, dtype=jnp.int32), owner_s))

    # Overflow (close-ups, huge triangles): the remaining tasks in a while loop, skipped when
    # there are none.
    n_steps = (jnp.maximum(total - capacity, 0) + _CHUNK - 1) // _CHUNK

    def fold_overflow(buffer, update):
        def run(buf):
            def body(carry):
                step, b = carry
                task = capacity + step * _CHUNK + jnp.arange(_CHUNK, dtype=jnp.int32)
                owner = jnp.clip(jnp.searchsorted(ends, task, side="right"), 0, n_item - 1)
                return step + 1, update(b, *tasks(task, owner))

            return jax.lax.while_loop(lambda c: c[0] < n_steps, body, (jnp.int32(0), buf))[1]
        return jax.lax.cond(n_steps > 0, run, lambda b: b, buffer)

    # Pass 1: z-buffer of inverse depth (larger is nearer).
    def depth_update(zbuf, pix, inv, tri):
        del tri
        return zbuf.at[pix.ravel()].max(inv.ravel(), mode="drop")

    zbuf = depth_update(jnp.zeros((oob,), jnp.float32), *static)
    zbuf = fold_overflow(zbuf, depth_update)

    # Pass 2: smallest id among the candidates that reach the z-buffer depth.
    def id_update(ibuf, pix, inv, tri):
        best = zbuf[jnp.minimum(pix, oob - 1)]
        wins = (inv > 0) & (inv >= best * (1.0 - _DEPTH_TIE))
        ids = jnp.where(wins, tri[None, :], n_tri)
        return ibuf.at[pix.ravel()].min(ids.ravel(), mode="drop")

    ibuf = id_update(jnp.full((oob,), n_tri, jnp.int32), *static)
    ibuf = fold_overflow(ibuf, id_update)
    tri_id = jnp.where(ibuf >= n_tri, -1, ibuf)
    return tri_id.reshape(batch, height, width)


def gather_rows(table: jnp.ndarray, tri_id: jnp.ndarray) -> jnp.ndarray:
    """Per-pixel rows of a per-triangle table, channel-first.

    Args:
      table: [B, F, C] per-triangle values.
      tri_id: [B, H, W] int32 (-1 reads triangle 0; mask the result).
    Returns:
      [C, B*H*W] float32, pixel index flattened in (b, y, x) order.
    """
    batch, n_tri, channels = table.shape
    rows = (jnp.clip(tri_id, 0, n_tri - 1)
            + (jnp.arange(batch, dtype=jnp.int32) * n_tri)[:, None, None])
    return jnp.take(table.reshape(batch * n_tri, channels), rows.reshape(-1), axis=0).T


def pixel_centres(batch: int, height: int, width: int) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Pixel-centre coordinates x, y, each [B*H*W] float32 in (b, y, x) order."""
    x = jnp.arange(width, dtype=jnp.float32) + 0.5
    y = jnp.arange(height, dtype=jnp.float32) + 0.5
    shape = (batch, height, width)
    return (jnp.broadcast_to(x[None, None, :], shape).reshape(-1),
            jnp.broadcast_to(y[None, :, None], shape).reshape(-1))


def pixel_barycentrics(verts: jnp.ndarray, triangles: jnp.ndarray, tri_id: jnp.ndarray,
                       near: float = DEFAULT_NEAR) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Perspective-correct barycentrics and depth of given triangles at each pixel centre.

    Differentiable with respect to `verts`; gradients are exactly zero (never NaN) at uncovered
    pixels. Per triangle, q_k = e_k / (area2 * z_k) is a plane over the screen; per pixel
    bary_k = q_k / sum(q) and depth = 1 / sum(q).

    Args:
      verts: [B, V, 3] screen-space vertices (u, v, depth).
      triangles: [F, 3] int32.
      tri_id: [B, H, W] int32 triangle per pixel, -1 for none.
      near: the rasterizer's near plane.
    Returns:
      bary [B, H, W, 3] float32 and depth [B, H, W] float32 (both 0 where tri_id < 0).
    """
    batch, height, width = tri_id.shape
    u, v, z, area2, valid = triangle_geometry(verts, triangles, near)
    edge_a, edge_b = edge_planes(u, v)
    safe_area2 = jnp.where(valid, area2, 1.0)
    scale = [1.0 / (safe_area2 * jnp.where(valid, z[k], 1.0)) for k in range(3)]
    columns = ([edge_a[k] * scale[k] for k in range(3)] + [edge_b[k] * scale[k] for k in range(3)]
               + [1.0 / jnp.where(valid, z[0], 1.0), u[0], v[0]])
    table = jnp.where(valid[..., None], jnp.stack(columns, axis=-1), 0.0)
    p = gather_rows(table, tri_id)
    x, y = pixel_centres(batch, height, width)
    dx, dy = x - p[7], y - p[8]
    q = [p[k] * dx + p[3 + k] * dy for k in range(3)]
    q[0] = q[0] + p[6]
    s = q[0] + q[1] + q[2]
    ok = (tri_id.reshape(-1) >= 0) & (s > 0)
    s_safe = jnp.where(ok, s, 1.0)
    bary = jnp.stack([jnp.where(ok, qk / s_safe, 0.0) for qk in q], axis=-1)
    depth = jnp.where(ok, 1.0 / s_safe, 0.0)
    return bary.reshape(batch, height, width, 3), depth.reshape(batch, height, width)


def rasterize(verts: jnp.ndarray, triangles: jnp.ndarray, image_size: Tuple[int, int],
              near: float = DEFAULT_NEAR,
              tasks_per_triangle: float = DEFAULT_TASKS_PER_TRIANGLE) -> Fragments:
    """Rasterizes a batch of screen-space meshes that share one triangle list.

    Args:
      verts: [B, V, 3] float32 screen-space vertices: u, v in pixels (u right, v down, pixel
        centres at i + 0.5) and positive depth in front of the camera.
      triangles: [F, 3] int32 vertex indices (either winding).
      image_size: (height, width) in pixels (static).
      near: triangles with a corner at depth <= near are dropped.
      tasks_per_triangle: size of the static work block, in 2 x 2 pixel tiles per triangle
        (static). Only speed depends on it: tiles beyond it are drawn by a slower loop.
    Returns:
      Fragments with tri_id [B, H, W], bary [B, H, W, 3], depth [B, H, W]; `bary` and `depth`
      are differentiable with respect to `verts`, `tri_id` is not.
    """
    triangles = jnp.asarray(triangles)
    verts = jnp.asarray(verts, jnp.float32)
    height, width = _check_inputs(verts, triangles, image_size)
    batch = verts.shape[0]
    if batch == 0 or triangles.shape[0] == 0:
        tri_id = jnp.full((batch, height, width), -1, jnp.int32)
        return Fragments(tri_id=tri_id, bary=jnp.zeros((batch, height, width, 3), jnp.float32),
                         depth=jnp.zeros((batch, height, width), jnp.float32))
    tri_id = _visibility(verts, triangles, height, width, near, tasks_per_triangle)
    bary, depth = pixel_barycentrics(verts, triangles, tri_id, near)
    tri_id = jnp.where(depth > 0, tri_id, -1)
    return Fragments(tri_id=tri_id, bary=bary, depth=depth)
