"""A contact sheet of generated frames with their landmark files drawn on (for READMEs)."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from cpem_jax.data import cpem_folder


def draw_landmarks(image_bgr: np.ndarray, landmarks: np.ndarray, color=(0, 255, 0),
                   radius: int = 1) -> np.ndarray:
    """Draws [68, 2] project-convention landmarks on a uint8 BGR image [H, W, 3] (a copy)."""
    out = image_bgr.copy()
    for u, v in np.asarray(landmarks, np.float64):
        cv2.circle(out, (int(np.floor(u)), int(np.floor(v))), radius, color, -1, cv2.LINE_AA)
    return out


def write_montage(split_dir: str, path: str, columns: int = 4, rows: int = 2,
                  tile: Optional[int] = None) -> str:
    """Writes a PNG grid of frames of `split_dir` (one frame per clip, cycling through each clip's
    frames) with the `landmarks/` points in green and the skin-mask outline in red.

    Args:
      split_dir: a folder written by `generate_split`.
      path: output .png.
      columns, rows: grid size; tile: side of each tile in pixels (default: the image size).
    Returns:
      path.
    """
    index = cpem_folder.build_index(split_dir)
    tiles = []
    for k in range(columns * rows):
        clip = index.clips[k % len(index.clips)]
        frame = index.frames[clip.frame_ids[(k // len(index.clips)) % len(clip)]]
        image = cv2.imread(frame.image_path, cv2.IMREAD_COLOR)
        mask = cv2.imread(frame.mask_path, cv2.IMREAD_GRAYSCALE)
        contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_LIST,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(image, contours, -1, (0, 0, 255), 1)
        image = draw_landmarks(image, cpem_folder.read_landmarks(frame.landmarks_path))
        if tile is not None and tile != image.shape[0]:
            image = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
        tiles.append(image)
    grid = np.concatenate([np.concatenate(tiles[r * columns:(r + 1) * columns], axis=1)
                           for r in range(rows)], axis=0)
    if not cv2.imwrite(path, grid):
        raise OSError(f"could not write {path}")
    return path
