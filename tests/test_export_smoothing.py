"""One Euro filter and track smoothing."""
import numpy as np
import pytest

from cpem_jax.export.schema import FrameTrack
from cpem_jax.export.smoothing import (OneEuroParams, SmoothingConfig, one_euro_filter,
                                       smooth_track)

FPS = 30.0


def _times(n):
    return np.arange(n) / FPS


def test_constant_stays_constant():
    values = np.full((50, 3), [0.2, 0.7, -1.5])
    out = one_euro_filter(values, _times(50), OneEuroParams())
    np.testing.assert_allclose(out, values, atol=1e-6)


def test_noise_is_reduced_on_a_noisy_constant():
    rng = np.random.default_rng(0)
    values = 0.5 + 0.05 * rng.standard_normal((300, 4))
    out = one_euro_filter(values, _times(300), OneEuroParams(min_cutoff=1.0, beta=0.5))
    assert np.std(out[30:] - 0.5) < 0.5 * np.std(values[30:] - 0.5)


def test_step_is_followed_with_bounded_lag():
    values = np.zeros((90, 1))
    values[30:] = 1.0
    out = one_euro_filter(values, _times(90), OneEuroParams(min_cutoff=1.5, beta=1.0))[:, 0]
    assert np.all(np.diff(out) >= -1e-7) and out.max() <= 1.0 + 1e-6
    crossed = np.argmax(out >= 0.9)
    assert out[crossed] >= 0.9 and crossed - 30 <= 6  # within 0.2 s at 30 fps
    assert out[-1] > 0.999


def test_uneven_timestamps_and_gaps():
    t = np.array([0.0, 0.01, 0.05, 0.06, 0.2, 0.21])
    values = np.array([[0.0], [1.0], [1.0], [5.0], [9.0], [9.0]])
    valid = np.array([True, True, True, False, True, True])
    out = one_euro_filter(values, t, OneEuroParams(), valid)
    assert out[3, 0] == 5.0  # invalid frame passed through
    assert out[4, 0] == 9.0  # restart after the gap
    assert 0.0 < out[1, 0] < 1.0
    with pytest.raises(ValueError, match="increasing"):
        one_euro_filter(values, t[::-1], OneEuroParams())


def test_bad_params_raise():
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroParams(min_cutoff=0.0)


def _noisy_track(n=60, k=3):
    rng = np.random.default_rng(1)
    expression = np.clip(0.5 + 0.1 * rng.standard_normal((n, k)), 0, 1)
    rotation = 0.1 * rng.standard_normal((n, 3))
    rotation[:, 2] += np.pi - 0.05  # roll near the wrap-around
    translation = rng.standard_normal((n, 3))
    face = np.ones(n, bool)
    face[20:23] = False
    return FrameTrack.from_estimates(expression, rotation, translation,
                                     [f"u{i}" for i in range(k)], FPS, face_found=face)


def test_smooth_track_keeps_raw_and_stays_in_range():
    track = _noisy_track()
    smoothed = smooth_track(track, SmoothingConfig())
    np.testing.assert_array_equal(smoothed.expression_raw, track.expression)
    np.testing.assert_array_equal(smoothed.rotation_raw, track.rotation)
    assert smoothed.expression.min() >= 0 and smoothed.expression.max() <= 1
    assert np.all(np.abs(smoothed.rotation) <= np.pi + 1e-6)
    found = track.face_found
    assert np.std(np.diff(smoothed.expression[found], axis=0)) < np.std(
        np.diff(track.expression[found], axis=0))
    # Angles near +-pi are smoothed on the circle, not through 0.
    roll_error = np.angle(np.exp(1j * (smoothed.rotation[:, 2] - track.rotation[:, 2])))
    assert np.max(np.abs(roll_error[found])) < 0.5
    np.testing.assert_array_equal(smoothed.expression[~found], 0)
    # Smoothing again restarts from the raw values.
    again = smooth_track(smoothed, SmoothingConfig())
    np.testing.assert_allclose(again.expression, smoothed.expression)


def test_disabled_smoothing_is_identity():
    track = _noisy_track()
    out = smooth_track(track, SmoothingConfig(enabled=False))
    np.testing.assert_array_equal(out.expression, track.expression)
    np.testing.assert_array_equal(out.translation_raw, track.translation)
