"""The per-video coefficient file: what `cpem-jax fit` (and the network) estimate, frame by frame.

One schema for every estimator, written as a pair:
  NAME.npz   arrays (exact, for programs):
    frame_index [N] int64, timestamp_s [N] float64, face_found [N] bool,
    expression [N, K] float32 in [0, 1] (model unit order, see unit_names),
    rotation [N, 3] float32 radians (pitch, yaw, roll; R = Rz Ry Rx),
    translation [N, 3] float32 cm (added to the camera's rest position),
    lighting [N, 3, 9] float32 SH coefficients (R, G, B),
    identity [N, K_id] float32 and albedo [N, K_alb] float32 (equal rows for a locked-identity
      fit; per-frame predictions for the network),
    crop_affine [N, 2, 3] float64 image pixels -> crop pixels,
    landmarks_detected [N, 68, 2] float32 and landmarks_fitted [N, 68, 2] float32, image pixels,
    unit_names [K] str, plus scalars fps, crop_size, focal_px, distance_cm, face_model, method,
    schema_version.
  NAME.json  the same per frame for people and other tools: {"schema_version", "method",
    "face_model", "fps", "unit_names", "identity": [...] (when locked), "frames": [{"frame",
    "time", "face_found", "expression": {unit: weight}, "rotation": [3], "translation": [3]}]}.
Frames without a face have face_found = false and NaN values in the .npz (null in the JSON), so
they are never mistaken for a neutral face; `to_frame_track` fills them for the exporters.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Tuple

import numpy as np

from cpem_jax.export.schema import FrameTrack

SCHEMA_VERSION = "1.0"
_ARRAYS = ("frame_index", "timestamp_s", "face_found", "expression", "rotation", "translation",
           "lighting", "identity", "albedo", "crop_affine", "landmarks_detected",
           "landmarks_fitted")


@dataclasses.dataclass
class CoefficientTrack:
    """Per-frame coefficients of one video (see the module docstring for shapes and units)."""
    frame_index: np.ndarray
    timestamp_s: np.ndarray
    face_found: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    lighting: np.ndarray
    identity: np.ndarray
    albedo: np.ndarray
    crop_affine: np.ndarray
    landmarks_detected: np.ndarray
    landmarks_fitted: np.ndarray
    unit_names: Tuple[str, ...]
    fps: float
    crop_size: int
    focal_px: float
    distance_cm: float
    face_model: str
    method: str

    def __post_init__(self):
        n = len(self.frame_index)
        for name in _ARRAYS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"CoefficientTrack.{name} has {len(getattr(self, name))} rows, "
                                 f"frame_index {n}")
        if self.expression.shape[1:] != (len(self.unit_names),):
            raise ValueError(f"expression is {self.expression.shape}, unit_names has "
                             f"{len(self.unit_names)} names")

    @property
    def n_frames(self) -> int:
        return len(self.frame_index)

    def save(self, stem: str) -> Tuple[str, str]:
        """Writes stem.npz and stem.json; returns both paths."""
        os.makedirs(os.path.dirname(os.path.abspath(stem)) or ".", exist_ok=True)
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        scalars = {"unit_names": np.asarray(self.unit_names, np.str_), "fps": self.fps,
                   "crop_size": self.crop_size, "focal_px": self.focal_px,
                   "distance_cm": self.distance_cm, "face_model": self.face_model,
                   "method": self.method, "schema_version": SCHEMA_VERSION}
        np.savez(stem + ".npz", **arrays, **{k: np.asarray(v) for k, v in scalars.items()})
        with open(stem + ".json", "w") as f:
            json.dump(self.to_json(), f, indent=1)
        return stem + ".npz", stem + ".json"

    def to_json(self) -> dict:
        def clean(row):
            return [None if not np.isfinite(v) else round(float(v), 6) for v in np.ravel(row)]

        frames = []
        for i in range(self.n_frames):
            found = bool(self.face_found[i])
            frames.append({
                "frame": int(self.frame_index[i]), "time": round(float(self.timestamp_s[i]), 6),
                "face_found": found,
                "expression": ({u: round(float(w), 6) for u, w in
                                zip(self.unit_names, self.expression[i])} if found else None),
                "rotation": clean(self.rotation[i]) if found else None,
                "translation": clean(self.translation[i]) if found else None,
            })
        found_rows = self.identity[self.face_found]
        locked = len(found_rows) > 0 and np.allclose(found_rows, found_rows[0])
        return {"schema_version": SCHEMA_VERSION, "method": self.method,
                "face_model": self.face_model, "fps": self.fps,
                "unit_names": list(self.unit_names),
                "rotation_convention": "radians (pitch, yaw, roll), R = Rz(roll) Ry(yaw) Rx(pitch)",
                "translation_unit": "cm",
                "identity": clean(found_rows[0]) if locked else None,
                "frames": frames}

    @classmethod
    def load(cls, path: str) -> "CoefficientTrack":
        """Reads stem.npz (path with or without the extension)."""
        path = path if path.endswith(".npz") else path + ".npz"
        if not os.path.isfile(path):
            raise FileNotFoundError(f"coefficient file {path!r} does not exist; produce one with "
                                    f"`cpem-jax fit`")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _ARRAYS + ("unit_names", "schema_version") if k not in data]
            if missing:
                raise ValueError(f"{path!r} is not a cpem-jax coefficient file (lacks {missing})")
            kwargs = {k: data[k] for k in _ARRAYS}
            return cls(**kwargs, unit_names=tuple(str(u) for u in data["unit_names"]),
                       fps=float(data["fps"]), crop_size=int(data["crop_size"]),
                       focal_px=float(data["focal_px"]), distance_cm=float(data["distance_cm"]),
                       face_model=str(data["face_model"]), method=str(data["method"]))

    def to_frame_track(self, missing: str = "zero") -> FrameTrack:
        """The exporters' FrameTrack (frames without a face filled per `missing`)."""
        return FrameTrack.from_estimates(self.expression, self.rotation, self.translation,
                                         self.unit_names, self.fps, face_found=self.face_found,
                                         timestamps=_increasing(self.timestamp_s, self.fps),
                                         missing=missing)


def _increasing(timestamps: np.ndarray, fps: float) -> Optional[np.ndarray]:
    t = np.asarray(timestamps, np.float64)
    return t if len(t) < 2 or np.all(np.diff(t) > 0) else None


def assemble_track(observations, affines: np.ndarray, estimates: dict, landmarks_crop: np.ndarray,
                   unit_names, fps: float, crop_size: int, focal_px: float, distance_cm: float,
                   face_model: str, method: str) -> CoefficientTrack:
    """A CoefficientTrack from per-frame observations and the estimates of the frames with a face.

    Args:
      observations: N FaceObservation (cpem_jax.detect.base), one per input frame.
      affines: [N, 2, 3] image -> crop maps.
      estimates: expression, rotation, translation, lighting, identity, albedo, each [M, ...]
        for the M frames with a face, in order.
      landmarks_crop: [M, 68, 2] the fitted/predicted model landmarks in crop pixels.
    """
    found = np.array([o.found for o in observations], bool)
    n = len(observations)

    def spread(values):
        values = np.asarray(values, np.float32)
        out = np.full((n,) + values.shape[1:], np.nan, np.float32)
        out[found] = values
        return out

    fitted = np.full((n, 68, 2), np.nan, np.float32)
    if found.any():
        fitted[found] = [(lm - a[:, 2]) @ np.linalg.inv(a[:, :2]).T
                         for a, lm in zip(affines[found], np.asarray(landmarks_crop))]
    return CoefficientTrack(
        frame_index=np.array([o.frame_index for o in observations], np.int64),
        timestamp_s=np.array([o.timestamp_s for o in observations], np.float64),
        face_found=found, **{k: spread(estimates[k]) for k in (
            "expression", "rotation", "translation", "lighting", "identity", "albedo")},
        crop_affine=np.asarray(affines, np.float64),
        landmarks_detected=np.stack([o.landmarks for o in observations]).astype(np.float32),
        landmarks_fitted=fitted, unit_names=tuple(unit_names), fps=float(fps),
        crop_size=int(crop_size), focal_px=float(focal_px), distance_cm=float(distance_cm),
        face_model=face_model, method=method)
