"""AFLW2000-3D reader and the NME-by-yaw protocol on fabricated .mat files."""
import cv2
import numpy as np
import pytest
from scipy import io as sio

from cpem_jax.evaluation import aflw2000, landmarks


def test_yaw_bins_edges_and_overflow():
    idx = landmarks.yaw_bin_index(np.array([0.0, -30.0, 30.5, 60.0, -75.0, 95.0, np.nan]))
    np.testing.assert_array_equal(idx, [0, 0, 1, 1, 2, 2, -1])
    assert landmarks.yaw_bin_labels() == ["[0,30]", "(30,60]", "(60,90]"]


def test_nme_by_yaw_bins_balanced_mean():
    res = landmarks.nme_by_yaw_bins(np.array([1.0, 3.0, 4.0, 10.0, np.nan]),
                                    np.array([5.0, 10.0, 45.0, 80.0, 80.0]))
    assert res["bins"]["[0,30]"] == {"nme": 2.0, "count": 2}
    assert res["mean_of_bins"] == pytest.approx((2.0 + 4.0 + 10.0) / 3)
    assert res["overall"] == pytest.approx(4.5) and res["count"] == 4


def _landmarks(rng):
    xs = rng.uniform(40, 160, 68)
    ys = rng.uniform(50, 150, 68)
    return np.stack([xs, ys], 1)


@pytest.fixture()
def aflw_root(tmp_path):
    rng = np.random.default_rng(0)
    yaws = [10.0, -45.0, 70.0, 20.0]
    for i, yaw in enumerate(yaws):
        lm = _landmarks(rng)
        pt3d = np.concatenate([lm.T, rng.normal(size=(1, 68))], 0)
        pose = np.array([[0.1, np.radians(yaw), 0.0, 100.0, 100.0, 0.0, 0.001]])
        sio.savemat(str(tmp_path / f"image{i:05d}.mat"), {"pt3d_68": pt3d, "Pose_Para": pose})
        cv2.imwrite(str(tmp_path / f"image{i:05d}.jpg"), np.full((8, 8, 3), i, np.uint8))
    return tmp_path


def test_reader(aflw_root):
    data = aflw2000.load_aflw2000(str(aflw_root))
    assert data.landmarks.shape == (4, 68, 2)
    np.testing.assert_allclose(data.yaw_deg, [10.0, -45.0, 70.0, 20.0])
    assert aflw2000.load_aflw2000(str(aflw_root), limit=2).landmarks.shape == (2, 68, 2)


def test_evaluate_with_known_offsets(aflw_root):
    data = aflw2000.load_aflw2000(str(aflw_root))
    offsets = [1.0, 2.0, 3.0, 0.0]  # Pixels, along x: the error is exactly the offset.

    def predict(image):
        i = int(round(image[0, 0, 0] * 255))
        return data.landmarks[i] + np.array([offsets[i], 0.0])

    res = aflw2000.evaluate_aflw2000(predict, str(aflw_root))
    box = landmarks.box_size(landmarks.landmark_box(data.landmarks))
    expect = 100 * np.array(offsets) / box
    assert res["bins"]["[0,30]"]["nme"] == pytest.approx((expect[0] + expect[3]) / 2)
    assert res["bins"]["(30,60]"]["nme"] == pytest.approx(expect[1])
    assert res["bins"]["(60,90]"]["nme"] == pytest.approx(expect[2])
    assert res["mean_of_bins"] == pytest.approx(
        np.mean([(expect[0] + expect[3]) / 2, expect[1], expect[2]]))
    assert res["unit"] == "%" and res["n_no_face"] == 0


def test_no_face_frames_are_counted_not_scored(aflw_root):
    data = aflw2000.load_aflw2000(str(aflw_root))
    pred = data.landmarks.copy()
    pred[1] = np.nan
    res = aflw2000.aflw2000_scores(pred, data.landmarks, data.yaw_deg)
    assert res["n_no_face"] == 1 and res["count"] == 3
    assert res["mean_of_bins"] == pytest.approx(0.0)


def test_bad_mat_files_raise(tmp_path):
    sio.savemat(str(tmp_path / "image00000.mat"), {"pt3d_68": np.zeros((2, 68)),
                                                   "Pose_Para": np.zeros((1, 7))})
    cv2.imwrite(str(tmp_path / "image00000.jpg"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(aflw2000.Aflw2000FormatError, match=r"\(3, 68\)"):
        aflw2000.load_aflw2000(str(tmp_path))
    sio.savemat(str(tmp_path / "image00000.mat"), {"pt3d_68": np.zeros((3, 68))})
    with pytest.raises(aflw2000.Aflw2000FormatError, match="Pose_Para"):
        aflw2000.load_aflw2000(str(tmp_path))


def test_image_missing_raises(tmp_path):
    sio.savemat(str(tmp_path / "image00001.mat"), {"pt3d_68": np.zeros((3, 68)),
                                                   "Pose_Para": np.zeros((1, 7))})
    with pytest.raises(aflw2000.Aflw2000FormatError, match="no image"):
        aflw2000.load_aflw2000(str(tmp_path))
