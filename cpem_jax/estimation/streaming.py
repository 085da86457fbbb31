"""Live estimation: one frame in, its expression and head pose out, within a frame's time.

    estimator = StreamingEstimator(model, make_front("auto"), profile=None)
    estimator.warm_up()                         # compiles (or loads from the compilation cache)
    for frame, arrival in live_frames:          # cpem_jax.io.live.LiveFrames
        result = estimator.process(frame.index, frame.timestamp_s, frame.image)

Per frame (`StreamingEstimator.process`):
  1. Front end (`LiveFront`): the followed face's 68 points, and MediaPipe's 478 where the
     front end gives them. MediaPipe runs in its VIDEO mode (its own tracker: one mesh pass per
     frame, its detector only when the face is lost); other front ends go through
     `detect.FaceTracker`.
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
     ([1] frame), compiled once per front-end kind and then loaded from the persistent
     compilation cache (`cpem_jax.compilation_cache`).
  5. No photometric refinement: rendering one frame costs more than a frame's time on a CPU
     (figures in experiments/live/README.md), so the live path fits landmarks only; a profile
     from `cpem-jax calibrate` still carries a photometric identity and albedo.
Smoothing of the outputs is the caller's (a causal One Euro filter in `cpem_jax.export`).

Profiles (`IdentityProfile`, an .npz): identity [K_id], albedo [K_alb], the face model's name
and sizes, the crop camera (size, focal per pixel, distance), how it was made; versioned by
`PROFILE_FORMAT` / `PROFILE_VERSION`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cpem_jax.detect.base import FaceObservation
from cpem_jax.detect.crop import crop_affine, square_from_landmarks, warp_image
from cpem_jax.detect.tracking import FaceTracker, box_iou, select_face
from cpem_jax.face_model.dense_landmarks import (DenseLandmarks, dense_landmarks_for,
                                                 dense_points)
from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.fitter import INNER_68, FitConfig, SequenceFitter, rigid_points
from cpem_jax.fit.objective import FitData, FitWeights, fit_terms
from cpem_jax.fit.optimize import cosine_factor, frame_step_sizes
from cpem_jax.fit.rigid import solve_pose
from cpem_jax.fit.params import (FrameParams, SharedParams, init_frames, init_shared,
                                 project_frames, to_coefficients)
from cpem_jax.geometry.camera import DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.losses.objective import Targets

_MODEL_TABLE = object()  # `StreamingEstimator(dense=...)` default: the model's own table.
PROFILE_FORMAT = "cpem-jax identity profile"
PROFILE_VERSION = 1
POSE_INITS = ("pnp", "previous")


class ProfileError(ValueError):
    """An identity profile that cannot be used (unreadable, another format, another model)."""


@dataclasses.dataclass(frozen=True)
class IdentityProfile:
    """A person's locked face shape and albedo for one face model (module docstring).

    Attributes:
      identity: [K_id] float32 (~N(0, 1) per mode).
      albedo: [K_alb] float32 (0 when calibrated from landmarks only).
      face_model: the face model's name; n_expression: its unit count.
      size, focal_per_pixel, distance_cm: the crop camera the identity was fitted through.
      photometric: the identity stage used the photometric term (albedo fitted).
      frames: how many frames were collected; keyframes: the frames the identity stage used.
      source: where the frames came from; landmarker: the front end's class name.
    """
    identity: np.ndarray
    albedo: np.ndarray
    face_model: str
    n_expression: int
    size: int = 224
    focal_per_pixel: float = DEFAULT_FOCAL_PER_PIXEL
    distance_cm: float = DEFAULT_DISTANCE_CM
    photometric: bool = False
    frames: int = 0
    keyframes: int = 0
    source: str = ""
    landmarker: str = ""

    def shared(self) -> SharedParams:
        return SharedParams(identity=jnp.asarray(self.identity, jnp.float32),
                            albedo=jnp.asarray(self.albedo, jnp.float32))

    def save(self, path: str) -> str:
        """Writes the profile as an .npz (`path`, '.npz' added when missing); returns the path."""
        path = path if path.endswith(".npz") else path + ".npz"
        meta = {k: getattr(self, k) for k in ("face_model", "n_expression", "size",
                                              "focal_per_pixel", "distance_cm", "photometric",
                                              "frames", "keyframes", "source", "landmarker")}
        meta.update(format=PROFILE_FORMAT, version=PROFILE_VERSION,
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with open(path, "wb") as f:
            np.savez(f, identity=np.asarray(self.identity, np.float32),
                     albedo=np.asarray(self.albedo, np.float32), meta=json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str, model: Optional[FaceModel] = None) -> "IdentityProfile":
        """Reads a profile written by `save`, checked against `model` when given.

        Raises:
          ProfileError: one line naming the problem and the fix.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                identity = np.asarray(data["identity"], np.float32)
                albedo = np.asarray(data["albedo"], np.float32)
        except FileNotFoundError:
            raise ProfileError(f"identity profile {path!r} does not exist; make one with "
                               f"`cpem-jax calibrate VIDEO -o {path}`") from None
        except (OSError, ValueError, KeyError) as error:
            raise ProfileError(f"{path!r} is not an identity profile ({error}); make one with "
                               "`cpem-jax calibrate VIDEO -o me.npz`") from None
        if meta.get("format") != PROFILE_FORMAT or meta.get("version") != PROFILE_VERSION:
            raise ProfileError(f"{path!r} is a {meta.get('format')!r} file of version "
                               f"{meta.get('version')!r}, not a {PROFILE_FORMAT} of version "
                               f"{PROFILE_VERSION}; calibrate again with `cpem-jax calibrate`")
        profile = cls(identity=identity, albedo=albedo,
                      **{k: meta[k] for k in ("face_model", "n_expression", "size",
                                              "focal_per_pixel", "distance_cm", "photometric",
                                              "frames", "keyframes", "source", "landmarker")})
        if model is not None:
            profile.check(model, path)
        return profile

    def check(self, model: FaceModel, path: str = "the profile") -> None:
        """Raises ProfileError unless the profile belongs to `model` (name and sizes)."""
        if (self.face_model != model.name or self.identity.shape != (model.n_identity,)
                or self.albedo.shape != (model.n_albedo,)
                or self.n_expression != model.n_expression):
            raise ProfileError(
                f"{path} was calibrated for face model {self.face_model!r} ({self.identity.size} "
                f"identity, {self.albedo.size} albedo coefficients), not {model.name!r} "
                f"({model.n_identity}, {model.n_albedo}); pass the same --face-model or "
                "calibrate again")


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
      carry_moments: Adam's second moments carry from frame to frame (`_solve_frame`).
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


# -- front end -------------------------------------------------------------------------------


def make_front(name: str = "auto", face: int = 0):
    """The front end by name ("auto", "mediapipe", "dlib") for a live source showing `face`
    (0 = largest): MediaPipe follows at most face + 1 faces (its VIDEO mode runs its detector on
    every frame while it follows fewer faces than that).

    Raises:
      ValueError: an unknown name.
      RuntimeError: the named front end cannot run (one line naming the fix).
    """
    from cpem_jax.detect.backends import make_landmarker
    try:
        return make_landmarker(name, mediapipe_options={"max_faces": int(face) + 1})
    except (ImportError, OSError) as error:
        raise RuntimeError(str(error).splitlines()[0] if str(error) else repr(error)) from error


class LiveFront:
    """The followed face in frames that come in time order.

    Args:
      landmarker: a FaceLandmarker; one with `detect_video` (MediaPipe) runs in its VIDEO mode.
      face: which face (0 = largest when a face is first chosen; then followed by box overlap).
      redetect_every: for other front ends, `FaceTracker`'s detector period in frames.
    """

    def __init__(self, landmarker, face: int = 0, redetect_every: int = 10,
                 min_iou: float = 0.3):
        if face < 0:
            raise ValueError(f"face must be >= 0, got {face}")
        self.landmarker = landmarker
        self.face = int(face)
        self.min_iou = float(min_iou)
        self.video = callable(getattr(landmarker, "detect_video", None))
        self.tracker = None if self.video else FaceTracker(landmarker, face=face,
                                                           redetect_every=redetect_every)
        self.most_faces = 0
        self._box: Optional[np.ndarray] = None
        self._last_ms: Optional[int] = None

    @property
    def dense(self) -> bool:
        """The front end gives dense points (MediaPipe's 478)."""
        return self.video or callable(getattr(self.landmarker, "dense_in_boxes", None))

    def warm_up(self) -> None:
        """Runs the front end once on a blank image, so that the first frame does not wait for
        MediaPipe to build its VIDEO-mode task (it does so on its first frame)."""
        if self.video:
            self.observe(-1, 0.0, np.zeros((128, 128, 3), np.uint8))
            self._box = None

    def observe(self, index: int, timestamp_s: float, image: np.ndarray) -> FaceObservation:
        """The followed face in `image [H, W, 3] uint8 RGB` (NaN arrays when not found)."""
        if not self.video:
            observation = self.tracker.update(index, timestamp_s, image)
            self.most_faces = self.tracker.most_faces
            return observation
        ms = int(round(timestamp_s * 1000.0))
        if self._last_ms is not None and ms <= self._last_ms:
            ms = self._last_ms + 1  # A camera's clock may repeat; MediaPipe needs increasing.
        self._last_ms = ms
        detections = self.landmarker.detect_video(image, ms / 1000.0)
        self.most_faces = max(self.most_faces, len(detections))
        chosen = None
        if len(detections):
            if self._box is not None:
                overlaps = box_iou(self._box, detections.boxes)
                best = int(np.argmax(overlaps))
                chosen = best if overlaps[best] >= self.min_iou else None
            if chosen is None:
                chosen = select_face(detections.boxes, self.face)
        if chosen is None:
            self._box = None
            return FaceObservation.missing(index, timestamp_s)
        self._box = detections.boxes[chosen]
        return FaceObservation(int(index), float(timestamp_s), True, self._box.copy(),
                               detections.landmarks[chosen].copy(), float("nan"),
                               detections.dense[chosen].copy())


# -- results -----------------------------------------------------------------------------------


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


class _Calibration:
    """Frames kept for a live identity, and the background identity stage."""

    def __init__(self, wanted: int):
        self.wanted = wanted
        self.crops: List[np.ndarray] = []
        self.landmarks: List[np.ndarray] = []
        self.dense: List[np.ndarray] = []
        self.thread: Optional[threading.Thread] = None
        self.result: Optional[SharedParams] = None
        self.keyframes = 0
        self.error: Optional[BaseException] = None
        self.seconds = 0.0
        self.done = threading.Event()


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
        self._calibration = None if profile is not None else _Calibration(
            config.calibration_frames)
        self._previous: Optional[FrameParams] = None
        self._neutral = None  # (shared, (rows, neutral points) of the 68 and of the dense)
        self._square: Optional[np.ndarray] = None
        scale = float(config.step_scale)  # Scaled as Python floats: no device operation.
        self._sizes = frame_step_sizes(**{name: float(value) * scale for name, value in
                                          dataclasses.asdict(frame_step_sizes()).items()})
        self._solve = jax.jit(functools.partial(_solve_frame, camera=self.camera,
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
        if dense is not None:
            weights = self.fitter.dense_weights(dense)
            targets = targets.replace(dense=jnp.asarray(np.nan_to_num(dense), jnp.float32),
                                      dense_weights=jnp.asarray(weights, jnp.float32))
        anchor = init if anchor is None else anchor
        data = FitData(targets=targets, anchor=anchor, anchor_weight=jnp.float32(anchor_weight),
                       consecutive=jnp.float32(1.0))
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
        `fit.fitter.rigid_points`), with the neutral points computed once per identity."""
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
        calibration.crops.append(warp_image(image, affine, (size, size)))
        calibration.landmarks.append(landmarks)
        if dense is not None:
            calibration.dense.append(dense)
        if len(calibration.crops) >= calibration.wanted:
            calibration.thread = threading.Thread(target=self._fit_identity, daemon=True,
                                                  name="identity-calibration")
            calibration.thread.start()

    def _fit_identity(self) -> None:
        calibration = self._calibration
        start = time.perf_counter()
        try:
            dense = np.stack(calibration.dense) if calibration.dense else None
            shared, ids, _ = self.fitter.fit_identity(
                np.stack(calibration.crops), np.stack(calibration.landmarks), dense)
            calibration.result = jax.device_get(shared)
            calibration.keyframes = len(ids)
        except BaseException as error:  # Reported in the consumer's thread.
            calibration.error = error
        calibration.seconds = time.perf_counter() - start
        calibration.done.set()

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
        self.profile = IdentityProfile(
            identity=np.asarray(calibration.result.identity, np.float32),
            albedo=np.asarray(calibration.result.albedo, np.float32),
            face_model=self.model.name, n_expression=self.model.n_expression,
            size=self.config.size, photometric=self.config.calibration_photometric,
            frames=len(calibration.crops), keyframes=calibration.keyframes,
            landmarker=type(self.front.landmarker).__name__)
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


def _solve_frame(shared: SharedParams, init: FrameParams, data: FitData, sizes: FrameParams,
                 adam: optax.ScaleByAdamState, model: FaceModel,
                 dense: Optional[DenseLandmarks], camera, weights: FitWeights, iterations: int,
                 carry_moments: bool, final_step: float):
    """`iterations` Adam steps over one frame's FrameParams [1] with `shared` locked, the steps
    scaled per group by `sizes` and shrinking along the fit's cosine (`fit.optimize`).

    `adam` is the optimiser state the previous frame ended with: its second moments (each
    parameter's gradient scale) carry over when `carry_moments`, and the first moments
    (momentum) restart at zero, so a frame does not start with the full-size, sign-only step a
    fresh Adam takes in every coordinate. Returns (FrameParams [1], the Adam state, the model's
    68 landmarks [1, 68, 2] in crop pixels).
    """
    objective = lambda f: fit_terms(shared, f, data, model, camera, weights, None,
                                    photometric=False, dense=dense)[0]
    tx = optax.scale_by_adam()
    grad_fn = jax.grad(objective)
    fresh = tx.init(init)
    adam = (adam._replace(mu=fresh.mu) if carry_moments else fresh)

    def body(i, carry):
        params, state = carry
        updates, state = tx.update(grad_fn(params), state, params)
        factor = cosine_factor(i, iterations, final_step)
        params = jax.tree_util.tree_map(lambda p, u, s: p - u * s * factor, params, updates,
                                        sizes)
        return project_frames(params), state

    frames, adam = jax.lax.fori_loop(0, iterations, body, (init, adam))
    return frames, adam, project_landmarks(model, to_coefficients(shared, frames), camera)


def calibrate_identity(frames, front: LiveFront, model: FaceModel,
                       config: StreamConfig = StreamConfig(), source: str = "",
                       progress=None) -> IdentityProfile:
    """An identity profile from the first `config.calibration_frames` frames with a face.

    Args:
      frames: an iterable of `io.frames.Frame` in time order (a video or a camera).
      front: the LiveFront that follows the face.
      model: the face model.
      config: the calibration settings (`calibration_frames`, `keyframes`,
        `identity_iterations`, `calibration_photometric`).
      source: recorded in the profile.
      progress: called with (frames collected, frames wanted, False) after each frame with a
        face, and (collected, wanted, True) when the identity stage starts.
    Raises:
      RuntimeError: no frame shows a face (one line saying so).
    """
    estimator = StreamingEstimator(model, front, config)
    calibration = estimator._calibration
    seen = 0
    for frame in frames:
        seen += 1
        observation = front.observe(frame.index, frame.timestamp_s, frame.image)
        if not observation.found:
            continue
        square = square_from_landmarks(observation.landmarks)
        affine = crop_affine(square, config.size)
        to_crop = lambda p: (np.asarray(p, np.float64) @ affine[:, :2].T + affine[:, 2])
        calibration.crops.append(warp_image(frame.image, affine, (config.size, config.size)))
        calibration.landmarks.append(to_crop(observation.landmarks).astype(np.float32))
        if estimator.use_dense and observation.dense is not None:
            calibration.dense.append(to_crop(observation.dense).astype(np.float32))
        if progress is not None:
            progress(len(calibration.crops), calibration.wanted, False)
        if len(calibration.crops) >= calibration.wanted:
            break
    if not calibration.crops:
        raise RuntimeError(f"no face found in any of the {seen} frames read; the calibration "
                           "needs frames that show the face (upright, evenly lit, about 80 px or "
                           "more across)")
    if len(calibration.crops) < calibration.wanted:
        logging.info("calibrating on the %d frames with a face of %d read (%d wanted)",
                     len(calibration.crops), seen, calibration.wanted)
    if progress is not None:
        progress(len(calibration.crops), calibration.wanted, True)
    estimator._fit_identity()
    if calibration.error is not None:
        raise calibration.error
    shared = calibration.result
    return IdentityProfile(
        identity=np.asarray(shared.identity, np.float32),
        albedo=np.asarray(shared.albedo, np.float32), face_model=model.name,
        n_expression=model.n_expression, size=config.size,
        photometric=config.calibration_photometric, frames=len(calibration.crops),
        keyframes=calibration.keyframes, source=str(source),
        landmarker=type(front.landmarker).__name__)
