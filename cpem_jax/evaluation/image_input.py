"""The image a benchmark hands to a predictor."""
from __future__ import annotations

import numpy as np

from cpem_jax.io.frames import read_image


def load_rgb(path: str) -> np.ndarray:
    """An image file -> [H, W, 3] float32 RGB in [0, 1] (clear errors from io.frames.read_image)."""
    return read_image(path, min_size=1).astype(np.float32) / 255.0
