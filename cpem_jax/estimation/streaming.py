"""Live estimation: one frame in, its expression and head pose out, within a frame's time.

    estimator = StreamingEstimator(model, make_front("auto"), profile=None)
    estimator.warm_up()                         # compiles (or loads from the compilation cache)
    for frame, arrival in live_frames:          # cpem_jax.io.live.LiveFrames
        result = estimator.process(frame.index, frame.timestamp_s, frame.image)

Per frame (`StreamingEstimator.process`):
  1. Front end (`estimation.live_front.LiveFront`): the followed face's 68 points, and
     MediaPipe's 478 where the front end gives them, followed by `detect.FaceTracker` as in
     the offline fit (the detector every 10th frame, MediaPipe's mesh followed from its last
     points in between).
  2. Crop: the square of `detect.crop.square_from_landmarks`, smoothed causally (an
     exponential filter, `StreamConfig.crop_smoothing`; the offline path smooths it with
     look-ahead), defines the crop camera of the fit (`FitConfig.camera()`); only the landmarks
     are mapped into it (no image is warped, except for calibration frames).
  3. Identity, locked: from a saved profile (`IdentityProfile`, `cpem-jax calibrate`), or
     calibrated live: the first `calibration_frames` frames with a face are kept (crop, points)
     and the offline fit's identity stage (`fit.fitter.SequenceFitter.fit_identity`: keyframes
     chosen by pose, identity and the keyframes' expression and pose fitted jointly, landmarks
     only unless `calibration_photometric`) runs on them in a background thread. Until it is
     done, frames are solved with the mean identity (`StreamResult.calibrated` False).
  4. Landmark solve: `iterations` Adam steps over this frame's expression, rotation and
     translation with the locked identity, on the fit's objective (`fit.objective.fit_terms`,
     the shared reconstruction terms with `photometric=False`: the landmark term over the dense
     points where there are any, else the 68, the priors, and the temporal term tying the frame
     to the previous one). Warm start: the previous frame's expression; the pose from PnP of the
     identity's neutral face on this frame's points (`pose_init="pnp"`, the offline tracker's
     start) or the previous frame's pose (`"previous"`). One jitted program with fixed shapes
     ([1] frame, `estimation.frame_solve`), compiled once per front-end kind and then loaded
     from the persistent compilation cache (`cpem_jax.compilation_cache`).
  5. No photometric refinement: rendering one frame costs more than a frame's time on a CPU
     (figures in experiments/live/README.md), so the live path fits landmarks only; a profile
     from `cpem-jax calibrate` still carries a photometric identity and albedo.
Smoothing of the outputs is the caller's (a causal One Euro filter in `cpem_jax.export`).

Profiles and the live calibration's frames and identity stage (`IdentityProfile`,
`IdentityCalibration`) are `estimation.identity`; `cpem-jax calibrate` runs the calibration alone
(`estimation.calibrate.calibrate_identity`).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cpem_jax.detect.crop import crop_affine, square_from_landmarks, warp_image
from cpem_jax.estimation.frame_solve import solve_frame
from cpem_jax.estimation.identity import IdentityCalibration, IdentityProfile, ProfileError
from cpem_jax.estimation.live_front import LiveFront
from cpem_jax.face_model.dense_landmarks import dense_landmarks_for, dense_points
from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.fitter import FitConfig, SequenceFitter
from cpem_jax.fit.objective import FitData, FitWeights
from cpem_jax.fit.optimize import frame_step_sizes
from cpem_jax.fit.rigid import INNER_68, rigid_points, solve_pose
from cpem_jax.fit.params import FrameParams, SharedParams, init_frames, init_shared
from cpem_jax.losses.objective import Targets

_MODEL_TABLE = object()  # `StreamingEstimator(dense=...)` default: the model's own table.
POSE_INITS = ("pnp", "previous")


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """Live estimation settings (module docstring).

    Attributes:
      size: crop side of the fit's camera, pixels (the landmarks live in it).
      iterations: Adam steps of the landmark solve per frame.
      step_scale: multiplies the offline fit's Adam step sizes (`fit.optimize.frame_step_sizes`).
      pose_init: "pnp" (PnP on this frame's points) or "previous" (the previous frame's pose).
      crop_smoothing: weight of the previous crop square in the causal filter, in [0, 1).
      calibration_frames: frames with a face collected for a live identity (no profile).
      keyframes: frames of those the identity stage fits (`FitConfig.keyframes`).
      identity_iterations: the identity stage's landmark iterations.
      calibration_photometric: add the identity stage's photometric iterations (fits the
        albedo; costs seconds on a CPU).
      carry_moments: Adam's second moments carry from frame to frame
        (`frame_solve.solve_frame`).
      final_step: the last iteration's step as a fraction of the first (cosine in between; the
        offline fit settles to 0.05, a frame warm-started from the previous one needs less).
      weights: the fit's term weights.
    """
    size: int = 224
    iterations: int = 30
    step_scale: float = 1.5
    pose_init: str = "pnp"
    crop_smoothing: float = 0.5
    calibration_frames: int = 40
    keyframes: int = 8
    identity_iterations: int = 300
    calibration_photometric: bool = False
    carry_moments: bool = True
    final_step: float = 0.3
    weights: FitWeights = FitWeights()

    def __post_init__(self):
        if self.iterations < 1 or self.size < 16 or self.calibration_frames < 1 \
                or self.keyframes < 1 or self.identity_iterations < 1:
            raise ValueError(f"StreamConfig needs iterations, calibration_frames, keyframes, "
                             f"identity_iterations >= 1 and size >= 16, got {self}")
        if self.pose_init not in POSE_INITS:
            raise ValueError(f"pose_init must be one of {POSE_INITS}, got {self.pose_init!r}")
        if not 0.0 <= self.crop_smoothing < 1.0 or not self.step_scale > 0:
            raise ValueError(f"crop_smoothing must lie in [0, 1) and step_scale be > 0, got "
                             f"{self.crop_smoothing}, {self.step_scale}")

    def fit_config(self) -> FitConfig:
        """The offline fit's settings of the identity stage."""
        base = FitConfig()
        return FitConfig(size=self.size, keyframes=self.keyframes,
                         identity_landmark_iters=self.identity_iterations,
                         identity_photo_iters=base.identity_photo_iters,
                         photometric=self.calibration_photometric, weights=self.weights)


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """One processed frame.

    Attributes:
      frame_index, timestamp_s: the source frame.
      found: a face was followed in it; when False the arrays below are NaN.
      expression: [K] float32 unit weights in [0, 1] (the face model's units).
      rotation: [3] float32 radians (pitch, yaw, roll); translation: [3] float32 cm.
      calibrated: solved with the calibrated (or loaded) identity, not the mean one.
      landmarks_detected, landmarks_fitted: [68, 2] float32 the front end's and the model's 68
        points, image pixels.
      timings_ms: {"front": front end, "solve": crop + landmark solve}.
    """
    frame_index: int
    timestamp_s: float
    found: bool
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    calibrated: bool
    landmarks_detected: np.ndarray
    landmarks_fitted: np.ndarray
    timings_ms: Dict[str, float]


class StreamingEstimator:
    """Per-frame live estimation with a locked identity (module docstring).

    Args:
      model: the face model.
      front: a LiveFront (or a landmarker, wrapped in one for face 0).
      config: StreamConfig.
      profile: a loaded IdentityProfile (skips the calibration), or None.
      dense: the model's dense table (default `dense_landmarks_for(model)`; None fits the 68).
    Attributes:
      calibrated_at: the frame index from which the calibrated identity is used (None before).
      calibration_seconds: how long the identity stage took (wall time, background).
    """

    def __init__(self, model: FaceModel, front, config: StreamConfig = StreamConfig(),
                 profile: Optional[IdentityProfile] = None, dense=_MODEL_TABLE):
        self.model = model
        self.front = front if isinstance(front, LiveFront) else LiveFront(front)
        self.config = config
        self.dense_table = dense_landmarks_for(model) if dense is _MODEL_TABLE else dense
        self.use_dense = self.front.dense and self.dense_table is not None
        self.fitter = SequenceFitter(model, config.fit_config(), dense=self.dense_table)
        self.camera = self.fitter.camera
        if profile is not None:
            profile.check(model)
            if profile.size != config.size:
                raise ProfileError(f"the profile was calibrated at crop size {profile.size}, "
                                   f"the live fit runs at {config.size}; calibrate again")
        self.profile = profile
        self.shared = profile.shared() if profile is not None else init_shared(model)
        self.calibrated_at: Optional[int] = None if profile is None else -1
        self.calibration_seconds: Optional[float] = None
        self._calibration = None if profile is not None else IdentityCalibration(
            config.calibration_frames)
        self._previous: Optional[FrameParams] = None
        self._neutral = None  # (shared, (rows, neutral points) of the 68 and of the dense)
        self._square: Optional[np.ndarray] = None
        self._unit_sparsity = self.fitter.unit_sparsity(self.use_dense)  # As the offline fit.
        scale = float(config.step_scale)  # Scaled as Python floats: no device operation.
        self._sizes = frame_step_sizes(**{name: float(value) * scale for name, value in
                                          dataclasses.asdict(frame_step_sizes()).items()})
        self._solve = jax.jit(functools.partial(solve_frame, camera=self.camera,
                                                weights=config.weights,
                                                iterations=int(config.iterations),
                                                carry_moments=config.carry_moments,
                                                final_step=float(config.final_step)))
        self._adam_init = optax.scale_by_adam().init(init_frames(model, 1))
        self._adam = self._adam_init
        # The model's arrays live on the device once, not copied into every call.
        self._model_device = jax.device_put(model)
        self._zero_image = jnp.zeros((1, 1, 1, 3), jnp.float32)
        self._zero_mask = jnp.zeros((1, 1, 1), jnp.float32)

    @property
    def calibrated(self) -> bool:
        return self.calibrated_at is not None

    # -- compilation -------------------------------------------------------------------------

    def warm_up(self) -> float:
        """Compiles the per-frame program (or loads it from the persistent cache) on a
        synthetic frame and starts the front end, so that the first live frame waits for
        neither. Returns seconds."""
        start = time.perf_counter()
        self.front.warm_up()
        # The current identity's neutral face at rest, as the front end would see it (numpy:
        # eager JAX operations would each be compiled first).
        model, identity = self.model, np.asarray(self.shared.identity, np.float64)
        ids = np.asarray(model.landmark_ids)
        landmarks = self._rest_pixels(np.asarray(model.mean_shape)[ids] + np.einsum(
            "lck,k->lc", np.asarray(model.id_basis)[ids], identity))
        dense = (self._rest_pixels(np.asarray(self.dense_table.mean) + np.einsum(
            "pck,k->pc", np.asarray(self.dense_table.id_basis), identity))
                 if self.use_dense else None)
        rotation, translation = self._pnp(landmarks[0], None if dense is None else dense[0])
        init = init_frames(self.model, 1).replace(rotation=jnp.asarray(rotation[None]),
                                                  translation=jnp.asarray(translation[None]))
        jax.block_until_ready(self._run(init, None, 0.0, landmarks, dense))
        return time.perf_counter() - start

    def _rest_pixels(self, points: np.ndarray) -> np.ndarray:
        """Model-space points [P, 3] at zero pose -> [1, P, 2] float32 pixels of the crop
        camera (`geometry.camera.project`)."""
        camera = self.camera
        cam = points + np.asarray(camera.base_translation, np.float64)
        depth = -cam[:, 2]
        uv = np.stack([float(camera.cx) + float(camera.focal) * cam[:, 0] / depth,
                       float(camera.cy) - float(camera.focal) * cam[:, 1] / depth], axis=-1)
        return uv[None].astype(np.float32)

    def _run(self, init: FrameParams, anchor: Optional[FrameParams], anchor_weight: float,
             landmarks: np.ndarray, dense: Optional[np.ndarray]):
        targets = Targets(image=self._zero_image, skin_mask=self._zero_mask,
                          landmarks=jnp.asarray(landmarks, jnp.float32))
        hidden = self.fitter.irises_unseen(1)
        if dense is not None:
            weights, hidden = self.fitter.dense_inputs(dense)
            targets = targets.replace(dense=jnp.asarray(np.nan_to_num(dense), jnp.float32),
                                      dense_weights=jnp.asarray(weights, jnp.float32))
        anchor = init if anchor is None else anchor
        data = FitData(targets=targets, anchor=anchor, anchor_weight=jnp.float32(anchor_weight),
                       consecutive=jnp.float32(1.0), unit_sparsity=self._unit_sparsity,
                       unit_temporal=self.fitter.unit_temporal,
                       gaze_hidden=None if hidden is None else jnp.asarray(hidden))
        return self._solve(self.shared, init, data, self._sizes, self._adam,
                           self._model_device, self.dense_table if dense is not None else None)

    # -- per frame ---------------------------------------------------------------------------

    def process(self, index: int, timestamp_s: float, image: np.ndarray) -> StreamResult:
        """Follows the face in one frame and estimates it (module docstring).

        Args:
          index, timestamp_s: the frame's number and time (increasing).
          image: [H, W, 3] uint8 RGB.
        Raises:
          RuntimeError: the background identity stage failed (its message).
        """
        t0 = time.perf_counter()
        observation = self.front.observe(index, timestamp_s, image)
        t1 = time.perf_counter()
        self.take_identity(index)
        if not observation.found:
            # Start afresh after the gap.
            self._previous, self._square, self._adam = None, None, self._adam_init
            nan = lambda *shape: np.full(shape, np.nan, np.float32)
            return StreamResult(int(index), float(timestamp_s), False,
                                nan(self.model.n_expression), nan(3), nan(3), self.calibrated,
                                nan(68, 2), nan(68, 2),
                                {"front": (t1 - t0) * 1e3, "solve": 0.0})
        square = square_from_landmarks(observation.landmarks)
        if self._square is not None:
            k = self.config.crop_smoothing
            square = k * self._square + (1.0 - k) * square
        self._square = square
        affine = crop_affine(square, self.config.size)
        to_crop = lambda p: (np.asarray(p, np.float64) @ affine[:, :2].T + affine[:, 2])
        landmarks = to_crop(observation.landmarks).astype(np.float32)[None]
        dense = (to_crop(observation.dense).astype(np.float32)[None]
                 if self.use_dense and observation.dense is not None else None)
        if self._calibration is not None and self._calibration.thread is None:
            self._collect(image, affine, landmarks[0], None if dense is None else dense[0])

        previous = self._previous
        init = previous if previous is not None else init_frames(self.model, 1)
        if self.config.pose_init == "pnp" or previous is None:
            rotation, translation = self._pnp(landmarks[0],
                                              None if dense is None else dense[0])
            init = init.replace(rotation=jnp.asarray(rotation[None]),
                                translation=jnp.asarray(translation[None]))
        frames, self._adam, fitted = self._run(init, previous, 0.0 if previous is None else 1.0,
                                               landmarks, dense)
        frames, fitted = jax.device_get((frames, fitted))
        self._previous = frames
        inverse = np.linalg.inv(affine[:, :2])
        fitted_image = ((np.asarray(fitted[0], np.float64) - affine[:, 2]) @ inverse.T)
        t2 = time.perf_counter()
        return StreamResult(int(index), float(timestamp_s), True,
                            np.asarray(frames.expression[0], np.float32),
                            np.asarray(frames.rotation[0], np.float32),
                            np.asarray(frames.translation[0], np.float32), self.calibrated,
                            np.asarray(observation.landmarks, np.float32),
                            fitted_image.astype(np.float32),
                            {"front": (t1 - t0) * 1e3, "solve": (t2 - t1) * 1e3})

    def _pnp(self, landmarks: np.ndarray, dense: Optional[np.ndarray]):
        """PnP of the identity's neutral face on one frame's points (crop pixels) ->
        (rotation [3], translation [3]), as the offline tracker starts each frame
        (`SequenceFitter.initial_poses`: only the points expressions barely move,
        `fit.rigid.rigid_points`), with the neutral points computed once per identity."""
        if self._neutral is None or self._neutral[0] is not self.shared:
            model, identity = self.model, jnp.asarray(self.shared.identity)
            ids = np.asarray(model.landmark_ids)
            rigid_68 = rigid_points(np.asarray(model.exp_basis)[ids], INNER_68)
            inner = None
            if rigid_68 is not None:
                inner = (rigid_68, np.asarray(model.mean_shape)[ids[rigid_68]] + np.einsum(
                    "lck,k->lc", np.asarray(model.id_basis)[ids[rigid_68]], np.asarray(identity)))
            surface = None
            if self.dense_table is not None:
                table = self.dense_table
                valid = np.flatnonzero(np.asarray(table.valid) & (np.asarray(table.eye) < 0))
                rigid = rigid_points(np.asarray(table.exp_basis), valid)
                if rigid is not None:
                    points = np.asarray(dense_points(table, identity,
                                                     jnp.zeros(model.n_expression)))
                    surface = (rigid, points[rigid])
            self._neutral = (self.shared, inner, surface)
        _, inner, surface = self._neutral
        chosen = surface if dense is not None else inner
        if chosen is None:  # A model without points that expressions leave still.
            return np.zeros(3, np.float32), np.zeros(3, np.float32)
        rows, points = chosen
        return solve_pose(points, (dense if dense is not None else landmarks)[rows], self.camera)

    # -- live calibration --------------------------------------------------------------------

    def _collect(self, image, affine, landmarks, dense) -> None:
        calibration = self._calibration
        size = self.config.size
        calibration.add(warp_image(image, affine, (size, size)), landmarks, dense)
        if calibration.full:
            calibration.start(self.fitter)

    def take_identity(self, index: int) -> bool:
        """Starts using an identity the background calibration has finished, from frame `index`
        on (`process` calls this each frame). Returns True when it took one.

        Raises RuntimeError when the calibration failed (its message)."""
        calibration = self._calibration
        if calibration is None or not calibration.done.is_set():
            return False
        if calibration.error is not None:
            raise RuntimeError(f"the live identity calibration failed: {calibration.error}")
        self.shared = SharedParams(identity=jnp.asarray(calibration.result.identity),
                                   albedo=jnp.asarray(calibration.result.albedo))
        self.calibrated_at = int(index)
        self.calibration_seconds = calibration.seconds
        self.profile = calibration.profile(
            self.model, self.config.size, self.config.calibration_photometric,
            type(self.front.landmarker).__name__)
        logging.info("identity calibrated on %d frames (%d keyframes) in %.1f s; used from "
                     "frame %d", len(calibration.crops), calibration.keyframes,
                     calibration.seconds, index)
        self._calibration = None
        return True

    @property
    def calibration_running(self) -> bool:
        """The background identity stage has started and its identity is not taken yet."""
        calibration = self._calibration
        return calibration is not None and calibration.thread is not None

    def wait_for_calibration(self, timeout: Optional[float] = None) -> bool:
        """Blocks until a running live calibration ends (up to `timeout` seconds); True when
        none is running any more."""
        if not self.calibration_running:
            return True
        return self._calibration.done.wait(timeout)

    def summary(self) -> Dict[str, Any]:
        """How the identity was obtained, for a run's summary."""
        if self.calibrated_at == -1:
            return {"identity": "profile", "photometric": self.profile.photometric,
                    "frames": self.profile.frames, "keyframes": self.profile.keyframes}
        if self.calibrated:
            return {"identity": "live", "frames": self.profile.frames,
                    "keyframes": self.profile.keyframes, "from_frame": self.calibrated_at,
                    "seconds": round(float(self.calibration_seconds), 3),
                    "photometric": self.profile.photometric}
        collected = 0 if self._calibration is None else len(self._calibration.crops)
        return {"identity": "mean (calibration not finished)", "frames": collected,
                "frames_wanted": self.config.calibration_frames}
