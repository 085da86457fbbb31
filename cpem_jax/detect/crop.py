"""A consistent square face crop from the 68 landmarks, and its inverse mapping.

Per frame, a square (centre cx, cy and side, in original image pixels) is taken from the landmark
extent: centre at the extent's centre moved up by `shift_up` x side (the landmarks stop at the
brows, the forehead lies above them), side = `scale` x the longer extent side. For video the
squares are smoothed over time (`smooth_squares`, zero lag), so the crop does not jitter with the
landmarks. The square is resized to `size x size`. A frame without a face is letterboxed whole
into the crop (`letterbox_affine`).

Mapping: `affine [2, 3]` takes original-image pixel coordinates to crop coordinates (both in the
project convention, pixel centres at integer + 0.5): `crop_uv = affine[:, :2] @ uv + affine[:, 2]`.
`invert_affine` gives the crop -> image map.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np

from cpem_jax.detect.tracking import landmark_extent

BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE,
           "reflect": cv2.BORDER_REFLECT_101}
# Below this crop/source scale the image is first shrunk with area averaging, since bilinear
# warping alone would alias (it samples only 2x2 source pixels per output pixel).
_AREA_SHRINK_BELOW = 0.75


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """How to crop a face.

    Attributes:
      size: side S of the square crop in pixels (the network input is 224).
      scale: crop side / longer side of the landmark extent (> 1 leaves a margin).
      shift_up: upward shift of the crop centre from the landmark extent centre, in crop sides.
      smooth_sigma: temporal smoothing of the crop square for videos, Gaussian sigma in frames
        (0: none).
      border: fill outside the image: "constant" (black), "replicate" or "reflect".
    """
    size: int = 224
    scale: float = 1.4
    shift_up: float = 0.06
    smooth_sigma: float = 2.0
    border: str = "constant"

    def __post_init__(self):
        if self.size < 8:
            raise ValueError(f"crop size must be >= 8 px, got {self.size}.")
        if self.scale <= 0:
            raise ValueError(f"crop scale must be > 0, got {self.scale}.")
        if self.smooth_sigma < 0:
            raise ValueError(f"smooth_sigma must be >= 0, got {self.smooth_sigma}.")
        if self.border not in BORDERS:
            raise ValueError(f"border must be one of {sorted(BORDERS)}, got {self.border!r}.")


class FaceCrop(NamedTuple):
    """A face crop.

    Attributes:
      image: [S, S, 3] uint8 RGB crop.
      affine: [2, 3] float64 map from original image pixels to crop pixels.
      landmarks: [68, 2] float32 landmarks in crop pixels (NaN when the frame had none).
    """
    image: np.ndarray
    affine: np.ndarray
    landmarks: np.ndarray


def square_from_landmarks(landmarks: np.ndarray, config: CropConfig = CropConfig()) -> np.ndarray:
    """The crop square of one face.

    Args:
      landmarks: [..., 68, 2] landmarks in image pixels.
      config: scale and shift_up are used.
    Returns:
      [..., 3] float64 (cx, cy, side) in image pixels.
    """
    extent = landmark_extent(landmarks)
    side = config.scale * np.maximum(extent[..., 2] - extent[..., 0],
                                     extent[..., 3] - extent[..., 1])
    cx = (extent[..., 0] + extent[..., 2]) / 2
    cy = (extent[..., 1] + extent[..., 3]) / 2 - config.shift_up * side
    return np.stack([cx, cy, side], axis=-1)


def crop_affine(square: np.ndarray, size: int) -> np.ndarray:
    """The [2, 3] float64 map taking image pixels to the pixels of `square [3]` resized to size."""
    cx, cy, side = (float(v) for v in np.asarray(square).reshape(3))
    if not np.isfinite([cx, cy, side]).all() or side <= 0:
        raise ValueError(f"invalid crop square (cx, cy, side) = {(cx, cy, side)}.")
    k = size / side
    return np.array([[k, 0.0, -k * (cx - side / 2)],
                     [0.0, k, -k * (cy - side / 2)]])


def letterbox_affine(width: int, height: int, size: int) -> np.ndarray:
    """The [2, 3] map taking a width x height image into a size x size square, whole, scaled to
    fit and centred (black bars on the short side)."""
    k = size / max(width, height)
    return np.array([[k, 0.0, (size - k * width) / 2.0], [0.0, k, (size - k * height) / 2.0]])


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of an invertible 2D affine `[2, 3]` -> [2, 3]."""
    affine = np.asarray(affine, np.float64)
    linear_inv = np.linalg.inv(affine[:, :2])
    return np.concatenate([linear_inv, -linear_inv @ affine[:, 2:]], axis=1)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Maps `points [..., 2]` with `affine [2, 3]` -> [..., 2] (dtype of points if float)."""
    points = np.asarray(points)
    out = points @ np.asarray(affine)[:, :2].T + np.asarray(affine)[:, 2]
    return out.astype(points.dtype if np.issubdtype(points.dtype, np.floating) else np.float64)


def _index_affine(affine: np.ndarray) -> np.ndarray:
    """Converts a centre-at-+0.5 affine to OpenCV's pixel-index convention (centres at integers).

    p_index = p - 0.5 on both sides, so M = A with translation A_t + A_l @ 0.5 - 0.5.
    """
    affine = np.asarray(affine, np.float64)
    return np.concatenate([affine[:, :2], (affine[:, 2] + affine[:, :2].sum(axis=1) * 0.5
                                           - 0.5)[:, None]], axis=1)


def warp_image(image: np.ndarray, affine: np.ndarray, out_size: Tuple[int, int],
               border: str = "constant") -> np.ndarray:
    """Resamples `image [H, W, C]` so that output pixel p shows input at `invert_affine(A) p`.

    Args:
      image: [H, W, C] or [H, W] (any dtype OpenCV warps: uint8, float32).
      affine: [2, 3] map from input pixels to output pixels (centres at +0.5).
      out_size: (width, height) of the output.
      border: "constant" (zeros), "replicate" or "reflect".
    Returns:
      [height, width, C] (or [height, width]) of image's dtype.
    """
    affine = np.asarray(affine, np.float64)
    scale = np.sqrt(abs(np.linalg.det(affine[:, :2])))
    if scale < _AREA_SHRINK_BELOW:
        height, width = image.shape[:2]
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        image = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        # Original -> small is a per-axis scale; compose the original affine with its inverse.
        affine = affine @ np.array([[width / small_w, 0, 0], [0, height / small_h, 0], [0, 0, 1]])
    return cv2.warpAffine(image, _index_affine(affine), (int(out_size[0]), int(out_size[1])),
                          flags=cv2.INTER_LINEAR, borderMode=BORDERS[border], borderValue=0)


def crop_face(image: np.ndarray, square: np.ndarray, landmarks: Optional[np.ndarray] = None,
              config: CropConfig = CropConfig()) -> FaceCrop:
    """Crops `square` out of `image` and maps the landmarks into it.

    Args:
      image: [H, W, 3] uint8 RGB.
      square: [3] (cx, cy, side) in image pixels, e.g. from `square_from_landmarks` (smoothed).
      landmarks: [68, 2] image pixels, or None.
      config: size and border are used.
    Returns:
      FaceCrop(image [S, S, 3] uint8, affine [2, 3], landmarks [68, 2] float32 crop pixels).
    """
    affine = crop_affine(square, config.size)
    crop = warp_image(image, affine, (config.size, config.size), config.border)
    if landmarks is None:
        crop_landmarks = np.full((68, 2), np.nan, np.float32)
    else:
        crop_landmarks = apply_affine(affine, np.asarray(landmarks, np.float32))
    return FaceCrop(crop, affine, crop_landmarks.astype(np.float32))


def smooth_squares(squares: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-lag temporal smoothing of per-frame crop squares; fills frames without a face.

    Args:
      squares: [T, 3] (cx, cy, side) per frame (values of invalid frames are ignored).
      valid: [T] bool, frames whose square is measured.
      sigma: Gaussian sigma in frames (0: no smoothing, only filling).
    Returns:
      [T, 3] float64: Gaussian-weighted mean over valid frames within 3 sigma; a frame with no
      valid frame in that window takes the nearest valid frame's square.
    Raises:
      ValueError: no frame is valid (no face anywhere: nothing to crop).
    """
    squares = np.asarray(squares, np.float64).reshape(-1, 3)
    valid = np.asarray(valid, bool).reshape(-1) & np.isfinite(squares).all(axis=1)
    if not valid.any():
        raise ValueError("no frame has a face, so there is no crop; check the input video or "
                         "lower the detector threshold.")
    frames = np.arange(len(squares))
    valid_frames = frames[valid]
    filled = np.where(valid[:, None], squares, 0.0)
    out = np.empty_like(squares)
    radius = int(np.ceil(3 * sigma))
    for t in frames:
        lo, hi = max(0, t - radius), min(len(squares), t + radius + 1)
        if sigma > 0:
            weights = np.exp(-0.5 * ((frames[lo:hi] - t) / sigma) ** 2) * valid[lo:hi]
        else:
            weights = (frames[lo:hi] == t) * valid[lo:hi]
        if weights.sum() > 0:
            out[t] = weights @ filled[lo:hi] / weights.sum()
        else:
            nearest = valid_frames[np.argmin(np.abs(valid_frames - t))]
            out[t] = squares[nearest]
    return out
