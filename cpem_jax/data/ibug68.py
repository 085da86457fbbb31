"""The iBUG / Multi-PIE 68-point landmark scheme: named groups, mirror permutation, merging.

Index groups are named ranges, never bare slice offsets. "Left" and "right" in the iBUG scheme are
the *image* sides of a frontal face (points 0-16 run along the jaw from the image left to the image
right), i.e. the subject's right side comes first.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

NUM_LANDMARKS = 68

# Named groups of the 68-point scheme (half-open ranges).
GROUPS: Dict[str, range] = {
    "jaw": range(0, 17),
    "brow_image_left": range(17, 22),
    "brow_image_right": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_lower": range(31, 36),
    "eye_image_left": range(36, 42),
    "eye_image_right": range(42, 48),
    "mouth_outer": range(48, 60),
    "mouth_inner": range(60, 68),
}
CONTOUR = GROUPS["jaw"]
INNER_FACE = range(CONTOUR.stop, NUM_LANDMARKS)

# Pairs (i, j) that swap places when the image is flipped horizontally; every index not listed
# lies on the symmetry axis and maps to itself.
_MIRROR_PAIRS = (
    # jaw contour: i <-> 16 - i
    *((i, CONTOUR.stop - 1 - i) for i in range(CONTOUR.start, CONTOUR.start + len(CONTOUR) // 2)),
    # brows (outer to inner on the image left; inner to outer on the image right)
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
    # lower nose
    (31, 35), (32, 34),
    # eyes: outer corner, upper lid, inner corner, lower lid
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    # outer lip: corners, upper lip, lower lip
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),
    # inner lip
    (60, 64), (61, 63), (65, 67),
)


def _mirror_permutation() -> np.ndarray:
    perm = np.arange(NUM_LANDMARKS)
    for i, j in _MIRROR_PAIRS:
        perm[i], perm[j] = j, i
    return perm


# MIRROR[i] = index of the point that lands on position i after a horizontal flip: for flipped
# landmarks `lm_f` (u -> W - u), the correctly labelled set is `lm_f[MIRROR]`. An involution.
MIRROR: np.ndarray = _mirror_permutation()

COMBINE_MODES = ("paper", "3d", "2d")


def combine_landmarks(landmarks_3d: np.ndarray, landmarks_2d: np.ndarray,
                      front_flag: np.ndarray | bool, mode: str = "paper") -> np.ndarray:
    """Merge the two detector outputs the CPEM layout ships.

    Args:
      landmarks_3d: [..., 68, 2] from `landmarks/` (a 3D face-alignment network; robust contour).
      landmarks_2d: [..., 68, 2] from `landmarks2d/` (dlib; accurate inner face, closed eyes).
      front_flag: [...] bool, near-frontal frame (|yaw| <= 15 degrees in the paper).
      mode: "paper": jaw contour (0-16) always from `landmarks_3d`; inner face (17-67) from
        `landmarks_2d` on near-frontal frames, else from `landmarks_3d`. "3d": all from
        `landmarks_3d`. "2d": all from `landmarks_2d`.

    Returns:
      [..., 68, 2] float32, same pixel frame as the inputs.
    """
    lm3 = np.asarray(landmarks_3d, np.float32)
    lm2 = np.asarray(landmarks_2d, np.float32)
    if lm3.shape != lm2.shape or lm3.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks must both be [..., {NUM_LANDMARKS}, 2]; got {lm3.shape} and "
                         f"{lm2.shape}")
    if mode == "3d":
        return lm3.copy()
    if mode == "2d":
        return lm2.copy()
    if mode != "paper":
        raise ValueError(f"unknown landmark combine mode {mode!r}; use one of {COMBINE_MODES}")
    use_2d = np.zeros(lm3.shape[:-1], bool)  # [..., 68]
    inner = np.zeros(NUM_LANDMARKS, bool)
    inner[INNER_FACE.start:INNER_FACE.stop] = True
    use_2d |= np.asarray(front_flag, bool)[..., None] & inner
    return np.where(use_2d[..., None], lm2, lm3)
