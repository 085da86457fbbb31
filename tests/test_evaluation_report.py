"""write_report: JSON, Markdown in the paper's layout, PNG plots."""
import json

import numpy as np
import pytest

from cpem_jax.evaluation import expression, identity, landmarks, report


def _feafa_section():
    cats = {c: {"mae": 0.1 * (i + 1), "count": i} for i, c in enumerate(expression.CATEGORIES)}
    cats["Kiss"] = {"mae": float("nan"), "count": 0}
    cats["Avg"] = {"mae": 0.321, "count": 45}
    return {"categories": cats, "per_au": {}, "n_frames": 12, "threshold": 0.8}


@pytest.fixture()
def results():
    ident = [np.random.default_rng(0).normal(size=(6, 3))]
    return {
        "FEAFA": _feafa_section(),
        "AFLW2000-3D": dict(landmarks.nme_by_yaw_bins(np.array([2.0, 3.0, 5.0]),
                                                      np.array([10.0, 40.0, 70.0])), unit="%"),
        "Identity": {"with L_idc": identity.identity_consistency(ident, np.ones((4, 3, 3))),
                     "without": identity.identity_consistency([2 * ident[0]])},
        "MICC": {"dataset": "MICC Florence", "conditions": {
            "cooperative": {"rmse_mm_mean": 2.5, "rmse_mm_std": 0.1, "count": 2},
            "indoor": {"rmse_mm_mean": 2.6, "rmse_mm_std": 0.1, "count": 2},
            "outdoor": {"rmse_mm_mean": 2.7, "rmse_mm_std": 0.1, "count": 2},
            "all": {"rmse_mm_mean": 2.6, "rmse_mm_std": 0.1, "count": 6}}},
        "Pose": {"geodesic_mean_deg": 3.25, "count": np.int64(5)},
    }


def test_write_report_files(tmp_path, results):
    out = report.write_report(results, str(tmp_path / "rep"), "Test run", label="ckpt-1")
    data = json.loads(open(out["json"]).read())  # Strict JSON: NaN became null.
    assert data["results"]["FEAFA"]["categories"]["Kiss"]["mae"] is None
    assert data["results"]["Pose"]["count"] == 5
    md = open(out["markdown"]).read()
    assert md.startswith("# Test run")
    header = "| method | " + " | ".join(expression.CATEGORIES) + " | Avg |"
    assert header in md
    assert "| ckpt-1 | 0.100 | 0.200 | 0.300 | 0.400 | 0.500 | 0.600 | - |" in md
    assert "CPEM paper: + L_idc + L_exp | 0.127" in md
    assert "| CPEM paper | 2.680 | 3.480 | 4.750 | 3.640 |" in md
    assert "| ckpt-1 | 2.000 | 3.000 | 5.000 | 3.333 |" in md
    assert "| with L_idc |" in md and "| without |" in md
    assert "| CPEM paper | 2.080 | 2.090 | 2.020 |" in md
    assert "| geodesic_mean_deg | 3.250 |" in md
    assert len(out["plots"]) == 4
    for path in out["plots"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert path.split("/")[-1] in md


def test_write_report_rejects_empty(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        report.write_report({}, str(tmp_path), "x")


def test_to_jsonable_converts_numpy():
    got = report.to_jsonable({"a": np.array([1.0, np.nan]), "b": np.float32(2.5), "c": (1, 2)})
    assert got == {"a": [1.0, None], "b": 2.5, "c": [1, 2]}
