"""Resizing and clip-consistent augmentation of (image, skin mask, landmarks), numpy/OpenCV only.

Coordinates: u right, v down, in pixels; the pixel with index (i, j) covers [j, j+1] x [i, i+1],
so its centre is (j + 0.5, i + 0.5) (the project convention). OpenCV puts pixel centres at
integers; `_cv2_matrix` converts.

One `ClipAugmentation` is drawn per clip and applied identically to its T frames:
  - geometry: a similarity (scale about the image centre, rotation, shift) and an optional
    horizontal flip, applied to image, mask and landmarks alike; a flip also relabels landmarks
    with the iBUG-68 mirror permutation, so index 36 stays the outer corner of the eye on the
    image left. Pixels brought in from outside the frame are 0 in image and mask (masked out of
    the photometric loss).
  - colour: brightness, contrast and saturation factors (same factors for all T frames, so the
    identity-consistent albedo is not asked to explain per-frame colour changes).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import cv2
import numpy as np

from cpem_jax.data import ibug68

# Luma weights (ITU-R BT.601) for the grey image used by contrast and saturation.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the per-clip augmentation; `enabled=False` gives the identity."""
    enabled: bool = True
    max_shift: float = 0.05            # |shift| <= max_shift * size, per axis
    scale_range: Tuple[float, float] = (0.95, 1.05)
    max_rotation_deg: float = 5.0
    flip_probability: float = 0.5
    brightness: float = 0.2            # factor in [1 - b, 1 + b]
    contrast: float = 0.2              # factor in [1 - c, 1 + c]
    saturation: float = 0.2            # factor in [1 - s, 1 + s]

    def __post_init__(self):
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        for name in ("max_shift", "max_rotation_deg", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ClipAugmentation:
    """Concrete parameters for one clip (identity by default)."""
    scale: float = 1.0
    rotation_deg: float = 0.0
    shift: Tuple[float, float] = (0.0, 0.0)   # (du, dv) pixels of the output image
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0

    @property
    def is_geometric_identity(self) -> bool:
        return (self.scale == 1.0 and self.rotation_deg == 0.0 and self.shift == (0.0, 0.0)
                and not self.flip)


def sample_augmentation(config: AugmentConfig, size: int,
                        rng: np.random.Generator) -> ClipAugmentation:
    """Draw one clip's parameters for output images of `size` x `size`."""
    if not config.enabled:
        return ClipAugmentation()
    shift = rng.uniform(-config.max_shift, config.max_shift, size=2) * size
    return ClipAugmentation(
        scale=float(rng.uniform(*config.scale_range)),
        rotation_deg=float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)),
        shift=(float(shift[0]), float(shift[1])),
        flip=bool(rng.random() < config.flip_probability),
        brightness=float(rng.uniform(1 - config.brightness, 1 + config.brightness)),
        contrast=float(rng.uniform(1 - config.contrast, 1 + config.contrast)),
        saturation=float(rng.uniform(1 - config.saturation, 1 + config.saturation)))


def resize_frame(image: np.ndarray, mask: np.ndarray, landmarks: np.ndarray,
                 size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize one frame's arrays to size x size (same field of view, each from its own resolution).

    Args:
      image: [H, W, 3] float32; mask: [h, w] float32; landmarks: [68, 2] pixels of the image.
    Returns:
      image [S, S, 3], mask [S, S], landmarks [68, 2] in pixels of the S x S image.
    """
    height, width = image.shape[:2]
    scale = np.array([size / width, size / height], np.float32)
    return _resize(image, size), _resize(mask, size), landmarks * scale


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    if array.shape[:2] == (size, size):
        return array
    shrinking = array.shape[0] > size or array.shape[1] > size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(array, (size, size), interpolation=interp)


def geometry_matrix(aug: ClipAugmentation, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """The affine map u' = A u + b (project convention) of the geometric augmentation.

    Returns:
      A [2, 2] float64, b [2] float64.
    """
    theta = np.deg2rad(aug.rotation_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.full(2, size / 2.0)
    a = aug.scale * rot
    b = centre - a @ centre + np.asarray(aug.shift, np.float64)
    if aug.flip:
        mirror = np.diag([-1.0, 1.0])
        a, b = mirror @ a, mirror @ b + np.array([size, 0.0])
    return a, b


def _cv2_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[2, 3] matrix for cv2.warpAffine (pixel centres at integers) from u' = A u + b."""
    half = np.full(2, 0.5)
    return np.concatenate([a, (a @ half + b - half)[:, None]], axis=1)


def apply_geometry(images: np.ndarray, masks: np.ndarray, landmarks: np.ndarray,
                   aug: ClipAugmentation) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one clip's geometric augmentation to all its frames.

    Args:
      images: [T, S, S, 3] float32; masks: [T, S, S] float32; landmarks: [T, 68, 2] pixels.
    Returns:
      the same shapes; landmarks relabelled with `ibug68.MIRROR` when `aug.flip`.
    """
    if aug.is_geometric_identity:
        return images, masks, landmarks
    size = images.shape[1]
    a, b = geometry_matrix(aug, size)
    matrix = _cv2_matrix(a, b)

    def warp(array):
        return cv2.warpAffine(array, matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    images = np.stack([warp(im) for im in images])
    masks = np.stack([warp(m) for m in masks])
    landmarks = (landmarks @ a.T + b).astype(np.float32)
    if aug.flip:
        landmarks = landmarks[:, ibug68.MIRROR]
    return images, masks, landmarks


def apply_color(images: np.ndarray, aug: ClipAugmentation) -> np.ndarray:
    """Brightness, then contrast about each frame's mean grey, then saturation about each pixel's
    grey. images: [T, H, W, 3] float32 in [0, 1] -> same, clipped to [0, 1]."""
    if aug.brightness == aug.contrast == aug.saturation == 1.0:
        return images
    out = images * np.float32(aug.brightness)
    grey = out @ _LUMA                                               # [T, H, W]
    mean_grey = grey.mean(axis=(1, 2), keepdims=True)[..., None]     # [T, 1, 1, 1]
    out = (out - mean_grey) * np.float32(aug.contrast) + mean_grey
    grey = (out @ _LUMA)[..., None]                                  # [T, H, W, 1]
    out = (out - grey) * np.float32(aug.saturation) + grey
    return np.clip(out, 0.0, 1.0).astype(np.float32)
