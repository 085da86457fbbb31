"""Overlays that show how well a face was reconstructed: input | render | landmarks.

Used by training's TensorBoard images and by the fit overlay video. Renders are expected over the
input already (`render_face(..., background=image)`), so they are shown as they are.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from cpem_jax.viz.landmarks import draw_landmarks

TARGET_COLOR = (40, 220, 40)   # The front end's landmarks: green.
FITTED_COLOR = (230, 40, 40)   # The model's landmarks: red.


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[..., 3] float in [0, 1] (or uint8, unchanged) -> uint8, rounded."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def overlay_row(image: np.ndarray, render: np.ndarray, target: Optional[np.ndarray],
                fitted: Optional[np.ndarray]) -> np.ndarray:
    """One row: input | render over the input | both landmark sets on the input.

    Args:
      image: [S, S, 3] uint8 or float in [0, 1].
      render: [S, S, 3] float in [0, 1] (or uint8), the face rendered over the input.
      target, fitted: [68, 2] pixels, or None / NaN to leave a set out.
    Returns:
      [S, 3S, 3] uint8.
    """
    image = to_uint8(image)
    marks = image
    for points, color in ((target, TARGET_COLOR), (fitted, FITTED_COLOR)):
        if points is not None and np.all(np.isfinite(points)):
            marks = draw_landmarks(marks, points, color=color)
    return np.concatenate([image, to_uint8(render), marks], axis=1)


def overlay_strip(images: np.ndarray, renders: np.ndarray, targets: np.ndarray,
                  fitted: np.ndarray, max_rows: int = 4) -> np.ndarray:
    """Rows of `overlay_row` for the first `max_rows` frames: [rows * S, 3S, 3] uint8.

    images, renders: [N, S, S, 3]; targets, fitted: [N, 68, 2] pixels.
    """
    rows = [overlay_row(images[i], renders[i], targets[i], fitted[i])
            for i in range(min(len(images), max_rows))]
    return np.concatenate(rows, axis=0)
