"""TensorBoard logging of scalars and image overlays (input | render | landmarks)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from tensorboardX import SummaryWriter

from cpem_jax.viz.landmarks import draw_landmarks


class MetricWriter:
    """Scalars and images to TensorBoard event files under `logdir` (one process writes)."""

    def __init__(self, logdir: str, enabled: bool = True):
        self._writer = SummaryWriter(logdir) if enabled else None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            self._writer.add_scalar(name, float(value), step)

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        """image [H, W, 3] uint8 RGB."""
        if self._writer is not None:
            self._writer.add_image(name, image, step, dataformats="HWC")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()


def overlay_strip(images: np.ndarray, renders: np.ndarray, masks: np.ndarray,
                  target_landmarks: np.ndarray, predicted_landmarks: np.ndarray,
                  max_rows: int = 4) -> np.ndarray:
    """Rows of (input | render over input | landmarks: target green, predicted red).

    Args:
      images, renders: [N, H, W, 3] float in [0, 1]; masks [N, H, W] in [0, 1];
      target_landmarks, predicted_landmarks: [N, 68, 2] pixels.
    Returns:
      [min(N, max_rows) * H, 3 * W, 3] uint8.
    """
    rows = []
    for i in range(min(len(images), max_rows)):
        to_u8 = lambda x: (np.clip(x, 0, 1) * 255).astype(np.uint8)
        inp = to_u8(images[i])
        over = to_u8(renders[i] * masks[i][..., None] + images[i] * (1 - masks[i][..., None]))
        marks = draw_landmarks(inp, target_landmarks[i], color=(40, 220, 40))
        marks = draw_landmarks(marks, predicted_landmarks[i], color=(230, 40, 40))
        rows.append(np.concatenate([inp, over, marks], axis=1))
    return np.concatenate(rows, axis=0)
