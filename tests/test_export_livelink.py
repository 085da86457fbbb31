"""Live Link Face CSV layout."""
import numpy as np
import pytest

from cpem_jax.export.arkit import ARKIT_NAMES
from cpem_jax.export.livelink import (EYE_PITCH_RANGE, EYE_YAW_RANGE, LIVELINK_HEADER,
                                      format_timecode, read_livelink_csv, write_livelink_csv)
from cpem_jax.export.schema import FrameTrack

# The header the iPhone app writes, verbatim.
APP_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,"
    "EyeLookUpLeft,EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,"
    "EyeLookOutRight,EyeLookUpRight,EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,"
    "JawOpen,MouthClose,MouthFunnel,MouthPucker,MouthRight,MouthLeft,MouthSmileLeft,"
    "MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,MouthDimpleRight,"
    "MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,"
    "MouthUpperUpLeft,MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,"
    "BrowOuterUpRight,CheekPuff,CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,"
    "TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,"
    "RightEyePitch,RightEyeRoll")


def test_header_matches_the_app():
    assert ",".join(LIVELINK_HEADER) == APP_HEADER


@pytest.mark.parametrize("seconds,fps,expected", [
    (0.0, 30, "00:00:00:00.000"), (1.0 / 30, 30, "00:00:00:01.000"),
    (3661.5, 30, "01:01:01:15.000"), (0.5 / 60, 60, "00:00:00:00.500"),
    (59.0 + 59 / 60, 60, "00:00:59:59.000"), (2.0, 29.97, "00:00:02:00.000")])
def test_timecode(seconds, fps, expected):
    assert format_timecode(seconds, fps) == expected


def test_values_in_app_order(tmp_path):
    units = ("eyeBlink_L", "jawLeft", "jawRight", "eyeLookOut_L", "eyeLookIn_R", "eyeLookDown_R",
             "cheekPuff_L", "cheekPuff_R")
    n = 4
    rng = np.random.default_rng(0)
    expression = rng.uniform(size=(n, len(units)))
    rotation = 0.3 * rng.standard_normal((n, 3))
    track = FrameTrack.from_estimates(expression, rotation, np.zeros((n, 3)), units, fps=30.0)
    path = tmp_path / "ll.csv"
    write_livelink_csv(track, path)
    timecodes, names, values = read_livelink_csv(path)
    assert names == LIVELINK_HEADER[2:] and values.shape == (n, 61)
    assert timecodes[1] == "00:00:00:01.000"
    with open(path) as f:
        assert f.readlines()[1].split(",")[1] == "61"
    col = {name: values[:, i] for i, name in enumerate(names)}
    e = {u: track.expression[:, i] for i, u in enumerate(units)}
    np.testing.assert_allclose(col["JawLeft"], e["jawLeft"], atol=2e-6)
    np.testing.assert_allclose(col["JawRight"], e["jawRight"], atol=2e-6)
    np.testing.assert_allclose(col["CheekPuff"], (e["cheekPuff_L"] + e["cheekPuff_R"]) / 2,
                               atol=2e-6)
    np.testing.assert_allclose(col["TongueOut"], 0)
    np.testing.assert_allclose(col["HeadYaw"], track.rotation[:, 1], atol=2e-6)
    np.testing.assert_allclose(col["HeadPitch"], track.rotation[:, 0], atol=2e-6)
    np.testing.assert_allclose(col["HeadRoll"], track.rotation[:, 2], atol=2e-6)
    np.testing.assert_allclose(col["LeftEyeYaw"], e["eyeLookOut_L"] * EYE_YAW_RANGE, atol=2e-6)
    np.testing.assert_allclose(col["RightEyeYaw"], e["eyeLookIn_R"] * EYE_YAW_RANGE, atol=2e-6)
    np.testing.assert_allclose(col["RightEyePitch"], e["eyeLookDown_R"] * EYE_PITCH_RANGE,
                               atol=2e-6)
    np.testing.assert_allclose(col["LeftEyeRoll"], 0)
    write_livelink_csv(track, path, eyes="zero")
    _, _, zero_eyes = read_livelink_csv(path)
    assert np.all(zero_eyes[:, -6:] == 0)
    with pytest.raises(ValueError, match="eyes"):
        write_livelink_csv(track, path, eyes="guess")


def test_livelink_names_cover_arkit():
    from cpem_jax.export.livelink import LIVELINK_TO_ARKIT
    assert sorted(LIVELINK_TO_ARKIT.values()) == sorted(ARKIT_NAMES)
