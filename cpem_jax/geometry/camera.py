"""Perspective camera: model space -> camera space -> pixels.

Camera space follows OpenGL: the camera sits at the origin and looks toward -z, +y is up, +x is
right. Depth is the distance along the viewing axis, depth = -z_cam (positive in front).
Pixels: u to the right, v downward, pixel (i, j) covers [i, i+1) x [j, j+1), so its centre is at
(i + 0.5, j + 0.5); the principal point is given in the same units.

A face with zero rotation and translation sits at `base_translation` (default 100 cm in front of
the camera) looking at the camera; the translation coefficient is added to it.
"""
from __future__ import annotations

from typing import Tuple

import flax.struct
import jax.numpy as jnp

# Deep3DFaceRecon's camera (focal 1015 px for a 224 px image at 10 units of distance) expressed
# in cm: the same field of view (about 12.6 degrees) with the face 100 cm away.
DEFAULT_FOCAL_PER_PIXEL = 1015.0 / 224.0
DEFAULT_DISTANCE_CM = 100.0


@flax.struct.dataclass
class Camera:
    """A pinhole camera (all fields scalars or [...] batched arrays).

    Attributes:
      focal: focal length in pixels.
      cx, cy: principal point in pixels.
      width, height: image size in pixels (static).
      base_translation: [3] camera-space position of the model origin at zero translation, cm.
    """
    focal: jnp.ndarray
    cx: jnp.ndarray
    cy: jnp.ndarray
    base_translation: jnp.ndarray
    width: int = flax.struct.field(pytree_node=False, default=224)
    height: int = flax.struct.field(pytree_node=False, default=224)

    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width)."""
        return self.height, self.width


def default_camera(image_size: int = 224, focal: float | None = None,
                   distance_cm: float = DEFAULT_DISTANCE_CM) -> Camera:
    """A square-image camera with the principal point at the image centre.

    Args:
      image_size: image side in pixels.
      focal: focal length in pixels; default keeps Deep3DFaceRecon's field of view.
      distance_cm: distance of the model origin from the camera at zero translation.
    """
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if focal is None:
        focal = DEFAULT_FOCAL_PER_PIXEL * image_size
    if focal <= 0 or distance_cm <= 0:
        raise ValueError(f"focal ({focal}) and distance_cm ({distance_cm}) must be positive")
    half = image_size / 2.0
    return Camera(focal=jnp.float32(focal), cx=jnp.float32(half), cy=jnp.float32(half),
                  base_translation=jnp.array([0.0, 0.0, -distance_cm], jnp.float32),
                  width=image_size, height=image_size)


def crop_camera(size: int, focal_per_pixel: float = DEFAULT_FOCAL_PER_PIXEL,
                distance_cm: float = DEFAULT_DISTANCE_CM) -> Camera:
    """The camera of a size x size face crop: the one camera of training, fitting and export.

    Args:
      size: crop side in pixels.
      focal_per_pixel: focal length / crop side (default Deep3DFaceRecon's 1015 / 224).
      distance_cm: distance of the model origin at zero translation (default 100 cm).
    """
    return default_camera(int(size), focal=float(focal_per_pixel) * int(size),
                          distance_cm=float(distance_cm))


def transform(points: jnp.ndarray, rotation_matrix: jnp.ndarray, translation: jnp.ndarray,
              camera: Camera, xp=jnp) -> jnp.ndarray:
    """Rigidly moves model-space points into camera space.

    Args:
      points: [..., N, 3] model space, cm.
      rotation_matrix: [..., 3, 3] (see rotation.euler_to_matrix).
      translation: [..., 3] cm, added to camera.base_translation.
      camera: the camera.
      xp: the array module: jnp, or numpy for host-side float64 work (then the camera's
        fields must be numpy values or Python floats).
    Returns:
      [..., N, 3] camera-space points, cm.
    """
    moved = xp.einsum("...ij,...nj->...ni", rotation_matrix, points)
    return moved + (translation + camera.base_translation)[..., None, :]


def project(camera: Camera, points_cam: jnp.ndarray, min_depth: float = 1e-3,
            xp=jnp) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Perspective projection of camera-space points.

    Args:
      camera: the camera.
      points_cam: [..., N, 3] camera space (looking toward -z), cm.
      min_depth: depths below this are clamped for the division (points behind the camera
        project to finite but meaningless pixels; use the returned depth to cull them).
      xp: the array module: jnp, or numpy (with a camera of numpy values or Python floats).
    Returns:
      uv [..., N, 2] pixels (u right, v down) and depth [..., N] (positive in front), cm.
    """
    depth = -points_cam[..., 2]
    safe = xp.maximum(depth, min_depth)
    u = camera.cx + camera.focal * points_cam[..., 0] / safe
    v = camera.cy - camera.focal * points_cam[..., 1] / safe
    return xp.stack([u, v], axis=-1), depth
