"""Drawing the 68 landmarks (iBUG groups joined by lines) on an image."""
from __future__ import annotations

import cv2
import numpy as np

# Polylines of the iBUG 68 layout: (first id, last id, closed).
IBUG_CURVES = ((0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False),
               (31, 35, False), (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True))


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, color=(40, 220, 40),
                   numbers: bool = False) -> np.ndarray:
    """image [H, W, 3] uint8 RGB, landmarks [68, 2] pixels -> a copy with the landmarks drawn."""
    out = np.ascontiguousarray(image.copy())
    scale = max(1, round(min(out.shape[:2]) / 256))
    pts = np.round(np.asarray(landmarks, np.float64)).astype(np.int32)
    for first, last, closed in IBUG_CURVES:
        cv2.polylines(out, [pts[first:last + 1]], closed, color, scale, cv2.LINE_AA)
    for i, (x, y) in enumerate(pts):
        cv2.circle(out, (int(x), int(y)), scale + 1, (230, 60, 30), -1, cv2.LINE_AA)
        if numbers:
            cv2.putText(out, str(i), (int(x) + 2, int(y) - 2), cv2.FONT_HERSHEY_SIMPLEX,
                        0.25 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
