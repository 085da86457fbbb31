"""ARKit names and the model-unit -> ARKit merge rules."""
import numpy as np
import pytest

from cpem_jax.export.arkit import (ARKIT_NAMES, arkit_name_for, build_arkit_mapping,
                                   shape_name_key, split_side)

# ICT-FaceKit's 53 expression names in model order.
ICT_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R",
    "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L",
    "mouthUpperUp_R", "noseSneer_L", "noseSneer_R")


def test_arkit_names_are_apples_52():
    assert len(ARKIT_NAMES) == 52 and len(set(ARKIT_NAMES)) == 52
    assert ARKIT_NAMES[0] == "eyeBlinkLeft" and ARKIT_NAMES[-1] == "tongueOut"
    assert ARKIT_NAMES.index("browInnerUp") < ARKIT_NAMES.index("cheekPuff")


@pytest.mark.parametrize("name,expected", [
    ("eyeBlink_L", ("eyeBlink", "left")), ("EyeBlinkRight", ("EyeBlink", "right")),
    ("blendShape1.eyeBlink.L", ("blendShape1.eyeBlink", "left")), ("jawOpen", ("jawOpen", None)),
    ("mouth_roll", ("mouth_roll", None))])
def test_split_side(name, expected):
    assert split_side(name) == expected


def test_name_keys_fold_spellings():
    keys = {shape_name_key(n) for n in (
        "eyeBlinkLeft", "eyeBlink_L", "EyeBlink_l", "eye_blink.L", "blendShape1.eyeBlinkLeft",
        "Face:EyeBlink_Left", "EYEBLINK-LEFT")}
    assert keys == {"eyeblinkleft"}
    assert shape_name_key("eyeBlink_R") != shape_name_key("eyeBlink_L")


def test_ict_mapping_merges_split_units_and_misses_tongue():
    mapping = build_arkit_mapping(ICT_NAMES)
    assert mapping.sources["browInnerUp"] == ("browInnerUp_L", "browInnerUp_R")
    assert mapping.sources["cheekPuff"] == ("cheekPuff_L", "cheekPuff_R")
    assert mapping.sources["eyeBlinkLeft"] == ("eyeBlink_L",)
    assert mapping.sources["mouthSmileRight"] == ("mouthSmile_R",)
    assert mapping.missing_arkit == ("tongueOut",)
    assert mapping.unmapped_units == ()
    assert len(mapping.sources) == 51


def test_to_arkit_averages_halves_and_zeroes_tongue():
    mapping = build_arkit_mapping(ICT_NAMES)
    rng = np.random.default_rng(0)
    weights = rng.uniform(size=(4, len(ICT_NAMES))).astype(np.float32)
    arkit = mapping.to_arkit(weights)
    assert arkit.shape == (4, 52)
    col = {n: weights[:, ICT_NAMES.index(n)] for n in ICT_NAMES}
    np.testing.assert_allclose(arkit[:, ARKIT_NAMES.index("browInnerUp")],
                               (col["browInnerUp_L"] + col["browInnerUp_R"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(arkit[:, ARKIT_NAMES.index("cheekPuff")],
                               (col["cheekPuff_L"] + col["cheekPuff_R"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(arkit[:, ARKIT_NAMES.index("jawOpen")], col["jawOpen"])
    np.testing.assert_allclose(arkit[:, ARKIT_NAMES.index("eyeLookInRight")], col["eyeLookIn_R"])
    assert np.all(arkit[:, ARKIT_NAMES.index("tongueOut")] == 0)


def test_other_models_report_unmapped_units_and_take_aliases():
    names = ("jawOpen", "AU4_browLowerer", "eyeBlink_L", "lipSuck")
    mapping = build_arkit_mapping(names)
    assert mapping.unmapped_units == ("AU4_browLowerer", "lipSuck")
    assert "browDownLeft" in mapping.missing_arkit
    aliased = build_arkit_mapping(names, aliases={"lipSuck": "mouthRollLower", "jawOpen": ""})
    assert aliased.sources["mouthRollLower"] == ("lipSuck",)
    assert "jawOpen" in aliased.unmapped_units and "jawOpen" in aliased.missing_arkit
    with pytest.raises(ValueError, match="not an ARKit name"):
        build_arkit_mapping(names, aliases={"lipSuck": "lipSuck"})
    with pytest.raises(ValueError, match="units but the mapping"):
        mapping.to_arkit(np.zeros((2, 3)))


def test_arkit_name_for_rules():
    assert arkit_name_for("cheekPuff_R") == "cheekPuff"
    assert arkit_name_for("MouthLeft") == "mouthLeft"
    assert arkit_name_for("cheekRaiser_L") is None
    assert arkit_name_for("jawOpen_L") == "jawOpen"  # a half of an unsided shape
