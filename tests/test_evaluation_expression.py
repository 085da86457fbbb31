"""Expression MAE (per unit, ten categories) and the FEAFA reader/protocol on fabricated files."""
import os

import cv2
import numpy as np
import pytest

from cpem_jax.evaluation import expression, feafa

UNITS = ("browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
         "browOuterUp_R", "eyeBlink_L", "eyeBlink_R", "eyeWide_L", "eyeWide_R", "jawOpen",
         "mouthRollUpper", "mouthRollLower", "mouthUpperUp_L", "mouthUpperUp_R",
         "mouthLowerDown_L", "mouthLowerDown_R", "mouthPucker", "noseSneer_L", "noseSneer_R",
         "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "cheekPuff_L")


def test_category_weights_from_ict_and_arkit_names():
    w = np.zeros(len(UNITS))
    w[UNITS.index("eyeBlink_L")] = 1.0
    w[UNITS.index("browInnerUp_L")] = 0.4
    w[UNITS.index("browOuterUp_R")] = 0.8
    cat = expression.category_weights(w, UNITS)
    assert cat.shape == (10,)
    assert cat[expression.CATEGORIES.index("EyeClose")] == pytest.approx(0.5)
    assert cat[expression.CATEGORIES.index("BrowRaise")] == pytest.approx(0.3)
    arkit = [n.replace("_L", "Left").replace("_R", "Right") for n in UNITS]
    np.testing.assert_allclose(expression.category_weights(w, arkit), cat)


def test_category_weights_rejects_unknown_vocabulary():
    with pytest.raises(ValueError, match="EyeClose"):
        expression.category_weights(np.zeros(2), ["a", "b"])


def test_unit_category_mae_counts_only_active_entries():
    target = np.zeros((2, len(UNITS)))
    pred = np.zeros((2, len(UNITS)))
    target[0, UNITS.index("jawOpen")] = 0.9
    pred[0, UNITS.index("jawOpen")] = 0.5
    target[1, UNITS.index("mouthPucker")] = 0.7  # Below 0.8: not counted.
    res = expression.unit_category_mae(pred, target, UNITS)
    assert res["MouthOpen"] == {"mae": pytest.approx(0.4), "count": 1}
    assert np.isnan(res["Kiss"]["mae"]) and res["Kiss"]["count"] == 0
    assert res["Avg"]["mae"] == pytest.approx(0.4)


def test_masked_mae_per_column():
    pred = np.array([[0.0, 1.0], [1.0, 1.0]])
    target = np.array([[1.0, 1.0], [1.0, 0.0]])
    valid = np.array([[True, False], [True, False]])
    mae = expression.masked_mae(pred, target, valid)
    assert mae[0] == pytest.approx(0.5) and np.isnan(mae[1])


def test_au_table_is_consistent():
    assert len(feafa.FEAFA_AUS) == 24 and len(set(feafa.FEAFA_AU_CODES)) == 24
    assert {au.category for au in feafa.FEAFA_AUS} - {None} == set(expression.CATEGORIES)
    for au in feafa.FEAFA_AUS:
        side = au.code[-1]
        if au.code[-1] in "LR" and au.code[-2].isdigit():
            assert all(u.endswith("_" + side) or u in ("jawLeft", "jawRight") for u in au.units)


def _write_video(root, video, labels):
    """Frames whose pixels encode their global id (value = id), with .auw labels."""
    os.makedirs(root / video)
    for stem, (frame_id, values) in labels.items():
        cv2.imwrite(str(root / video / f"{stem}.png"), np.full((6, 6, 3), frame_id, np.uint8))
        if values is not None:
            (root / video / f"{stem}.auw").write_text(" ".join(f"{v:.4f}" for v in values))


def _label(**aus):
    v = np.zeros(24)
    for code, value in aus.items():
        v[feafa.FEAFA_AU_CODES.index(code)] = value
    return v


@pytest.fixture()
def feafa_root(tmp_path):
    _write_video(tmp_path, "video01", {
        "00001": (1, _label(AU43L=0.9, AU43R=0.95)),
        "00002": (2, _label(AU26=0.85, AU1=0.5)),
        "00003": (3, _label(AU26=0.3)),          # Nothing above 0.8: not evaluated.
        "00004": (4, None)})                     # Unlabelled frame: ignored.
    _write_video(tmp_path, "video02", {"00001": (5, _label(AU18=1.0))})
    return tmp_path


def _predictor(table):
    def predict(image):
        assert image.dtype == np.float32 and image.shape == (6, 6, 3)
        frame_id = int(round(image[0, 0, 0] * 255))
        w = np.zeros(len(UNITS))
        for unit, value in table.get(frame_id, {}).items():
            w[UNITS.index(unit)] = value
        return w
    return predict


def test_evaluate_feafa_matches_hand_computed_errors(feafa_root):
    predict = _predictor({1: {"eyeBlink_L": 0.7, "eyeBlink_R": 0.95}, 2: {"jawOpen": 0.6},
                          5: {"mouthPucker": 0.9}})
    res = feafa.evaluate_feafa(predict, str(feafa_root), UNITS)
    cats = res["categories"]
    assert res["n_frames"] == 3 and res["n_labelled"] == 4
    assert cats["EyeClose"] == {"mae": pytest.approx(0.1), "count": 2}
    assert cats["MouthOpen"]["mae"] == pytest.approx(0.25)
    assert cats["Kiss"]["mae"] == pytest.approx(0.1)
    assert cats["BrowRaise"]["count"] == 0  # AU1 = 0.5 is below the threshold.
    assert cats["Avg"]["mae"] == pytest.approx((0.1 + 0.25 + 0.1) / 3)
    assert res["per_au"]["AU43L"]["mae"] == pytest.approx(0.2)
    # A worse predictor scores worse.
    worse = feafa.evaluate_feafa(_predictor({}), str(feafa_root), UNITS)
    assert worse["categories"]["Avg"]["mae"] > cats["Avg"]["mae"]


def test_feafa_test_split_file(feafa_root):
    (feafa_root / "test_videos.txt").write_text("video02\n")
    res = feafa.evaluate_feafa(_predictor({}), str(feafa_root), UNITS)
    assert res["videos"] == ["video02"] and res["n_frames"] == 1


def test_feafa_au_order_override(feafa_root):
    order = list(feafa.FEAFA_AU_CODES)
    order[0], order[-1] = order[-1], order[0]
    (feafa_root / "au_order.txt").write_text("\n".join(order[:-1] + ["AU99 jawOpen"]))
    aus = feafa.read_au_order(str(feafa_root))
    assert aus[0].code == feafa.FEAFA_AU_CODES[-1] and aus[-1].units == ("jawOpen",)
    assert aus[-1].category is None


@pytest.mark.parametrize("text, match", [("0.1 " * 23, "expected 24"), ("0.1 " * 23 + "1.5",
                                         r"\[0, 1\]"), ("0.1 " * 23 + "x", "non-numeric")])
def test_feafa_label_reader_is_strict(tmp_path, text, match):
    path = tmp_path / "a.auw"
    path.write_text(text)
    with pytest.raises(feafa.FeafaFormatError, match=match):
        feafa.read_au_file(str(path))


def test_feafa_label_without_image_raises(tmp_path):
    os.makedirs(tmp_path / "v")
    (tmp_path / "v" / "00001.auw").write_text("0.9 " * 24)
    with pytest.raises(feafa.FeafaFormatError, match="no image"):
        feafa.load_feafa(str(tmp_path))


def test_feafa_missing_root_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="per-video"):
        feafa.load_feafa(str(tmp_path / "nope"))


def test_every_mapping_resolves_with_the_real_ict_unit_names():
    import json
    import zipfile

    from conftest import shared_path

    with zipfile.ZipFile(shared_path("assets", "ICT-FaceKit-master.zip")) as zf:
        names = json.loads(zf.read("ICT-FaceKit-master/FaceXModel/vertex_indices.json"))[
            "expressions"]
    idx = expression.category_unit_indices(names)
    assert [len(idx[c]) for c in expression.CATEGORIES] == [2, 2, 4, 1, 2, 4, 1, 2, 2, 2]
    assert np.isfinite(feafa.au_predictions(np.zeros((1, len(names))), names)).all()
