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
    assert write_livelink_csv(track, path, fps=None) == n  # the track's own frames
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
    np.testing.assert_allclose(col["HeadYaw"], -track.rotation[:, 1], atol=2e-6)
    np.testing.assert_allclose(col["HeadPitch"], track.rotation[:, 0], atol=2e-6)
    np.testing.assert_allclose(col["HeadRoll"], -track.rotation[:, 2], atol=2e-6)
    np.testing.assert_allclose(col["LeftEyeYaw"], -e["eyeLookOut_L"] * EYE_YAW_RANGE, atol=2e-6)
    np.testing.assert_allclose(col["RightEyeYaw"], -e["eyeLookIn_R"] * EYE_YAW_RANGE, atol=2e-6)
    np.testing.assert_allclose(col["RightEyePitch"], e["eyeLookDown_R"] * EYE_PITCH_RANGE,
                               atol=2e-6)
    np.testing.assert_allclose(col["LeftEyeRoll"], 0)
    write_livelink_csv(track, path, eyes="zero")
    _, _, zero_eyes = read_livelink_csv(path)
    assert np.all(zero_eyes[:, -6:] == 0)
    with pytest.raises(ValueError, match="eyes"):
        write_livelink_csv(track, path, eyes="guess")


def _angles(path):
    _, names, values = read_livelink_csv(path)
    return {name: values[:, i] for i, name in enumerate(names)}


def test_turn_and_gaze_to_the_subjects_right_read_as_the_app_writes_them(tmp_path):
    """The app (Unreal's conversion of ARKit): positive HeadYaw and eye yaw = toward the subject's
    right; LeftEyeYaw rises with EyeLookInLeft, RightEyeYaw falls with EyeLookInRight."""
    from cpem_jax.geometry.rotation import euler_to_matrix
    units = ("eyeLookIn_L", "eyeLookOut_L", "eyeLookIn_R", "eyeLookOut_R", "eyeLookDown_L",
             "eyeLookUp_L")
    turn = np.array([[0.0, -0.4, 0.0]], np.float32)
    nose = np.asarray(euler_to_matrix(turn))[0] @ [0.0, 0.0, 1.0]
    assert nose[0] < -0.3  # our convention: the nose now points to -x, the subject's right
    # Frame 0: head turned right, both eyes to the subject's right (left eye in, right eye out).
    # Frame 1: eyes converging (both in). Frame 2: left eye fully down.
    expression = np.array([[0.8, 0, 0, 0.8, 0, 0], [0.5, 0, 0.5, 0, 0, 0], [0, 0, 0, 0, 1, 0]])
    rotation = np.concatenate([turn, [[0, 0, 0.2]], [[0.3, 0, 0]]])
    track = FrameTrack.from_estimates(expression, rotation, np.zeros((3, 3)), units, fps=30.0)
    write_livelink_csv(track, tmp_path / "ll.csv", fps=None)
    col = _angles(tmp_path / "ll.csv")
    assert col["HeadYaw"][0] == pytest.approx(0.4, abs=1e-6)
    assert col["LeftEyeYaw"][0] > 0 and col["RightEyeYaw"][0] > 0
    assert col["LeftEyeYaw"][1] > 0 > col["RightEyeYaw"][1]  # vergence: opposite signs
    assert col["HeadRoll"][1] == pytest.approx(-0.2, abs=1e-6)
    assert col["HeadPitch"][2] == pytest.approx(0.3, abs=1e-6)  # looking down stays positive
    assert col["LeftEyePitch"][2] == pytest.approx(np.radians(35.0), abs=1e-6)
    assert np.all(col["LeftEyeRoll"] == 0) and np.all(col["RightEyeRoll"] == 0)


def test_written_at_60_fps_with_lf_line_endings(tmp_path):
    units = ("jawOpen",)
    n = 4  # 0.1 s at 30 fps -> 7 rows at 60 fps
    expression = np.array([[0.0], [0.2], [0.4], [1.0]])
    rotation = np.zeros((n, 3))
    rotation[:, 1] = [3.0, -3.1, -3.0, 3.1]  # across +-pi: interpolated the short way
    track = FrameTrack.from_estimates(expression, rotation, np.zeros((n, 3)), units, fps=30.0)
    path = tmp_path / "ll.csv"
    assert write_livelink_csv(track, path) == 7
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.count(b"\n") == 8
    timecodes, names, values = read_livelink_csv(path)
    assert timecodes == [f"00:00:00:{k:02d}.000" for k in range(7)]
    jaw = values[:, names.index("JawOpen")]
    np.testing.assert_allclose(jaw, [0, 0.1, 0.2, 0.3, 0.4, 0.7, 1.0], atol=1e-6)
    yaw = values[:, names.index("HeadYaw")]  # -yaw, never swinging through 0
    assert np.all(np.abs(yaw) > 2.99)
    write_livelink_csv(track, path, fps=24.0, start_seconds=0.01)
    timecodes, _, values = read_livelink_csv(path)
    assert len(values) == 3 and timecodes[:2] == ["00:00:00:00.240", "00:00:00:01.240"]


def test_livelink_names_cover_arkit():
    from cpem_jax.export.livelink import LIVELINK_TO_ARKIT
    assert sorted(LIVELINK_TO_ARKIT.values()) == sorted(ARKIT_NAMES)
