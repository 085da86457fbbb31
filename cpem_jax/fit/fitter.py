"""Fits the morphable model to a sequence of face crops with one identity for all frames.

Stages (coarse to fine):
  1. Identity: on up to `keyframes` frames spread over the sequence, the shared identity and
     albedo are fitted jointly with those frames' expression, pose and lighting; first to the
     landmarks only, then with the photometric term.
  2. Tracking: the identity and albedo are locked; the frames are fitted in batches of `chunk`,
     each warm-started from the previous batch's last frame and tied to it by the temporal prior;
     landmarks first, then with the photometric term.
Every stage is one jitted program (the Adam loop inside), compiled once per shape.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import cv2
import numpy as np
from tqdm import tqdm

from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.objective import FitData, FitWeights, fit_terms
from cpem_jax.fit.optimize import (frame_step_sizes, project_joint, run_adam,
                                   shared_step_sizes)
from cpem_jax.fit.params import (FrameParams, SharedParams, init_frames, init_shared,
                                 project_frames, to_coefficients)
from cpem_jax.fit.skin_mask import skin_mask_from_landmarks
from cpem_jax.geometry.camera import (DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL, Camera,
                                     crop_camera)
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.losses.objective import Targets


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Fitting settings (see the module docstring for the stages).

    `size` is the crop the camera and the landmarks live in; the photometric terms compare the
    crop and the render at `photo_size` (smaller is faster; the landmarks keep full precision).
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
    weights: FitWeights = FitWeights()
    focal_per_pixel: float = DEFAULT_FOCAL_PER_PIXEL
    distance_cm: float = DEFAULT_DISTANCE_CM

    def __post_init__(self):
        for name in ("size", "photo_size", "keyframes", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"FitConfig.{name} must be >= 1, got {getattr(self, name)}")

    def camera(self) -> Camera:
        return crop_camera(self.size, self.focal_per_pixel, self.distance_cm)


@dataclasses.dataclass
class SequenceFit:
    """The fit of N frames: shared identity/albedo and per-frame FrameParams [N], numpy."""
    shared: SharedParams
    frames: FrameParams
    landmarks_fitted: np.ndarray  # [N, 68, 2] crop pixels


def _slice_frames(frames: FrameParams, idx) -> FrameParams:
    return jax.tree_util.tree_map(lambda x: x[idx], frames)


def _pad(array: np.ndarray, n: int) -> np.ndarray:
    """Repeats the last entry so that the leading axis has n entries."""
    if len(array) == n:
        return array
    return np.concatenate([array, np.repeat(array[-1:], n - len(array), axis=0)])


class SequenceFitter:
    """Compiled fitting programs for one model, camera and config."""

    def __init__(self, model: FaceModel, config: FitConfig, render_fn: Optional[Callable] = None):
        self.model = model
        self.config = config
        self.camera = config.camera()
        loss = functools.partial(fit_terms, camera=self.camera, weights=config.weights,
                                 render_fn=render_fn)

        def joint(shared, frames, data, model, photometric, iterations):
            objective = lambda p: loss(p[0], p[1], data, model, photometric=photometric)[0]
            return run_adam(objective, (shared, frames),
                            (shared_step_sizes(), frame_step_sizes()), iterations,
                            project_joint)

        def track(shared, frames, data, model, photometric, iterations):
            objective = lambda f: loss(shared, f, data, model, photometric=photometric)[0]
            return run_adam(objective, frames, frame_step_sizes(), iterations, project_frames)

        def terms(shared, frames, data, model):
            return loss(shared, frames, data, model, photometric=config.photometric)[1]

        static = ("photometric", "iterations")
        self._joint = jax.jit(joint, static_argnames=static)
        self._track = jax.jit(track, static_argnames=static)
        self.terms = jax.jit(terms)

    def _data(self, crops: np.ndarray, landmarks: np.ndarray, anchor: FrameParams,
              anchor_weight: float) -> FitData:
        size = self.config.size
        if crops.shape[1:] != (size, size, 3):
            raise ValueError(f"crops must be [N, {size}, {size}, 3], got {crops.shape}")
        photo = self.config.photo_size
        scale = photo / size
        skin = np.stack([skin_mask_from_landmarks(lm * scale, photo) for lm in landmarks])
        image = crops.astype(np.float32) / (255.0 if crops.dtype == np.uint8 else 1.0)
        if photo != size:
            image = np.stack([cv2.resize(im, (photo, photo), interpolation=cv2.INTER_AREA)
                              for im in image])
        targets = Targets(image=jnp.asarray(image), skin_mask=jnp.asarray(skin),
                          landmarks=jnp.asarray(landmarks, jnp.float32))
        return FitData(targets=targets, anchor=anchor, anchor_weight=jnp.float32(anchor_weight))

    def _stages(self, fn, first, second, data):
        cfg = self.config
        iters = ((cfg.identity_landmark_iters, cfg.identity_photo_iters) if fn is self._joint
                 else (cfg.track_landmark_iters, cfg.track_photo_iters))
        out = fn(first, second, data, self.model, photometric=False, iterations=iters[0])
        if cfg.photometric and iters[1] > 0:
            args = out if fn is self._joint else (first, out)
            out = fn(*args, data, self.model, photometric=True, iterations=iters[1])
        return out

    def fit_identity(self, crops: np.ndarray, landmarks: np.ndarray):
        """Shared identity/albedo (and the keyframes' FrameParams) from up to `keyframes`
        frames spread over the sequence. Returns (shared, keyframe ids, keyframe params)."""
        n = len(crops)
        ids = np.unique(np.linspace(0, n - 1, min(self.config.keyframes, n)).round().astype(int))
        count = self.config.keyframes
        frames = init_frames(self.model, count)
        data = self._data(_pad(crops[ids], count), _pad(landmarks[ids], count),
                          _slice_frames(frames, slice(0, 1)), 0.0)
        shared, frames = self._stages(self._joint, init_shared(self.model), frames, data)
        return shared, ids, _slice_frames(frames, slice(0, len(ids)))

    def fit(self, crops: np.ndarray, landmarks: np.ndarray, progress: bool = True,
            shared: Optional[SharedParams] = None) -> SequenceFit:
        """Fits N crops [N, S, S, 3] (uint8 or float in [0, 1]) with landmarks [N, 68, 2]."""
        n = len(crops)
        if n == 0 or landmarks.shape != (n, 68, 2) or not np.all(np.isfinite(landmarks)):
            raise ValueError(f"need N >= 1 crops with finite landmarks [N, 68, 2]; got {n} crops "
                             f"and landmarks {landmarks.shape}")
        if shared is None:
            shared, key_ids, key_frames = self.fit_identity(crops, landmarks)
            start = _slice_frames(key_frames, slice(0, 1))
        else:
            start = init_frames(self.model, 1)
        chunk = self.config.chunk
        results = []
        anchor, anchor_weight = start, 0.0
        with tqdm(total=n, unit="frame", desc="fitting", disable=not progress) as bar:
            for begin in range(0, n, chunk):
                stop = min(begin + chunk, n)
                data = self._data(_pad(crops[begin:stop], chunk),
                                  _pad(landmarks[begin:stop], chunk), anchor, anchor_weight)
                init = jax.tree_util.tree_map(lambda x: jnp.repeat(x, chunk, axis=0), anchor)
                frames = self._stages(self._track, shared, init, data)
                frames = _slice_frames(frames, slice(0, stop - begin))
                results.append(jax.device_get(frames))
                anchor = _slice_frames(frames, slice(stop - begin - 1, stop - begin))
                anchor_weight = 1.0
                bar.update(stop - begin)
        frames = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *results)
        fitted = project_landmarks(self.model, to_coefficients(shared, frames), self.camera)
        return SequenceFit(shared=jax.device_get(shared), frames=frames,
                           landmarks_fitted=np.asarray(fitted))
