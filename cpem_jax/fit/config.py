"""The fit's settings: `FitConfig`, and the per-unit prior factors and iris rule it defaults to.

`cpem_jax.fit.fitter` describes the stages these settings steer.
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.objective import FitWeights
from cpem_jax.geometry.camera import (DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL, Camera,
                                     crop_camera)

# Eye openness (lid gap / eye width of the detected points, `eye_openness`) below which an eye's
# iris points weigh 0, and above which they weigh fully (linear in between): MediaPipe's open
# eyes measure about 0.25-0.35, closed ones under 0.1.
IRIS_OPENNESS = (0.12, 0.20)
# The brow units' evidence is a handful of brow landmarks and next to no photometric signal, so
# the full sparsity prior outweighs it: a raised inner brow of 0.4 fitted to exact projected
# points came out as 0.0 (0.36 with a tenth of the prior; tests/test_live_streaming.py).
BROW_SPARSITY: Tuple[Tuple[str, float], ...] = tuple(
    (f"brow{unit}_{side}", 0.1) for unit in ("Down", "InnerUp", "OuterUp") for side in "LR")

# mouthLowerDown moves the lower lip by 0.46 cm at full weight (jawOpen 4.2 cm), so the full prior
# prices it above a little jawOpen: at 0.8, fitted to exact projected points by the live landmark
# solve, it read 0.0 from both MediaPipe's points and the 68 (jawOpen 0.14-0.16 instead); 0.60 /
# 0.47 with this factor, no other unit over 0.06. mouthPress and mouthFrown (0.43 and 0.61 cm)
# read 0.0 the same way, but freed alike they took strong lip rolls and stretches on the
# synthetic benchmark (experiments/dense_fit, section 10), so they keep the full prior.
LIP_SPARSITY: Tuple[Tuple[str, float], ...] = tuple(
    (f"mouthLowerDown_{side}", 0.3) for side in "LR")

# eyeBlink carries this factor of the temporal prior. A blink is the fastest motion of the face
# (the lids close and open within 0.1-0.2 s: a peak of one or two frames at 25-30 fps), and the
# prior that steadies the slower units clipped it: strong blinks (0.8-0.96) of frontal synthetic
# faces, fitted to their 68 points, read 0.50-0.83, and 0.60-1.0 with this factor
# (experiments/dense_fit, section 11).
BLINK_TEMPORAL: Tuple[Tuple[str, float], ...] = (("eyeBlink_L", 0.1), ("eyeBlink_R", 0.1))

# Where the irises are fitted, the eyeLook* units carry this factor of the sparsity prior. With
# the full prior a look of 0.6 fitted to exact projected points read 0.35-0.41; and on real
# video, faces holding eye contact while the head turned had their eyes turned by 0.38 of the
# turn that keeps them on the lens (0.59 at this factor; experiments/labels, "Eye contact").
IRIS_GAZE_SPARSITY = 0.5


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Fitting settings (see the module docstring for the stages).

    `size` is the crop the camera and the landmarks live in; the photometric terms compare the
    crop and the render at `photo_size` (smaller is faster; the landmarks keep full precision).
    `near_frontal_deg`: keyframe candidates turn at most this much (`rigid.pose_keyframes`).
    `rest_candidates`: near-frontal frames the resting keyframes are chosen from (0: keyframes
    by pose alone; see the module docstring).
    `unit_sparsity`: (unit name, factor) pairs scaling those units' sparsity prior (others 1).
    `rest_unit_sparsity`: pairs that replace those factors in the identity stage on the resting
    keyframes (module docstring, stage 1): there the brow units and mouthLowerDown carry the
    full prior.
    `unit_temporal`: (unit name, factor) pairs scaling those units' share of the temporal prior
    (others 1).
    `iris_gaze_sparsity`: a further factor on the eyeLook* units' prior where the irises are
    fitted (MediaPipe's points); the 68-point fit, whose eyeLook* units the gaze prior holds at
    rest (no iris among the 68), keeps `unit_sparsity` alone.
    """
    size: int = 224
    photo_size: int = 112
    keyframes: int = 8
    identity_landmark_iters: int = 300
    identity_photo_iters: int = 150
    chunk: int = 8
    track_landmark_iters: int = 60
    track_photo_iters: int = 10
    photometric: bool = True
    near_frontal_deg: float = 30.0
    rest_candidates: int = 32
    unit_sparsity: Tuple[Tuple[str, float], ...] = BROW_SPARSITY + LIP_SPARSITY
    rest_unit_sparsity: Tuple[Tuple[str, float], ...] = tuple(
        (name, 1.0) for name, _ in BROW_SPARSITY + LIP_SPARSITY)
    unit_temporal: Tuple[Tuple[str, float], ...] = BLINK_TEMPORAL
    iris_gaze_sparsity: float = IRIS_GAZE_SPARSITY
    weights: FitWeights = FitWeights()
    focal_per_pixel: float = DEFAULT_FOCAL_PER_PIXEL
    distance_cm: float = DEFAULT_DISTANCE_CM

    def __post_init__(self):
        for name in ("size", "photo_size", "keyframes", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"FitConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.iris_gaze_sparsity >= 0:
            raise ValueError(f"FitConfig.iris_gaze_sparsity must be >= 0 (1 = the full prior), "
                             f"got {self.iris_gaze_sparsity}")

    def camera(self) -> Camera:
        return crop_camera(self.size, self.focal_per_pixel, self.distance_cm)

    def temporal_factors(self, model: FaceModel) -> np.ndarray:
        """[K_exp] float32 per-unit factors of the temporal prior's expression change:
        `unit_temporal`, 1 for the other units. Units the model lacks are skipped."""
        return _unit_factors(model, self.unit_temporal)

    def sparsity_factors(self, model: FaceModel, rest: bool = False) -> np.ndarray:
        """[K_exp] float32 per-unit factors of the sparsity prior: `unit_sparsity`, with
        `rest_unit_sparsity` over it when `rest` (the resting keyframes); 1 for the other units.
        Units the model lacks are skipped."""
        return _unit_factors(model, self.unit_sparsity
                             + (self.rest_unit_sparsity if rest else ()))


def _unit_factors(model: FaceModel, pairs) -> np.ndarray:
    """[K_exp] float32: 1, with each (unit name, factor) of `pairs` set in order (a later pair
    wins); names the model lacks are skipped."""
    factors = np.ones(model.n_expression, np.float32)
    for name, value in pairs:
        if name in model.expression_names:
            factors[model.expression_index(name)] = value
    return factors
