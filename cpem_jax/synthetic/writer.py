"""Writes synthetic frames in the CPEM folder layout that `cpem_jax.data.cpem_folder` reads.

    <split>/data/<person>/<video>/<frame>.jpg        image (RGB, stored BGR by OpenCV)
    <split>/face_mask/<person>/<video>/<frame>.png   skin mask, grey 0/255 (lossless)
    <split>/landmarks/<person>/<video>/<frame>.txt   68 lines "x y"
    <split>/landmarks2d/<person>/<video>/<frame>.txt 68 lines "x y" (an independent noise draw)
    <split>/front_face_flag.csv                      person_id,video_id,frame_name,front_face_flag

Landmark files use the file convention of the layout (the centre of pixel i at i), so the
project-convention coordinates (centre at i + 0.5) are shifted by -0.5 when written.
"""
from __future__ import annotations

import csv
import os
from typing import Iterable, Tuple

import cv2
import numpy as np

from cpem_jax.data import cpem_folder

JPEG_QUALITY = 95


def frame_paths(split_dir: str, person: str, video: str, frame: str,
                image_ext: str = ".jpg") -> dict:
    """The four per-frame file paths of the layout."""
    rel = os.path.join(person, video)
    return {
        "image": os.path.join(split_dir, cpem_folder.IMAGE_DIR, rel, frame + image_ext),
        "mask": os.path.join(split_dir, cpem_folder.MASK_DIR, rel, frame + ".png"),
        "landmarks": os.path.join(split_dir, cpem_folder.LANDMARKS_DIR, rel,
                                  frame + cpem_folder.LANDMARK_EXTENSION),
        "landmarks2d": os.path.join(split_dir, cpem_folder.LANDMARKS2D_DIR, rel,
                                    frame + cpem_folder.LANDMARK_EXTENSION),
    }


def write_landmarks(path: str, landmarks: np.ndarray) -> None:
    """landmarks [68, 2] project convention -> a 68-line "x y" file (file convention)."""
    lm = np.asarray(landmarks, np.float64) - cpem_folder.FILE_TO_PROJECT_PIXEL_OFFSET
    with open(path, "w", encoding="ascii") as f:
        f.write("".join(f"{x:.3f} {y:.3f}\n" for x, y in lm))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[..., 3] or [...] float in [0, 1] -> uint8 (rounded)."""
    return np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def write_frame(split_dir: str, person: str, video: str, frame: str, image: np.ndarray,
                mask: np.ndarray, landmarks: np.ndarray, landmarks2d: np.ndarray,
                image_ext: str = ".jpg") -> dict:
    """Writes one frame's four files.

    Args:
      image: [S, S, 3] float32 RGB in [0, 1].
      mask: [S, S] float32 in [0, 1] (written as 0/255 at 0.5).
      landmarks, landmarks2d: [68, 2] project convention pixels.
    Returns:
      The paths written (see `frame_paths`).
    """
    paths = frame_paths(split_dir, person, video, frame, image_ext)
    for p in paths.values():
        os.makedirs(os.path.dirname(p), exist_ok=True)
    bgr = cv2.cvtColor(to_uint8(image), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if image_ext == ".jpg" else []
    if not cv2.imwrite(paths["image"], bgr, params):
        raise OSError(f"could not write {paths['image']}")
    if not cv2.imwrite(paths["mask"], np.where(np.asarray(mask) >= 0.5, 255, 0).astype(np.uint8)):
        raise OSError(f"could not write {paths['mask']}")
    write_landmarks(paths["landmarks"], landmarks)
    write_landmarks(paths["landmarks2d"], landmarks2d)
    return paths


def write_flags(split_dir: str, rows: Iterable[Tuple[str, str, str, bool]]) -> str:
    """front_face_flag.csv from (person, video, frame, flag) rows."""
    path = os.path.join(split_dir, cpem_folder.FLAG_CSV)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(cpem_folder.CSV_COLUMNS)
        for person, video, frame, flag in rows:
            writer.writerow([person, video, frame, int(bool(flag))])
    return path
