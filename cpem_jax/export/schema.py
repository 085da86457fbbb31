"""`FrameTrack`: the per-frame retargeting result every exporter writes.

One track holds N frames of one video: timestamps, whether a face was found, the K expression
unit weights (model names, e.g. ICT's 53), and the head pose. Optional `*_raw` arrays keep the
values before temporal smoothing (see `smoothing.smooth_track`).

Frames without a face: every value of such a frame is finite; by default (`missing="zero"`) the
weights, rotation and translation are 0 (neutral face, head at rest) and `face_found` is False, so
files never hold NaN and a consumer filters on the flag. `missing="hold"` repeats the last frame
that had a face instead (0 before the first one), which animates more smoothly across dropouts.

Conventions (those of cpem_jax.geometry): rotation = Euler (pitch about x, yaw about y, roll about
z) in radians, R = Rz(roll) Ry(yaw) Rx(pitch); translation in cm, the model's offset from the
camera's rest position; model space +y up, the face looks toward +z.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

import numpy as np

MISSING_POLICIES = ("zero", "hold")
_WEIGHT_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class FrameTrack:
    """N frames of expression weights and head pose (numpy arrays, validated on construction).

    Attributes:
      timestamps: [N] float64 seconds, strictly increasing.
      face_found: [N] bool, False where no face was detected.
      expression: [N, K] float32 in [0, 1], unit weights (smoothed when smoothing ran).
      unit_names: K unit names in model order.
      rotation: [N, 3] float32 radians (pitch, yaw, roll).
      translation: [N, 3] float32 cm.
      fps: frame rate of the source video, frames per second.
      expression_raw, rotation_raw, translation_raw: same shapes, the unsmoothed values, or None.
    """
    timestamps: np.ndarray
    face_found: np.ndarray
    expression: np.ndarray
    unit_names: Tuple[str, ...]
    rotation: np.ndarray
    translation: np.ndarray
    fps: float
    expression_raw: Optional[np.ndarray] = None
    rotation_raw: Optional[np.ndarray] = None
    translation_raw: Optional[np.ndarray] = None

    def __post_init__(self):
        cast = {
            "timestamps": np.float64, "face_found": bool, "expression": np.float32,
            "rotation": np.float32, "translation": np.float32, "expression_raw": np.float32,
            "rotation_raw": np.float32, "translation_raw": np.float32}
        for name, dtype in cast.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.asarray(value, dtype))
        object.__setattr__(self, "unit_names", tuple(str(u) for u in self.unit_names))
        object.__setattr__(self, "fps", float(self.fps))
        self._validate()

    def _validate(self) -> None:
        n = self.timestamps.shape[0] if self.timestamps.ndim == 1 else -1
        k = len(self.unit_names)
        if n < 1:
            raise ValueError(f"timestamps must be [N] with N >= 1, got shape {self.timestamps.shape}")
        expected = {"face_found": (n,), "expression": (n, k), "rotation": (n, 3),
                    "translation": (n, 3), "expression_raw": (n, k), "rotation_raw": (n, 3),
                    "translation_raw": (n, 3)}
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is None:
                continue
            if value.shape != shape:
                raise ValueError(f"FrameTrack.{name} must have shape {shape} (N={n} frames, "
                                 f"K={k} unit names), got {value.shape}")
            if value.dtype != bool and not np.all(np.isfinite(value)):
                raise ValueError(f"FrameTrack.{name} holds NaN/inf; build the track with "
                                 "FrameTrack.from_estimates(..., missing='zero') to fill "
                                 "frames without a face")
        if len(set(self.unit_names)) != k:
            raise ValueError(f"unit_names must be unique, got {self.unit_names}")
        if n > 1 and not np.all(np.diff(self.timestamps) > 0):
            raise ValueError("timestamps must be strictly increasing seconds")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        for name in ("expression", "expression_raw"):
            value = getattr(self, name)
            if value is not None and value.size and (
                    value.min() < -_WEIGHT_TOLERANCE or value.max() > 1 + _WEIGHT_TOLERANCE):
                raise ValueError(f"FrameTrack.{name} must lie in [0, 1], got "
                                 f"[{value.min():.4f}, {value.max():.4f}]; clip the weights")

    @property
    def n_frames(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def n_units(self) -> int:
        return len(self.unit_names)

    @property
    def has_raw(self) -> bool:
        return self.expression_raw is not None

    def replace(self, **changes) -> "FrameTrack":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_estimates(cls, expression: np.ndarray, rotation: np.ndarray,
                       translation: np.ndarray, unit_names: Sequence[str], fps: float,
                       face_found: Optional[np.ndarray] = None,
                       timestamps: Optional[np.ndarray] = None,
                       missing: str = "zero") -> "FrameTrack":
        """Builds a track from per-frame estimates, filling the frames without a face.

        Args:
          expression: [N, K] unit weights; rows of frames without a face may hold anything
            (NaN included). Values are clipped to [0, 1].
          rotation: [N, 3] radians (pitch, yaw, roll).
          translation: [N, 3] cm.
          unit_names: K unit names.
          fps: video frame rate.
          face_found: [N] bool; default: True where the row's values are all finite.
          timestamps: [N] seconds; default i / fps.
          missing: "zero" or "hold", how frames without a face are filled (module doc).
        """
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
        expression = np.asarray(expression, np.float32)
        rotation = np.asarray(rotation, np.float32)
        translation = np.asarray(translation, np.float32)
        if expression.ndim != 2:
            raise ValueError(f"expression must be [N, K], got shape {expression.shape}")
        n = expression.shape[0]
        if fps is None or not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if timestamps is None:
            timestamps = np.arange(n, dtype=np.float64) / float(fps)
        finite = (np.all(np.isfinite(expression), axis=-1)
                  & np.all(np.isfinite(rotation.reshape(n, -1)), axis=-1)
                  & np.all(np.isfinite(translation.reshape(n, -1)), axis=-1))
        face_found = finite if face_found is None else np.asarray(face_found, bool) & finite
        expression = fill_missing(np.clip(np.nan_to_num(expression), 0.0, 1.0), face_found, missing)
        rotation = fill_missing(np.nan_to_num(rotation), face_found, missing)
        translation = fill_missing(np.nan_to_num(translation), face_found, missing)
        return cls(timestamps=timestamps, face_found=face_found, expression=expression,
                   unit_names=tuple(unit_names), rotation=rotation, translation=translation,
                   fps=fps)


def animation_track(estimate, missing: str = "zero") -> FrameTrack:
    """The FrameTrack of a `cpem_jax.estimation.VideoEstimate`: every input frame, the frames
    without a face filled per `missing` (timestamps i / fps when the source's are not increasing).
    """
    timestamps = np.asarray(estimate.timestamp_s, np.float64)
    increasing = len(timestamps) < 2 or np.all(np.diff(timestamps) > 0)
    return FrameTrack.from_estimates(
        estimate.per_frame("expression"), estimate.per_frame("rotation"),
        estimate.per_frame("translation"), estimate.unit_names, estimate.fps,
        face_found=estimate.face_found, timestamps=timestamps if increasing else None,
        missing=missing)


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles in radians -> (-pi, pi]."""
    return np.pi - np.mod(np.pi - angle, 2.0 * np.pi)


def resample_track(track: FrameTrack, fps: float) -> FrameTrack:
    """The track at a new, constant rate: M = floor((t_last - t_0) * fps) + 1 frames at
    t_0 + k / fps, k < M.

    Weights, translation and rotation (unwrapped over time, then wrapped back to (-pi, pi]) are
    interpolated linearly between the two nearest frames, the `*_raw` values likewise;
    `face_found` is that of the nearest frame.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    t = track.timestamps
    count = int(np.floor((t[-1] - t[0]) * fps + 1e-6)) + 1
    times = t[0] + np.arange(count, dtype=np.float64) / fps

    def interp(values: Optional[np.ndarray], angles: bool = False) -> Optional[np.ndarray]:
        if values is None:
            return None
        source = np.unwrap(values, axis=0) if angles and len(values) > 1 else values
        out = np.stack([np.interp(times, t, source[:, c]) for c in range(source.shape[1])],
                       axis=-1) if source.shape[1] else np.zeros((count, 0))
        return wrap_angle(out) if angles else out

    after = np.clip(np.searchsorted(t, times), 0, len(t) - 1)   # first frame at or after
    before = np.maximum(after - 1, 0)
    nearest = np.where(times - t[before] < t[after] - times, before, after)
    return FrameTrack(
        timestamps=times, face_found=track.face_found[nearest],
        expression=np.clip(interp(track.expression), 0.0, 1.0), unit_names=track.unit_names,
        rotation=interp(track.rotation, angles=True), translation=interp(track.translation),
        fps=fps, expression_raw=interp(track.expression_raw),
        rotation_raw=interp(track.rotation_raw, angles=True),
        translation_raw=interp(track.translation_raw))


def fill_missing(values: np.ndarray, face_found: np.ndarray, missing: str = "zero") -> np.ndarray:
    """Fills the rows of frames without a face.

    Args:
      values: [N, C] per-frame values.
      face_found: [N] bool.
      missing: "zero" (rows set to 0) or "hold" (the last row with a face, 0 before the first).
    Returns:
      [N, C] a filled copy.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    values = np.array(values, copy=True)
    face_found = np.asarray(face_found, bool)
    if missing == "zero":
        values[~face_found] = 0
        return values
    # Index of the last frame with a face at or before each frame (-1 before the first).
    last = np.where(face_found, np.arange(len(face_found)), -1)
    last = np.maximum.accumulate(last)
    held = np.where((last >= 0)[:, None], values[np.maximum(last, 0)], 0)
    return held.astype(values.dtype)
