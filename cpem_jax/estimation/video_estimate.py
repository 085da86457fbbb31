"""`VideoEstimate`: one estimated video, the container every estimator returns and every writer
consumes (CSV/JSON, Live Link, glTF, avatar, preview, the coefficient file).

N frames were read from the source; M of them show the face (`face_found`). The per-video
quantities (identity, albedo, the crop camera) are stored once; per-frame coefficients are
stored for the M frames with a face only, in frame order, so a frame without a face can never be
mistaken for a neutral one. `per_frame` spreads them over all N frames with NaN elsewhere.

Conventions (those of cpem_jax.geometry): rotation = Euler (pitch about x, yaw about y, roll about
z) in radians, R = Rz(roll) Ry(yaw) Rx(pitch); translation in cm, added to the camera's rest
position; landmarks in pixels (centres at +0.5).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import jax.numpy as jnp
import numpy as np

from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import Camera

PER_FRAME = ("expression", "rotation", "translation", "lighting", "landmarks_fitted")


@dataclasses.dataclass(frozen=True, eq=False)
class VideoEstimate:
    """Face coefficients of one video (module docstring).

    Attributes:
      frame_index: [N] int64 frame numbers in the source.
      timestamp_s: [N] float64 seconds.
      face_found: [N] bool.
      crop_affine: [N, 2, 3] float64 image pixels -> pixels of the crop the estimator saw (a
        letterboxed whole frame where no face was found).
      landmarks_detected: [N, 68, 2] float32 the front end's landmarks, image pixels (NaN where
        no face).
      identity: [K_id] float32, the video's face shape (~N(0, 1) per mode).
      albedo: [K_alb] float32.
      expression: [M, K] float32 in [0, 1], the face model's units in `unit_names` order.
      rotation: [M, 3] float32 radians; translation [M, 3] float32 cm; lighting [M, 3, 9] SH.
      landmarks_fitted: [M, 68, 2] float32 the model's landmarks, crop pixels.
      camera: the S x S crop camera of the pose and the landmarks.
      unit_names: K expression unit names.
      fps: the source's frame rate.
      face_model: the face model's name; method: the estimator ("fit", "net", ...).
      frame_identity: [M, K_id] float32 per-frame identities where the estimator makes one per
        frame (the network), else None (a locked identity).
      crops: [N, S, S, 3] uint8 the images the estimator saw (None when read from a file).
      timings: seconds per phase, e.g. {"detect_crop_s": ..., "estimate_s": ...}.
    """
    frame_index: np.ndarray
    timestamp_s: np.ndarray
    face_found: np.ndarray
    crop_affine: np.ndarray
    landmarks_detected: np.ndarray
    identity: np.ndarray
    albedo: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    lighting: np.ndarray
    landmarks_fitted: np.ndarray
    camera: Camera
    unit_names: Tuple[str, ...]
    fps: float
    face_model: str
    method: str
    frame_identity: Optional[np.ndarray] = None
    crops: Optional[np.ndarray] = None
    timings: Dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        n, m = len(self.frame_index), int(np.sum(self.face_found))
        for name in ("timestamp_s", "face_found", "crop_affine", "landmarks_detected"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"VideoEstimate.{name} has {len(getattr(self, name))} rows for "
                                 f"{n} frames")
        for name in PER_FRAME + (("frame_identity",) if self.frame_identity is not None else ()):
            if len(getattr(self, name)) != m:
                raise ValueError(f"VideoEstimate.{name} has {len(getattr(self, name))} rows for "
                                 f"{m} frames with a face")
        if self.expression.shape[1:] != (len(self.unit_names),):
            raise ValueError(f"expression is {self.expression.shape}, unit_names has "
                             f"{len(self.unit_names)} names")
        if self.crops is not None and len(self.crops) != n:
            raise ValueError(f"crops has {len(self.crops)} images for {n} frames")

    @property
    def n_frames(self) -> int:
        return len(self.frame_index)

    @property
    def n_found(self) -> int:
        return int(np.sum(self.face_found))

    @property
    def crop_size(self) -> int:
        return int(self.camera.width)

    def per_frame(self, name: str) -> np.ndarray:
        """A per-frame field spread over all N frames, NaN where no face: [N, ...] float32.

        `name` is one of expression, rotation, translation, lighting, landmarks_fitted, identity
        (the per-frame identities, or the locked one repeated), albedo.
        """
        if name == "identity":
            rows = (self.frame_identity if self.frame_identity is not None
                    else np.repeat(self.identity[None], self.n_found, axis=0))
        elif name == "albedo":
            rows = np.repeat(self.albedo[None], self.n_found, axis=0)
        elif name in PER_FRAME:
            rows = getattr(self, name)
        else:
            raise KeyError(f"no per-frame field {name!r}")
        out = np.full((self.n_frames,) + rows.shape[1:], np.nan, np.float32)
        out[self.face_found] = rows
        return out

    def coefficients(self, rows=None) -> Coefficients:
        """Coefficients with leading [M] (or [len(rows)] for row indices into the M frames with a
        face), the locked identity and albedo repeated on every row (jnp arrays)."""
        rows = np.arange(self.n_found) if rows is None else np.asarray(rows, int)
        take = lambda a: jnp.asarray(np.asarray(a, np.float32)[rows])
        identity = (self.frame_identity if self.frame_identity is not None
                    else np.repeat(self.identity[None], self.n_found, axis=0))
        return Coefficients(identity=take(identity),
                            albedo=jnp.asarray(np.repeat(self.albedo[None], len(rows), axis=0)),
                            expression=take(self.expression), lighting=take(self.lighting),
                            rotation=take(self.rotation), translation=take(self.translation))

    def landmarks_fitted_image(self) -> np.ndarray:
        """[N, 68, 2] float32 the model's landmarks in image pixels (NaN where no face)."""
        out = np.full((self.n_frames, 68, 2), np.nan, np.float32)
        for row, i in enumerate(np.flatnonzero(self.face_found)):
            a = self.crop_affine[i]
            out[i] = (self.landmarks_fitted[row] - a[:, 2]) @ np.linalg.inv(a[:, :2]).T
        return out

    def replace(self, **changes) -> "VideoEstimate":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_tracked(cls, tracked, model: FaceModel, camera: Camera, method: str, **fields
                     ) -> "VideoEstimate":
        """The estimate of a followed face (`cpem_jax.detect.pipeline.TrackedCrops`): frames,
        crops and detections from `tracked`, the estimator's arrays from `fields` (identity,
        albedo, expression, rotation, translation, lighting, landmarks_fitted, optionally
        frame_identity and timings)."""
        observations = tracked.observations
        as32 = lambda a: None if a is None else np.asarray(a, np.float32)
        arrays = {k: as32(v) for k, v in fields.items() if k != "timings"}
        return cls(frame_index=np.array([o.frame_index for o in observations], np.int64),
                   timestamp_s=np.array([o.timestamp_s for o in observations], np.float64),
                   face_found=tracked.found, crop_affine=np.asarray(tracked.affines, np.float64),
                   landmarks_detected=np.stack([o.landmarks for o in observations]
                                               ).astype(np.float32),
                   camera=camera, unit_names=tuple(model.expression_names), fps=tracked.fps,
                   face_model=model.name, method=method, crops=tracked.crops,
                   timings=dict(fields.get("timings", {})), **arrays)
