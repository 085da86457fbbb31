"""Renders a posed triangle mesh (our face model or a user's avatar) with the JAX rasterizer.

A preview camera, not a photometric one: an orthographic view framing the mesh's rest bounding
box (`frame_mesh`), or only a region of it such as the head of a full-body character
(`frame_region`), optionally turned about the vertical axis (a 3/4 view), Lambert shading of
per-pixel interpolated vertex normals under one light from the upper left of the camera plus an
ambient term. Both windings are lit (normals are turned toward the camera), so meshes with
either triangle orientation look right.

Axes: +y up, the face toward +z (the face model's and glTF's convention); the camera sits on +z
looking toward -z, u to the right, v downward, as in `cpem_jax.render.rasterize`. Head rotation
(pitch, yaw, roll radians, R = Rz Ry Rx as in `cpem_jax.geometry.rotation`) turns the mesh about
the framing centre (the centre of the framed bounding box).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from cpem_jax.geometry.mesh import vertex_normals
from cpem_jax.geometry.rotation import euler_to_matrix
from cpem_jax.render.interpolate import interpolate
from cpem_jax.render.rasterize import rasterize

LIGHT_DIRECTION = (-0.35, 0.45, 1.0)  # Toward the light, camera space (upper left, in front).
AMBIENT = 0.3
# Depth of the framing centre, in mesh radii: far enough that the rasterizer's
# perspective-correct barycentrics are affine to within ~1 %, as an orthographic view needs.
_DEPTH_RADII = 100.0
# Fraction of the half image side the mesh's bounding sphere fills.
_FILL = 0.92
# A framed region's bounding sphere is enlarged by this factor: the vertices a face rig's morph
# targets move cover the front of the face, the margin brings in the whole head.
REGION_MARGIN = 1.35


@dataclasses.dataclass(frozen=True)
class Framing:
    """Where the preview camera looks.

    Attributes:
      centre: (x, y, z) centre of the rest bounding box (also the head's pivot); a tuple so
        that a Framing can be a static jit argument.
      radius: half the bounding box diagonal, mesh units.
      view_yaw: turn of the view about +y, radians (0: frontal; 0.6: a 3/4 view).
    """
    centre: Tuple[float, float, float]
    radius: float
    view_yaw: float = 0.0


def frame_mesh(vertices: np.ndarray, view_yaw: float = 0.0) -> Framing:
    """vertices [V, 3] rest positions -> the Framing that fits them in the image."""
    return frame_region(vertices, None, view_yaw, margin=1.0)


def frame_region(vertices: np.ndarray, region: np.ndarray | None, view_yaw: float = 0.0,
                 margin: float = REGION_MARGIN) -> Framing:
    """The Framing that fits part of a mesh, e.g. the head of a full-body character.

    Args:
      vertices: [V, 3] rest positions.
      region: [V] bool, the vertices to frame (None or no True: all of them).
      view_yaw: turn of the view about +y, radians.
      margin: the bounding sphere of the region is enlarged by this factor.
    Returns:
      a Framing centred on the region's bounding box; vertices outside it may leave the image.
    """
    vertices = np.asarray(vertices, np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"vertices must be [V, 3] with V >= 1, got {vertices.shape}")
    if region is not None and np.any(region):
        vertices = vertices[np.asarray(region, bool)]
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    radius = float(margin * np.linalg.norm(high - low) / 2.0)
    return Framing(centre=tuple(float(c) for c in (low + high) / 2.0), radius=max(radius, 1e-6),
                   view_yaw=float(view_yaw))


def _shade(vertices, triangles, framing: Framing, rotation, size: int, color, background):
    """See `render_mesh`; traced under jit."""
    centred = vertices - jnp.asarray(framing.centre, jnp.float32)
    # Head rotation about the centre, then the view turn (both about fixed axes).
    view = euler_to_matrix(jnp.array([0.0, framing.view_yaw, 0.0], jnp.float32))
    turn = jnp.einsum("ij,bjk->bik", view, euler_to_matrix(rotation))
    cam = jnp.einsum("bij,bvj->bvi", turn, centred)
    scale = _FILL * (size / 2.0) / framing.radius
    half = size / 2.0
    screen = jnp.stack([half + scale * cam[..., 0], half - scale * cam[..., 1],
                        _DEPTH_RADII * framing.radius - cam[..., 2]], axis=-1)
    fragments = rasterize(screen, triangles, (size, size))
    normals = interpolate(vertex_normals(cam, triangles), fragments, triangles)
    normals = normals / jnp.maximum(jnp.linalg.norm(normals, axis=-1, keepdims=True), 1e-9)
    normals = normals * jnp.where(normals[..., 2:] < 0, -1.0, 1.0)  # Two-sided lighting.
    light = jnp.asarray(LIGHT_DIRECTION, jnp.float32)
    light = light / jnp.linalg.norm(light)
    lambert = jnp.clip(jnp.einsum("bhwc,c->bhw", normals, light), 0.0, 1.0)
    shade = (AMBIENT + (1.0 - AMBIENT) * lambert)[..., None] * jnp.asarray(color, jnp.float32)
    mask = fragments.mask[..., None]
    return jnp.where(mask, shade, jnp.asarray(background, jnp.float32))


@functools.partial(jax.jit, static_argnames=("framing", "size", "color", "background"))
def _render_jit(vertices, triangles, rotation, framing, size, color, background):
    return _shade(vertices, triangles, framing, rotation, size, color, background)


def render_mesh(vertices: np.ndarray, triangles: np.ndarray, framing: Framing,
                rotation: np.ndarray, size: int = 224,
                color: Tuple[float, float, float] = (0.78, 0.64, 0.56),
                background: Tuple[float, float, float] = (0.12, 0.12, 0.14)) -> np.ndarray:
    """Renders a batch of poses of one mesh.

    Args:
      vertices: [B, V, 3] posed positions (morph targets applied), mesh units.
      triangles: [F, 3] int32 vertex ids.
      framing: from `frame_mesh` on the rest mesh (kept fixed over a video so it never jumps).
      rotation: [B, 3] head rotation, radians (pitch, yaw, roll).
      size: image side in pixels.
      color: RGB albedo in [0, 1].
      background: RGB in [0, 1].
    Returns:
      images [B, size, size, 3] float32 in [0, 1].
    """
    vertices = jnp.asarray(vertices, jnp.float32)
    rotation = jnp.asarray(rotation, jnp.float32)
    if vertices.ndim != 3 or rotation.shape != (vertices.shape[0], 3):
        raise ValueError(f"vertices must be [B, V, 3] and rotation [B, 3], got {vertices.shape} "
                         f"and {rotation.shape}")
    return np.asarray(_render_jit(vertices, jnp.asarray(triangles, jnp.int32), rotation,
                                  framing, int(size), tuple(map(float, color)),
                                  tuple(map(float, background))))
