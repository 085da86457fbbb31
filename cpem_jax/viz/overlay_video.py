"""Overlay frames and videos: input | fitted render | landmarks (detected green, fitted red)."""
from __future__ import annotations

from typing import Iterable

import imageio.v2 as imageio
import numpy as np

from cpem_jax.viz.landmarks import draw_landmarks


def overlay_frame(crop: np.ndarray, render: np.ndarray, mask: np.ndarray,
                  detected: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """crop [S, S, 3] uint8, render [S, S, 3] float in [0, 1], mask [S, S] in [0, 1],
    detected/fitted [68, 2] crop pixels -> [S, 3S, 3] uint8."""
    base = crop.astype(np.float32) / 255.0
    over = np.clip(render, 0, 1) * mask[..., None] + base * (1 - mask[..., None])
    marks = crop
    if np.all(np.isfinite(detected)):
        marks = draw_landmarks(marks, detected, color=(40, 220, 40))
    if np.all(np.isfinite(fitted)):
        marks = draw_landmarks(marks, fitted, color=(230, 40, 40))
    return np.concatenate([crop, (over * 255).astype(np.uint8), marks], axis=1)


def write_video(path: str, frames: Iterable[np.ndarray], fps: float) -> int:
    """Writes [H, W, 3] uint8 frames as an H.264 MP4 (imageio-ffmpeg); returns the count."""
    count = 0
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7,
                            macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
            count += 1
    return count
