"""TensorBoard logging of scalars and images (overlays are drawn by `cpem_jax.viz.overlay`)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from tensorboardX import SummaryWriter



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
