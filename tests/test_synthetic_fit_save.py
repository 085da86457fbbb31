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
