"""FrameTrack, our per-frame CSV and JSON."""
import csv
import json

import numpy as np
import pytest

from cpem_jax.export.arkit import ARKIT_NAMES
from cpem_jax.export.csv_json import (POSE_COLUMNS, TRACK_JSON_SCHEMA, read_json, track_to_json,
                                      write_csv, write_json)
from cpem_jax.export.schema import FrameTrack, fill_missing
from cpem_jax.export.smoothing import SmoothingConfig, smooth_track

UNITS = ("browInnerUp_L", "browInnerUp_R", "eyeBlink_L", "jawOpen", "lipSuck")


def _track(n=5):
    rng = np.random.default_rng(0)
    expression = rng.uniform(size=(n, len(UNITS)))
    rotation = 0.2 * rng.standard_normal((n, 3))
    translation = rng.standard_normal((n, 3))
    expression[2] = np.nan  # no face in frame 2
    return FrameTrack.from_estimates(expression, rotation, translation, UNITS, fps=25.0)


def test_from_estimates_fills_missing_frames():
    track = _track()
    assert track.face_found.tolist() == [True, True, False, True, True]
    assert np.all(track.expression[2] == 0) and np.all(track.rotation[2] == 0)
    np.testing.assert_allclose(track.timestamps, np.arange(5) / 25.0)
    held = fill_missing(np.arange(10.0).reshape(5, 2), np.array([0, 1, 0, 0, 1], bool), "hold")
    np.testing.assert_array_equal(held[:, 0], [0, 2, 2, 2, 8])


def test_track_validation_messages():
    with pytest.raises(ValueError, match="shape"):
        FrameTrack(np.arange(3.0), np.ones(3, bool), np.zeros((3, 2)), ("a",), np.zeros((3, 3)),
                   np.zeros((3, 3)), 30.0)
    with pytest.raises(ValueError, match="from_estimates"):
        FrameTrack(np.arange(3.0), np.ones(3, bool), np.full((3, 1), np.nan), ("a",),
                   np.zeros((3, 3)), np.zeros((3, 3)), 30.0)
    with pytest.raises(ValueError, match="increasing"):
        FrameTrack(np.zeros(3), np.ones(3, bool), np.zeros((3, 1)), ("a",), np.zeros((3, 3)),
                   np.zeros((3, 3)), 30.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FrameTrack(np.arange(3.0), np.ones(3, bool), np.full((3, 1), 2.0), ("a",),
                   np.zeros((3, 3)), np.zeros((3, 3)), 30.0)


def test_csv_schema(tmp_path):
    track = _track()
    path = tmp_path / "out" / "track.csv"
    write_csv(track, path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[:3] == ["frame", "time", "face_found"]
    assert header[3:55] == list(ARKIT_NAMES)
    assert header[55:61] == list(POSE_COLUMNS)
    assert header[61:] == ["lipSuck"]  # unit with no ARKit name is kept, not dropped
    assert len(rows) == 1 + track.n_frames and all(len(r) == len(header) for r in rows)
    values = np.array([[float(v) for v in r] for r in rows[1:]])
    assert values[:, 2].tolist() == [1, 1, 0, 1, 1]
    col = {name: values[:, i] for i, name in enumerate(header)}
    e = track.expression
    np.testing.assert_allclose(col["browInnerUp"], (e[:, 0] + e[:, 1]) / 2, atol=2e-6)
    np.testing.assert_allclose(col["eyeBlinkLeft"], e[:, 2], atol=2e-6)
    np.testing.assert_allclose(col["tongueOut"], 0)
    np.testing.assert_allclose(col["head_yaw"], track.rotation[:, 1], atol=2e-6)
    np.testing.assert_allclose(col["head_tz"], track.translation[:, 2], atol=2e-6)
    assert np.all(np.isfinite(values))


def test_json_schema_and_round_trip(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    config = SmoothingConfig()
    track = smooth_track(_track(), config)
    path = tmp_path / "track.json"
    write_json(track, path, smoothing=config.to_dict())
    with open(path) as f:
        obj = json.load(f)
    jsonschema.validate(obj, TRACK_JSON_SCHEMA)
    assert obj["schema_version"] == "1.0" and obj["n_frames"] == 5
    assert obj["blendshape_names"] == list(ARKIT_NAMES)
    assert obj["unmapped_units"] == ["lipSuck"] and obj["missing_arkit"][-1] == "tongueOut"
    assert obj["arkit_sources"]["browInnerUp"] == ["browInnerUp_L", "browInnerUp_R"]
    assert obj["smoothing"]["expression"]["beta"] == config.expression.beta
    frame = obj["frames"][1]
    assert len(frame["blendshapes"]) == 52 and len(frame["units"]) == len(UNITS)
    assert frame["raw"]["units"] != frame["units"]  # raw kept beside the smoothed values
    assert obj["frames"][2]["face_found"] is False
    back = read_json(path)
    np.testing.assert_allclose(back.expression, track.expression, atol=1e-6)
    np.testing.assert_allclose(back.expression_raw, track.expression_raw, atol=1e-6)
    np.testing.assert_allclose(back.rotation, track.rotation, atol=1e-6)
    np.testing.assert_allclose(back.translation_raw, track.translation_raw, atol=1e-6)
    assert back.unit_names == UNITS and back.fps == 25.0
    np.testing.assert_array_equal(back.face_found, track.face_found)


def test_json_without_raw_and_bad_version():
    obj = track_to_json(_track())
    assert "raw" not in obj["frames"][0]
    obj["schema_version"] = "0.1"
    from cpem_jax.export.csv_json import track_from_json
    with pytest.raises(ValueError, match="schema_version"):
        track_from_json(obj)
