"""Everything in a synthetic frame besides the face's shape: pose, lighting, background, blur, noise.

All samplers take a numpy Generator and return numpy arrays, so a seed fixes the whole frame.
Pixel quantities are given at 224 px and scaled with the image size.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import cv2
import numpy as np

REFERENCE_SIZE = 224.0
_SH_DC_TO_LEVEL = math.pi / math.sqrt(4.0 * math.pi)  # DC coefficient -> uniform irradiance.


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Ranges of the per-clip scene (angles in degrees, translation in cm, pixels at 224 px)."""
    max_yaw_deg: float = 40.0
    max_pitch_deg: float = 20.0
    max_roll_deg: float = 10.0
    pose_drift_deg: float = 12.0        # largest pose change from a clip's start to its end
    max_shift_cm: float = 1.0           # x/y translation
    max_depth_cm: float = 5.0           # z translation (closer/further, about +-5% scale)
    ambient_range: Tuple[float, float] = (0.75, 1.15)   # irradiance of the DC term
    directional: float = 0.35           # band-1 strength relative to the DC level
    second_order: float = 0.12          # band-2 strength relative to the DC level
    tint: float = 0.08                  # per-channel light colour variation
    max_blur_px: float = 1.2            # Gaussian sigma upper bound
    max_noise: float = 0.02             # Gaussian pixel noise std upper bound (image in [0, 1])


def sample_clip_pose(n_frames: int, rng: np.random.Generator,
                     config: SceneConfig = SceneConfig()) -> Tuple[np.ndarray, np.ndarray]:
    """A smooth head motion: start and end poses inside the ranges, cosine-eased in between.

    Returns:
      rotation [T, 3] float32 radians (pitch, yaw, roll), translation [T, 3] float32 cm.
    """
    limits = np.array([config.max_pitch_deg, config.max_yaw_deg, config.max_roll_deg])
    start = rng.uniform(-limits, limits)
    drift = rng.uniform(-1.0, 1.0, 3) * config.pose_drift_deg * (limits / limits.max())
    end = np.clip(start + drift, -limits, limits)
    t_limits = np.array([config.max_shift_cm, config.max_shift_cm, config.max_depth_cm])
    t_start = rng.uniform(-t_limits, t_limits)
    t_end = np.clip(t_start + rng.uniform(-0.3, 0.3, 3) * t_limits, -t_limits, t_limits)
    s = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.zeros(1)
    ease = (0.5 - 0.5 * np.cos(np.pi * s))[:, None]
    rotation = np.radians(start + (end - start) * ease)
    translation = t_start + (t_end - t_start) * ease
    return rotation.astype(np.float32), translation.astype(np.float32)


def sample_lighting(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> np.ndarray:
    """Random 3-band SH lighting [3, 9] float32 (R, G, B), camera space.

    The DC term gives an ambient irradiance in `ambient_range`; one random direction (shared by
    the channels) carries the band-1 energy; band 2 is small random; each channel is tinted by
    up to `tint`.
    """
    level = rng.uniform(*config.ambient_range)
    dc = level / _SH_DC_TO_LEVEL
    direction = rng.normal(size=3)
    direction[2] = abs(direction[2]) + 0.5        # Mostly from the camera side.
    direction /= np.linalg.norm(direction)
    light = np.zeros((3, 9), np.float64)
    light[:, 0] = dc
    # Band-1 order in geometry/shading.sh_basis: (-y, z, -x).
    band1 = np.array([-direction[1], direction[2], -direction[0]])
    light[:, 1:4] = dc * config.directional * rng.uniform(0.3, 1.0) * band1
    light[:, 4:9] = dc * config.second_order * rng.normal(size=5)
    tint = 1.0 + rng.uniform(-config.tint, config.tint, size=(3, 1))
    return (light * tint).astype(np.float32)


def random_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random background [S, S, 3] float32 in [0, 1]: a smooth colour field, a gradient, or a
    texture (multi-scale smoothed noise, sometimes with stripes)."""
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # Smooth colour field: a coarse random grid upsampled.
        cells = int(rng.integers(2, 6))
        coarse = rng.uniform(0.0, 1.0, (cells, cells, 3)).astype(np.float32)
        image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # Linear gradient between two colours.
        a, b = rng.uniform(0.0, 1.0, (2, 3)).astype(np.float32)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        image = a + (b - a) * ramp[..., None]
    else:  # Texture: noise at a few scales on a base colour, optionally stripes.
        base = rng.uniform(0.15, 0.85, 3).astype(np.float32)
        image = np.broadcast_to(base, (size, size, 3)).copy()
        for scale in (4, 16, 64):
            cells = max(2, size // scale)
            noise = rng.normal(0.0, 0.08, (cells, cells, 3)).astype(np.float32)
            image += cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            freq = rng.uniform(4.0, 20.0)
            angle = rng.uniform(0.0, np.pi)
            stripes = np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy))
            image += (0.08 * stripes)[..., None]
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def degrade(image: np.ndarray, rng: np.random.Generator,
            config: SceneConfig = SceneConfig()) -> Tuple[np.ndarray, dict]:
    """Gaussian blur then Gaussian noise on image [S, S, 3] float32 in [0, 1].

    Returns the degraded image (clipped to [0, 1]) and {"blur_px": sigma, "noise": std} (pixels
    of this image).
    """
    size = image.shape[0]
    sigma = rng.uniform(0.0, config.max_blur_px) * size / REFERENCE_SIZE
    noise = rng.uniform(0.0, config.max_noise)
    out = image
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=float(sigma))
    out = out + rng.normal(0.0, noise, out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32), {"blur_px": float(sigma),
                                                       "noise": float(noise)}
