"""Temporal smoothing of per-frame weights and pose with the One Euro filter.

The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a first-order low-pass filter whose
cutoff rises with the signal's speed: still signals are smoothed hard (jitter goes), fast motion
(a blink, a head turn) passes with little lag. Per frame i with time step dt:

    dx_i      = (x_i - xhat_{i-1}) / dt
    dxhat_i   = lerp(dxhat_{i-1}, dx_i, alpha(d_cutoff, dt))
    cutoff_i  = min_cutoff + beta * |dxhat_i|
    xhat_i    = lerp(xhat_{i-1}, x_i, alpha(cutoff_i, dt)),   alpha(fc, dt) = 1 / (1 + 1 / (2 pi fc dt))

Each output is a convex combination of the input and the previous output, so weights in [0, 1]
stay in [0, 1]. `min_cutoff` and `d_cutoff` are in Hz; `beta` is in 1 / (signal unit), so each
signal kind (weights, radians, cm) has its own defaults in `SmoothingConfig`.
Frames without a face are passed through unchanged and the filter restarts after them.
The filter is causal (no look-ahead): `OnlineOneEuro` and `StreamSmoother` run it one frame at a
time for live streams and give the same values as `one_euro_filter` / `smooth_track`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

from cpem_jax.export.schema import FrameTrack, wrap_angle


@dataclasses.dataclass(frozen=True)
class OneEuroParams:
    """One Euro parameters: min_cutoff (Hz), beta (1 / signal unit), d_cutoff (Hz)."""
    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0

    def __post_init__(self):
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f"One Euro parameters need min_cutoff > 0, d_cutoff > 0 and "
                             f"beta >= 0, got {self}")


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """Smoothing of a `FrameTrack`, on by default.

    Defaults were chosen for 25-60 fps video: weights move at up to ~10 / s (a blink), the head
    at up to ~2 rad/s and ~20 cm/s; at those speeds the cutoff rises to a few Hz.
    """
    enabled: bool = True
    expression: OneEuroParams = OneEuroParams(min_cutoff=1.5, beta=1.0)
    rotation: OneEuroParams = OneEuroParams(min_cutoff=1.0, beta=1.5)
    translation: OneEuroParams = OneEuroParams(min_cutoff=1.0, beta=0.2)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass filter with `cutoff` Hz at step `dt` s."""
    return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * cutoff * dt))


class OnlineOneEuro:
    """The One Euro filter one sample at a time (causal: each output depends on the samples so
    far only), for live streams; `one_euro_filter` runs it over a whole signal.

        f = OnlineOneEuro(params)
        y = f(x, t)          # x [C] float, t seconds (strictly increasing); y [C] float64
        f.reset()            # after a gap: the next sample starts the filter again
    """

    def __init__(self, params: OneEuroParams):
        self.params = params
        self.reset()

    def reset(self) -> None:
        self._x_hat: Optional[np.ndarray] = None
        self._dx_hat: Optional[np.ndarray] = None
        self._t = 0.0

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filters sample x [C] taken at t seconds -> [C] float64."""
        x = np.asarray(x, np.float64)
        if self._x_hat is None:
            self._x_hat, self._dx_hat = x.copy(), np.zeros_like(x)
        else:
            dt = float(t) - self._t
            if not dt > 0:
                raise ValueError(f"timestamps must be strictly increasing seconds, got {t} after "
                                 f"{self._t}")
            params = self.params
            dx = (x - self._x_hat) / dt
            self._dx_hat = self._dx_hat + _alpha(params.d_cutoff, dt) * (dx - self._dx_hat)
            cutoff = params.min_cutoff + params.beta * np.abs(self._dx_hat)
            self._x_hat = self._x_hat + _alpha(cutoff, dt) * (x - self._x_hat)
        self._t = float(t)
        return self._x_hat.copy()


def one_euro_filter(values: np.ndarray, timestamps: np.ndarray, params: OneEuroParams,
                    valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Filters every channel of a sampled signal independently.

    Args:
      values: [N, C] float signal (C channels).
      timestamps: [N] seconds, strictly increasing.
      params: the filter parameters.
      valid: [N] bool; invalid frames are returned unchanged and the filter restarts at the
        next valid frame. Default: all valid.
    Returns:
      [N, C] float32 filtered signal.
    """
    values = np.asarray(values, np.float64)
    timestamps = np.asarray(timestamps, np.float64)
    if values.ndim != 2 or timestamps.shape != values.shape[:1]:
        raise ValueError(f"values must be [N, C] and timestamps [N], got {values.shape} and "
                         f"{timestamps.shape}")
    if values.shape[0] > 1 and not np.all(np.diff(timestamps) > 0):
        raise ValueError("timestamps must be strictly increasing seconds")
    valid = np.ones(values.shape[0], bool) if valid is None else np.asarray(valid, bool)
    out = values.copy()
    online = OnlineOneEuro(params)
    for i in range(values.shape[0]):
        if not valid[i]:
            online.reset()  # restart after the gap
            continue
        out[i] = online(values[i], timestamps[i])
    return out.astype(np.float32)


def smooth_track(track: FrameTrack, config: SmoothingConfig = SmoothingConfig()) -> FrameTrack:
    """Smooths weights and pose of a track, keeping the inputs as the `*_raw` fields.

    A track that already carries raw values is smoothed from those (smoothing twice does not
    compound). With `config.enabled` False the track comes back with raw = current values.
    Rotation is unwrapped over time before filtering and wrapped back to (-pi, pi] after.

    Args:
      track: N frames.
      config: filter parameters per signal.
    Returns:
      the smoothed `FrameTrack`.
    """
    expression = track.expression_raw if track.has_raw else track.expression
    rotation = track.rotation_raw if track.rotation_raw is not None else track.rotation
    translation = (track.translation_raw if track.translation_raw is not None
                   else track.translation)
    raw = dict(expression_raw=expression, rotation_raw=rotation, translation_raw=translation)
    if not config.enabled:
        return track.replace(expression=expression, rotation=rotation, translation=translation,
                             **raw)
    t, found = track.timestamps, track.face_found
    smoothed_rotation = one_euro_filter(np.unwrap(rotation, axis=0), t, config.rotation, found)
    return track.replace(
        expression=np.clip(one_euro_filter(expression, t, config.expression, found), 0.0, 1.0),
        rotation=wrap_angle(smoothed_rotation).astype(np.float32),
        translation=one_euro_filter(translation, t, config.translation, found),
        **raw)


class StreamSmoother:
    """`smooth_track` one frame at a time, for live streams: the same filters with the same
    settings, so a stream smoothed frame by frame equals the whole track smoothed at once.

        smoother = StreamSmoother(SmoothingConfig())
        expression, rotation, translation = smoother(expression, rotation, translation, t, found)

    Frames without a face pass unchanged and restart the filters; rotation is unwrapped against
    the previous frame before filtering and wrapped back to (-pi, pi] after.
    """

    def __init__(self, config: SmoothingConfig = SmoothingConfig()):
        self.config = config
        self._filters = {name: OnlineOneEuro(getattr(config, name))
                         for name in ("expression", "rotation", "translation")}
        self._rotation_raw: Optional[np.ndarray] = None      # previous raw rotation [3]
        self._rotation_unwrapped: Optional[np.ndarray] = None

    def __call__(self, expression: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                 t: float, found: bool = True) -> tuple:
        """One frame: expression [K], rotation [3] radians, translation [3] cm at t seconds ->
        the smoothed (expression [K] in [0, 1], rotation [3], translation [3]) float32."""
        expression = np.asarray(expression, np.float64)
        rotation = np.asarray(rotation, np.float64)
        translation = np.asarray(translation, np.float64)
        if self._rotation_raw is None:
            unwrapped = rotation.copy()
        else:  # np.unwrap's rule, one step at a time.
            unwrapped = self._rotation_unwrapped + wrap_angle(rotation - self._rotation_raw)
        self._rotation_raw, self._rotation_unwrapped = rotation, unwrapped
        if not self.config.enabled or not found:
            if not found:
                for f in self._filters.values():
                    f.reset()
            return (expression.astype(np.float32), rotation.astype(np.float32),
                    translation.astype(np.float32))
        return (np.clip(self._filters["expression"](expression, t), 0.0, 1.0).astype(np.float32),
                wrap_angle(self._filters["rotation"](unwrapped, t)).astype(np.float32),
                self._filters["translation"](translation, t).astype(np.float32))
