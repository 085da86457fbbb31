"""dlib's 5-point aligned face chip, as a differentiable JAX function.

dlib (`get_face_chip_details` + `extract_image_chip`) builds the 150x150 chip the recognition
network expects like this, which `extract_face_chips` reproduces:

1. the chip positions of the 5 landmarks are a fixed template in the unit square, padded:
   `size * (padding + template) / (1 + 2 * padding)` (padding 0.25 by default);
2. a least-squares similarity transform maps those chip points onto the image landmarks, with
   scale s, rotation R and the chip centre `(size/2, size/2)` landing on image point c;
3. the chip spans a rectangle centred on c whose corner-to-corner side is `size * s - 1` pixels,
   so chip pixel p goes to `c + R * (p - (size-1)/2) * (size * s - 1) / (size - 1)`;
4. every chip pixel is bilinearly interpolated from the image, and is black where any of the four
   neighbours lies outside the image;
5. when the face is more than twice the chip's size, dlib first halves the image (blur, then
   every other pixel) as many times as it takes to bring the chip rectangle within twice the
   chip's size, and samples that pyramid level instead (no aliasing).

Steps 1-4 were checked against dlib's own chip geometry (probing `extract_image_chip` with
coordinate-ramp images: the mapping agrees to 1e-8 pixels). Step 5 follows the same rule for the
choice of level but with this module's own halving filter (binomial [1, 4, 6, 4, 1] / 16), not
a copy of dlib's: chips of large faces agree with dlib's less closely than the others (see
experiments/face_recognition/README.md). The level is chosen per image inside the traced
computation (every level is sampled, one kept), so the function stays jit-able.

Pixel conventions: dlib puts pixel centres at integer coordinates; this project puts them at
integer + 0.5. Landmarks here are in the project's convention: pass dlib's landmarks plus 0.5.
"""
from __future__ import annotations

from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

# Chip positions of dlib's 5 landmarks in the unit square (before padding), in the order of
# dlib's 5-point shape predictor: the image-right eye's outer and inner corner, the image-left
# eye's outer and inner corner, the bottom of the nose.
FIVE_POINT_TEMPLATE = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387433],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
], np.float64)
# The iBUG 68-point indices of those 5 points (outer/inner corner of each eye, nose bottom).
FIVE_FROM_68 = (45, 42, 36, 39, 33)
DEFAULT_CHIP_SIZE = 150
DEFAULT_PADDING = 0.25
DEFAULT_PYRAMID_LEVELS = 2  # halvings available: faces up to 8x the chip size are antialiased
BINOMIAL_5 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
PIXEL_CENTRE_OFFSET = 0.5  # project coordinate of a pixel centre minus dlib's


def landmarks5_from_68(landmarks68: jax.Array) -> jax.Array:
    """landmarks68 [..., 68, 2] (iBUG order) -> landmarks5 [..., 5, 2] in dlib's 5-point order."""
    if landmarks68.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks68 must be [..., 68, 2], got {landmarks68.shape}")
    return landmarks68[..., jnp.asarray(FIVE_FROM_68), :]


def chip_template(size: int = DEFAULT_CHIP_SIZE, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """[5, 2] chip coordinates (dlib convention, pixel centres at integers) of the 5 landmarks."""
    return size * (padding + FIVE_POINT_TEMPLATE) / (1.0 + 2.0 * padding)


def fit_similarity(src: jax.Array, dst: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Least-squares similarity dst ~ A @ src + t (Umeyama without reflection).

    Args:
      src: [N, 2] points.
      dst: [..., N, 2] points.
    Returns:
      A [..., 2, 2] (scale times rotation), t [..., 2].
    """
    src_mean = jnp.mean(src, axis=-2)
    dst_mean = jnp.mean(dst, axis=-2, keepdims=True)
    s = src - src_mean
    d = dst - dst_mean
    # With points as complex numbers the optimum is a = <s, d> / <s, s>, A = [[re, -im], [im, re]].
    norm = jnp.sum(s * s)
    re = jnp.sum(s[:, 0] * d[..., 0] + s[:, 1] * d[..., 1], axis=-1) / norm
    im = jnp.sum(s[:, 0] * d[..., 1] - s[:, 1] * d[..., 0], axis=-1) / norm
    a = jnp.stack([jnp.stack([re, -im], -1), jnp.stack([im, re], -1)], -2)
    t = dst_mean[..., 0, :] - jnp.einsum("...ij,j->...i", a, src_mean)
    return a, t


def chip_to_image(landmarks5: jax.Array, size: int = DEFAULT_CHIP_SIZE,
                  padding: float = DEFAULT_PADDING) -> Tuple[jax.Array, jax.Array]:
    """The affine map from chip pixel centres to image coordinates, as dlib builds it.

    Args:
      landmarks5: [..., 5, 2] image landmarks (u, v), project convention (centres at +0.5).
    Returns:
      M [..., 2, 2], t [..., 2] with image_point = M @ (chip_pixel_index) + t, image_point in the
      project convention and chip_pixel_index = (column, row) integers.
    """
    if landmarks5.shape[-2:] != (5, 2):
        raise ValueError(f"landmarks5 must be [..., 5, 2] in dlib's 5-point order, got "
                         f"{landmarks5.shape}; use landmarks5_from_68 for 68-point landmarks.")
    dst = landmarks5 - PIXEL_CENTRE_OFFSET  # dlib convention
    a, t = fit_similarity(jnp.asarray(chip_template(size, padding), landmarks5.dtype), dst)
    scale = jnp.sqrt(a[..., 0, 0] ** 2 + a[..., 1, 0] ** 2)
    centre = jnp.einsum("...ij,j->...i", a, jnp.full((2,), size / 2.0, landmarks5.dtype)) + t
    span = (size * scale - 1.0) / (size - 1.0)
    m = a / scale[..., None, None] * span[..., None, None]
    half = jnp.full((2,), (size - 1) / 2.0, landmarks5.dtype)
    offset = centre - jnp.einsum("...ij,j->...i", m, half) + PIXEL_CENTRE_OFFSET
    return m, offset


def bilinear_sample(image: jax.Array, points: jax.Array) -> jax.Array:
    """Samples image [H, W, C] at points [..., 2] (u, v), project convention -> [..., C].

    A sample is 0 where any of its four neighbouring pixels lies outside the image (as dlib).
    Differentiable in both the image and the points.
    """
    h, w = image.shape[0], image.shape[1]
    x = points[..., 0] - PIXEL_CENTRE_OFFSET
    y = points[..., 1] - PIXEL_CENTRE_OFFSET
    x0 = jnp.floor(x)
    y0 = jnp.floor(y)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 <= w - 1) & (y0 + 1 <= h - 1)
    xi = jnp.clip(x0, 0, w - 2).astype(jnp.int32)
    yi = jnp.clip(y0, 0, h - 2).astype(jnp.int32)
    top = image[yi, xi] * (1 - fx) + image[yi, xi + 1] * fx
    bottom = image[yi + 1, xi] * (1 - fx) + image[yi + 1, xi + 1] * fx
    return jnp.where(inside[..., None], top * (1 - fy) + bottom * fy, 0.0)


def halve(image: jax.Array) -> jax.Array:
    """image [H, W, C] -> [ceil(H/2), ceil(W/2), C]: binomial blur, then every other pixel.

    Output pixel i sits on input pixel 2 i (so a point at dlib coordinate p moves to p / 2).
    The blur renormalises its weights at the borders so that a flat image stays flat.
    """
    kernel = jnp.asarray(BINOMIAL_5, image.dtype)
    radius = len(BINOMIAL_5) // 2

    def blur(x, axis):
        moved = jnp.moveaxis(x, axis, 0)
        padded = jnp.pad(moved, [(radius, radius)] + [(0, 0)] * (moved.ndim - 1))
        n = moved.shape[0]
        out = sum(kernel[k] * padded[k:k + n] for k in range(len(BINOMIAL_5)))
        ones = jnp.pad(jnp.ones((n,), image.dtype), (radius, radius))
        norm = sum(kernel[k] * ones[k:k + n] for k in range(len(BINOMIAL_5)))
        out = out / norm.reshape((n,) + (1,) * (moved.ndim - 1))
        return jnp.moveaxis(out, 0, axis)

    return blur(blur(image, 0), 1)[::2, ::2]


def pyramid_level(m: jax.Array, size: int, max_levels: int) -> jax.Array:
    """Number of halvings dlib applies before sampling: m [..., 2, 2] chip->image -> [...] int.

    dlib halves while the halved chip rectangle still has more area than the chip.
    """
    side = jnp.sqrt(jnp.abs(jnp.linalg.det(m))) * (size - 1) + 1.0  # rectangle side, pixels
    level = jnp.zeros(side.shape, jnp.int32)
    for _ in range(max_levels):
        level = level + (side / 2.0 ** (level + 1) > size).astype(jnp.int32)
    return level


def extract_face_chips(images: jax.Array, landmarks5: jax.Array,
                       size: int = DEFAULT_CHIP_SIZE,
                       padding: float = DEFAULT_PADDING,
                       pyramid_levels: int = DEFAULT_PYRAMID_LEVELS) -> jax.Array:
    """dlib's aligned face chips, differentiable in the images and the landmarks.

    Args:
      images: [B, H, W, 3] float in [0, 1].
      landmarks5: [B, 5, 2] (u, v) pixels, project convention, dlib's 5-point order.
      size: chip side (150 for the recognition network).
      padding: dlib's padding around the landmark template (0.25 for the recognition network).
      pyramid_levels: how many halvings may antialias large faces (0: plain bilinear sampling).
    Returns:
      chips [B, size, size, 3], same dtype as images.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3] RGB in [0, 1], got {images.shape}")
    if landmarks5.shape != (images.shape[0], 5, 2):
        raise ValueError(f"landmarks5 must be [B, 5, 2] = [{images.shape[0]}, 5, 2], got "
                         f"{landmarks5.shape}; use landmarks5_from_68 for 68-point landmarks.")
    m, t = chip_to_image(landmarks5.astype(images.dtype), size, padding)
    rows, cols = jnp.meshgrid(jnp.arange(size, dtype=images.dtype),
                              jnp.arange(size, dtype=images.dtype), indexing="ij")
    grid = jnp.stack([cols, rows], axis=-1)  # [size, size, 2] (column, row)
    points = jnp.einsum("bij,hwj->bhwi", m, grid) + t[:, None, None, :]
    chips = jax.vmap(bilinear_sample)(images, points)
    level = pyramid_level(m, size, pyramid_levels)
    for k in range(1, pyramid_levels + 1):
        images = jax.vmap(halve)(images)
        # dlib coordinate p -> p / 2; in the project convention (p + 1/2) -> p / 2 + 1/2.
        points = (points - PIXEL_CENTRE_OFFSET) / 2.0 + PIXEL_CENTRE_OFFSET
        level_chips = jax.vmap(bilinear_sample)(images, points)
        chips = jnp.where((level == k)[:, None, None, None], level_chips, chips)
    return chips
