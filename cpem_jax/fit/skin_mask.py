"""A skin mask from the 68 landmarks, for when no face parser is available.

Skin = the polygon of the jaw contour closed over the brows (raised by a fraction of the face
height to take in the lower forehead), minus the eyes, the brows and the inner mouth, each
dilated a little so that lashes, brow hair and teeth stay out.
"""
from __future__ import annotations

import cv2
import numpy as np

JAW = list(range(0, 17))
BROWS_RIGHT_TO_LEFT = list(range(26, 16, -1))  # Closes the jaw polygon over the brows.
EYES = (list(range(36, 42)), list(range(42, 48)))
BROWS = (list(range(17, 22)), list(range(22, 27)))
INNER_MOUTH = list(range(60, 68))


def skin_mask_from_landmarks(landmarks: np.ndarray, size: int, forehead: float = 0.15,
                             margin: float = 0.02) -> np.ndarray:
    """landmarks [68, 2] pixels of a size x size image -> skin mask [size, size] float32 {0, 1}.

    Args:
      forehead: how far above the brows the mask reaches, as a fraction of the face height.
      margin: dilation of the excluded parts, as a fraction of the face height.
    Returns all zeros when the landmarks are not finite.
    """
    mask = np.zeros((size, size), np.uint8)
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
        return mask.astype(np.float32)
    height = max(lm[:, 1].max() - lm[:, 1].min(), 1.0)
    brows_up = lm[BROWS_RIGHT_TO_LEFT] - [0.0, forehead * height]
    outline = np.concatenate([lm[JAW], brows_up])
    cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1)
    pad = max(1, int(round(margin * height)))
    holes = np.zeros_like(mask)
    for part in EYES + BROWS:
        cv2.fillPoly(holes, [np.round(lm[part]).astype(np.int32)], 1)
        cv2.polylines(holes, [np.round(lm[part]).astype(np.int32)], True, 1, 2 * pad)
    cv2.fillPoly(holes, [np.round(lm[INNER_MOUTH]).astype(np.int32)], 1)
    cv2.polylines(holes, [np.round(lm[INNER_MOUTH]).astype(np.int32)], True, 1, pad)
    return (mask * (1 - holes)).astype(np.float32)
