"""A quick CPU preview of the face model (painter's algorithm with OpenCV, no JAX renderer).

Used by `cpem-jax model preview` to check a converted model at a glance: the neutral face and a
few expressions, shaded with a frontal light, with the projected 68 landmarks drawn.
"""
from __future__ import annotations

from typing import Dict, Sequence

import cv2
import jax.numpy as jnp
import numpy as np

from cpem_jax.face_model.model import FaceModel
from cpem_jax.geometry.camera import Camera, default_camera
from cpem_jax.geometry.pipeline import face_geometry
from cpem_jax.geometry.shading import ambient_lighting
from cpem_jax.viz.landmarks import draw_landmarks


def coefficients_for(model: FaceModel, expression: Dict[str, float], rotation=(0.0, 0.0, 0.0)):
    """Zero coefficients with some named expression units set (and a pose)."""
    coeffs = model.layout().zeros()
    weights = np.zeros(model.n_expression, np.float32)
    for name, value in expression.items():
        weights[model.expression_index(name)] = value
    light = ambient_lighting(0.8).at[:, 2].set(0.35)  # Ambient plus a light from the camera.
    return coeffs.replace(expression=jnp.asarray(weights), lighting=light,
                          rotation=jnp.asarray(rotation, jnp.float32))


def paint(model: FaceModel, coeffs, camera: Camera, background=(32, 32, 40)) -> np.ndarray:
    """Fills triangles far to near with their shaded colour -> image [H, W, 3] uint8 RGB."""
    geo = face_geometry(model, coeffs, camera)
    uv, depth = np.asarray(geo.uv), np.asarray(geo.depth)
    colors = np.clip(np.asarray(geo.colors), 0.0, 1.0) ** (1 / 2.2)  # Linear -> display.
    tris = np.asarray(model.triangles)
    normals_z = np.asarray(geo.normals_cam)[..., 2]
    facing = normals_z[tris].mean(axis=1) > 0  # Back faces culled.
    order = np.argsort(-depth[tris].mean(axis=1))
    image = np.empty((camera.height, camera.width, 3), np.uint8)
    image[:] = background
    shift = 4  # Sub-pixel precision for cv2.fillConvexPoly.
    pts = np.round(uv * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32)
    tri_colors = (colors[tris].mean(axis=1) * 255).astype(np.int32)
    for t in order:
        if facing[t]:
            cv2.fillConvexPoly(image, pts[tris[t]], tuple(int(c) for c in tri_colors[t]),
                               cv2.LINE_AA, shift)
    return draw_landmarks(image, np.asarray(geo.landmarks_uv))


def preview_sheet(model: FaceModel, expressions: Sequence[str], image_size: int = 320) -> np.ndarray:
    """The neutral face then one panel per named expression (weight 1), captioned, side by side."""
    camera = default_camera(image_size, distance_cm=100.0)
    panels = []
    for name in ["neutral"] + list(expressions):
        weights = {} if name == "neutral" else {name: 1.0}
        panel = paint(model, coefficients_for(model, weights), camera)
        cv2.putText(panel, name, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                    cv2.LINE_AA)
        panels.append(panel)
    return np.concatenate(panels, axis=1)
