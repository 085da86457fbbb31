"""benchmarks/synthetic_fit.py: the saved estimates and an unwritable --save path."""
import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import synthetic_fit  # noqa: E402


def _est_gt(n=3, k=4):
    rng = np.random.default_rng(0)
    est = types.SimpleNamespace(expression=rng.random((n, k)), rotation=rng.random((n, 3)),
                                translation=rng.random((n, 3)),
                                landmarks=rng.random((n, 68, 2)), identity=rng.random((n, 5)))
    gt = types.SimpleNamespace(unit_names=[f"u{i}" for i in range(k)],
                               frame_key=[f"p/v/{i}" for i in range(n)])
    return est, gt


def test_save_estimates_round_trip(tmp_path):
    est, gt = _est_gt()
    path = tmp_path / "est.npz"
    synthetic_fit.save_estimates(str(path), est, gt)
    saved = np.load(path)
    np.testing.assert_array_equal(saved["expression"], est.expression)
    np.testing.assert_array_equal(saved["landmarks"], est.landmarks)
    assert list(saved["unit_names"]) == gt.unit_names
    assert list(saved["frame_key"]) == gt.frame_key


def test_save_estimates_unwritable_path_is_one_line(tmp_path, capsys):
    est, gt = _est_gt()
    synthetic_fit.save_estimates(str(tmp_path / "missing" / "est.npz"), est, gt)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0]


class _RecordingFitter:
    """Stands in for SequenceFitter: records each call's frame count and answers with the
    frames' first landmark x as every estimate, so rows can be traced."""

    def __init__(self):
        self.calls = []

    def fit(self, crops, landmarks, progress=False, dense=None):
        n = len(crops)
        self.calls.append((n, dense is not None))
        mark = landmarks[:, 0, 0]
        frames = types.SimpleNamespace(expression=np.repeat(mark[:, None], 4, 1),
                                       rotation=np.repeat(mark[:, None], 3, 1),
                                       translation=np.repeat(mark[:, None], 3, 1))
        shared = types.SimpleNamespace(identity=np.full(5, mark.mean()))
        return types.SimpleNamespace(frames=frames, shared=shared,
                                     landmarks_fitted=landmarks.copy())


def test_fit_clip_single_fits_each_frame_alone():
    """--single: one fit per frame, each with its own identity, written to its own row; the
    clip mode fits the clip once with one identity."""
    rows = np.array([7, 3, 5])
    lms = np.zeros((3, 68, 2), np.float32)
    lms[:, 0, 0] = [1.0, 2.0, 3.0]
    crops = np.zeros((3, 4, 4, 3), np.uint8)
    for single, calls, identity in ((True, [(1, False)] * 3, [1.0, 2.0, 3.0]),
                                    (False, [(3, False)], [2.0, 2.0, 2.0])):
        est, _ = _est_gt(n=8)
        fitter = _RecordingFitter()
        synthetic_fit.fit_clip(fitter, est, rows, crops, lms, None, single)
        assert fitter.calls == calls
        np.testing.assert_allclose(est.expression[rows, 0], [1.0, 2.0, 3.0])
        np.testing.assert_allclose(est.identity[rows, 0], identity)
    fitter = _RecordingFitter()
    synthetic_fit.fit_clip(fitter, _est_gt(n=8)[0], rows, crops, lms,
                           np.zeros((3, 478, 2), np.float32), True)
    assert fitter.calls == [(1, True)] * 3
