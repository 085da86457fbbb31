"""AFLW2000-3D reader, pose convention and the NME-by-yaw protocol: fabricated .mat files, and
the real 100-image sample in the shared folder ($CPEM_SHARED/data/aflw2000-3d-sample; those
tests skip when it is absent)."""
import glob
import os

import cv2
import numpy as np
import pytest
from scipy import io as sio

from conftest import shared_path
from cpem_jax.detect import FaceLandmarker
from cpem_jax.evaluation import aflw2000, landmarks
from cpem_jax.geometry.rotation import euler_to_matrix


def E(angles):
    return euler_to_matrix(np.asarray(angles, np.float64), xp=np)


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


def test_bin_mean_intervals_bootstrap_within_bins():
    rng = np.random.default_rng(3)
    yaw = np.concatenate([np.full(60, 10.0), np.full(20, 45.0), np.full(10, 75.0), [80.0]])
    values = np.concatenate([rng.normal(3.0, 0.5, 60), rng.normal(4.0, 1.0, 20),
                             rng.normal(8.0, 3.0, 10), [np.nan]])
    res = landmarks.nme_by_yaw_bins(values, yaw)
    ci = landmarks.bin_mean_intervals(values, yaw, draws=4000)
    for label, spread in zip(landmarks.yaw_bin_labels(), (0.5 / 60 ** 0.5, 1.0 / 20 ** 0.5,
                                                          3.0 / 10 ** 0.5)):
        low, high = ci["bins"][label]
        sel = np.isfinite(values) & (landmarks.yaw_bin_index(yaw) ==
                                     landmarks.yaw_bin_labels().index(label))
        sem = values[sel].std() / sel.sum() ** 0.5      # the sample's own standard error
        assert low < res["bins"][label]["nme"] < high
        assert (high - low) == pytest.approx(2 * 1.96 * sem, rel=0.15)
        assert (high - low) == pytest.approx(2 * 1.96 * spread, rel=0.5)
    low, high = ci["mean_of_bins"]
    assert low < res["mean_of_bins"] < high
    # The mean of bins is as uncertain as its widest bin / 3, and less than the sum of the three.
    widths = [b[1] - b[0] for b in ci["bins"].values()]
    assert max(widths) / 3 < high - low < sum(widths) / 3
    # Same seed, same interval; one image per bin gives a zero-width interval; an empty bin none.
    assert landmarks.bin_mean_intervals(values, yaw, draws=4000) == ci
    one = landmarks.bin_mean_intervals(np.array([2.0, 5.0]), np.array([0.0, 50.0]))
    assert one["bins"]["[0,30]"] == [2.0, 2.0] and one["bins"]["(60,90]"] is None
    assert one["mean_of_bins"] == [3.5, 3.5]
    with pytest.raises(ValueError, match="draws"):
        landmarks.bin_mean_intervals(values, yaw, draws=0)


def _landmarks(rng):
    xs = rng.uniform(40, 160, 68)
    ys = rng.uniform(50, 150, 68)
    return np.stack([xs, ys], 1)


YAWS = [10.0, -45.0, 70.0, 20.0]


def write_set(folder, yaws, seed=0, poses=None):
    """Fabricated images imageXXXXX.jpg (every pixel = the index) with .mat annotations."""
    rng = np.random.default_rng(seed)
    for i, yaw in enumerate(yaws):
        lm = _landmarks(rng)
        pt3d = np.concatenate([lm.T, rng.normal(size=(1, 68))], 0)
        pose = np.array([[0.1, np.radians(yaw), 0.0, 100.0, 100.0, 0.0, 0.001]]) \
            if poses is None else np.asarray(poses[i], np.float64).reshape(1, 7)
        sio.savemat(str(folder / f"image{i:05d}.mat"), {"pt3d_68": pt3d, "Pose_Para": pose})
        cv2.imwrite(str(folder / f"image{i:05d}.jpg"), np.full((200, 200, 3), i, np.uint8))
    return folder


@pytest.fixture()
def aflw_root(tmp_path):
    return write_set(tmp_path, YAWS)


def test_reader(aflw_root):
    data = aflw2000.load_aflw2000(str(aflw_root))
    assert data.landmarks.shape == (4, 68, 2) and data.names[0] == "image00000"
    np.testing.assert_allclose(data.yaw_deg, YAWS, atol=1e-4)
    np.testing.assert_allclose(data.angles_deg[:, 0], np.degrees(0.1), atol=1e-4)
    assert data.project_pose.shape == (4, 3)


def test_limit_takes_a_yaw_balanced_subset(tmp_path):
    root = write_set(tmp_path, [10.0, 20.0, 25.0, -45.0, 70.0])
    data = aflw2000.load_aflw2000(str(root), limit=3)  # not the first three (all frontal)
    assert data.names == ["image00000", "image00003", "image00004"]
    np.testing.assert_allclose(data.yaw_deg, [10.0, -45.0, 70.0], atol=1e-4)
    assert data.landmarks.shape == (3, 68, 2) and data.project_pose.shape == (3, 3)
    assert aflw2000.load_aflw2000(str(root), limit=4).names[:2] == ["image00000", "image00001"]
    assert aflw2000.load_aflw2000(str(root), limit=99).landmarks.shape == (5, 68, 2)


def test_balanced_subset_shares_and_redistributes():
    yaws = np.array([1, 2, 3, 4, 5, 40, 41, 42, 80.0])  # 5 / 3 / 1 per bin
    pick = aflw2000.balanced_subset(yaws, 6)
    np.testing.assert_array_equal(np.bincount(landmarks.yaw_bin_index(yaws[pick])), [3, 2, 1])
    np.testing.assert_array_equal(pick, [0, 1, 2, 5, 6, 8])  # first by name within a bin
    assert len(aflw2000.balanced_subset(yaws, 3)) == 3
    np.testing.assert_array_equal(np.bincount(landmarks.yaw_bin_index(
        yaws[aflw2000.balanced_subset(yaws, 3)])), [1, 1, 1])
    assert len(aflw2000.balanced_subset(yaws, 50)) == 9
    with pytest.raises(ValueError, match="limit"):
        aflw2000.balanced_subset(yaws, 0)


def test_release_rotation_is_the_transposed_project_rotation():
    angles = np.array([0.3, -0.7, 0.2])
    np.testing.assert_allclose(aflw2000.release_rotation(angles), E(angles).T, atol=1e-12)
    pose = np.r_[angles, 0, 0, 0, 1]
    # project_pose is the same rotation in the project's convention...
    np.testing.assert_allclose(E(aflw2000.project_pose(pose)), E(angles).T, atol=1e-6)
    # ...to first order the negated release angles.
    small = np.r_[0.01, -0.02, 0.015, 0, 0, 0, 1]
    np.testing.assert_allclose(aflw2000.project_pose(small), -small[:3], atol=5e-4)


def test_stored_angles_are_wrapped_through_the_rotation():
    stored = np.radians([[400.0, -351.0, 10.0], [-328.0, -104.6, 334.0], [5.0, 95.0, -3.0]])
    poses = np.concatenate([stored, np.zeros((3, 3)), np.ones((3, 1))], axis=1)
    got = np.degrees(aflw2000.release_angles(poses))
    np.testing.assert_allclose(got[0], [40.0, 9.0, 10.0], atol=1e-3)
    # Beyond profile: the upright triple (|pitch|, |roll| < 90) is kept, |yaw| stays > 90.
    np.testing.assert_allclose(got[1], [32.0, -104.6, -26.0], atol=1e-3)
    np.testing.assert_allclose(got[2], [5.0, 95.0, -3.0], atol=1e-3)
    for row, pose in zip(got, poses):
        np.testing.assert_allclose(E(np.radians(row)), E(pose[:3]), atol=1e-6)


def test_evaluate_with_known_offsets(aflw_root):
    data = aflw2000.load_aflw2000(str(aflw_root))
    offsets = [1.0, 2.0, 3.0, 0.0]  # Pixels, along x: the error is exactly the offset.
    seen = []

    def predict(image):
        seen.append((image.dtype, image.shape))
        i = int(image[0, 0, 0])
        return data.landmarks[i] + np.array([offsets[i], 0.0])

    res = aflw2000.evaluate_aflw2000(predict, str(aflw_root))
    assert set(seen) == {(np.dtype(np.uint8), (200, 200, 3))}
    box = landmarks.box_size(landmarks.landmark_box(data.landmarks))
    expect = 100 * np.array(offsets) / box
    assert res["bins"]["[0,30]"]["nme"] == pytest.approx((expect[0] + expect[3]) / 2)
    assert res["bins"]["(30,60]"]["nme"] == pytest.approx(expect[1])
    assert res["bins"]["(60,90]"]["nme"] == pytest.approx(expect[2])
    assert res["mean_of_bins"] == pytest.approx(
        np.mean([(expect[0] + expect[3]) / 2, expect[1], expect[2]]))
    assert res["unit"] == "%" and res["n_missed"] == 0 and res["n_unscored"] == 0


def test_rows_without_landmarks_are_counted_per_bin(aflw_root):
    data = aflw2000.load_aflw2000(str(aflw_root))
    pred = data.landmarks.copy()
    pred[1] = np.nan
    res = aflw2000.aflw2000_scores(pred, data.landmarks, data.yaw_deg,
                                   missed=np.array([False, True, False, False]))
    assert res["n_unscored"] == 1 and res["n_missed"] == 1 and res["count"] == 3
    assert res["bins"]["(30,60]"] == {"nme": res["bins"]["(30,60]"]["nme"], "count": 0,
                                      "missed": 1, "unscored": 1}
    assert res["mean_of_bins"] == pytest.approx(0.0)
    rows = aflw2000.bin_table(res)
    assert rows[1][0] == "(30,60]" and rows[1][2:] == (0, 1, 1) and rows[-1][0] == "mean of bins"
    with pytest.raises(ValueError, match="missed has 2 values"):
        aflw2000.aflw2000_scores(pred, data.landmarks, data.yaw_deg, missed=[True, False])


class HalfBlindLandmarker(FaceLandmarker):
    """Fake landmarker for a fabricated set: the detector sees faces only in even images (pixel
    value = image index) and returns their box as the ground-truth extent grown by 10% per side,
    with the exact landmarks; started from a box, it returns the landmarks shifted 1 px in x."""

    def __init__(self, data):
        self.data = data
        self.boxes_given = {}
        self.dtypes = set()

    def _grown(self, i):
        lm = self.data.landmarks[i]
        lo, hi = lm.min(0), lm.max(0)
        return np.r_[lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)]

    def detect_boxes(self, image):
        self.dtypes.add(image.dtype)
        i = int(image[0, 0, 0])
        if i % 2:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return self._grown(i)[None].astype(np.float32), np.ones(1, np.float32)

    def landmarks_in_boxes(self, image, boxes):
        self.dtypes.add(image.dtype)
        i = int(image[0, 0, 0])
        if i % 2 == 0:
            return self.data.landmarks[i][None].astype(np.float32)
        self.boxes_given[i] = np.asarray(boxes[0], np.float64)
        return (self.data.landmarks[i] + [1.0, 0.0])[None].astype(np.float32)


def test_detector_misses_fall_back_to_the_ground_truth_box(aflw_root):
    data = aflw2000.load_aflw2000(str(aflw_root))
    fake = HalfBlindLandmarker(data)
    result = aflw2000.predict_aflw2000(fake, data)
    assert fake.dtypes == {np.dtype(np.uint8)}
    np.testing.assert_array_equal(result.missed, [False, True, False, True])
    # The fallback box has the detector's convention, learnt from the hits: grown by 10%.
    for i in (1, 3):
        np.testing.assert_allclose(fake.boxes_given[i], fake._grown(i), atol=1e-4)
    assert (result.fallback_s[[0, 2]] == 0).all() and (result.fallback_s[[1, 3]] > 0).all()
    res = aflw2000.evaluate_aflw2000(HalfBlindLandmarker(data), str(aflw_root))
    box = landmarks.box_size(landmarks.landmark_box(data.landmarks))
    assert res["bins"]["(30,60]"] == {"nme": pytest.approx(100 / box[1], rel=1e-4), "count": 1,
                                      "missed": 1, "unscored": 0}
    assert res["bins"]["[0,30]"]["nme"] == pytest.approx(100 / box[3] / 2, rel=1e-4)
    assert res["n_missed"] == 2 and res["count"] == 4 and res["seconds_per_image"] > 0


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


def test_reannotated_landmarks_replace_pt3d(aflw_root, tmp_path):
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 200, (5, 3, 68))  # one row more than the set: a wider release
    names = ["image00003.jpg", "image00000.jpg", "sub/image00001.jpg", "image00002.jpg",
             "image09999.jpg"]
    np.save(tmp_path / "re.npy", points)
    (tmp_path / "re.list").write_text("\n".join(names) + "\n")
    table = aflw2000.read_reannotated(str(tmp_path / "re.npy"), str(tmp_path / "re.list"))
    np.testing.assert_array_equal(table["image00001"], points[2, :2].T)
    data = aflw2000.load_aflw2000(str(aflw_root),
                                  reannotated=(str(tmp_path / "re.npy"),
                                               str(tmp_path / "re.list")))
    np.testing.assert_array_equal(data.landmarks[0], points[1, :2].T)
    np.testing.assert_array_equal(data.landmarks[3], points[0, :2].T)
    np.save(tmp_path / "bad.npy", np.zeros((5, 68, 3)))
    with pytest.raises(aflw2000.Aflw2000FormatError, match=r"expected \[N, 2 or 3, 68\]"):
        aflw2000.read_reannotated(str(tmp_path / "bad.npy"), str(tmp_path / "re.list"))
    (tmp_path / "short.list").write_text("image00000.jpg\n")
    with pytest.raises(aflw2000.Aflw2000FormatError, match="names 1 images but"):
        aflw2000.read_reannotated(str(tmp_path / "re.npy"), str(tmp_path / "short.list"))
    (tmp_path / "other.list").write_text("\n".join(f"image1000{k}.jpg" for k in range(5)))
    with pytest.raises(aflw2000.Aflw2000FormatError, match="lacks 4 images"):
        aflw2000.load_aflw2000(str(aflw_root), reannotated=(str(tmp_path / "re.npy"),
                                                             str(tmp_path / "other.list")))


# -- the real sample ---------------------------------------------------------------------------

def sample_root():
    return shared_path("data", "aflw2000-3d-sample")


def test_real_sample_reader_bins_and_wrapped_angles():
    data = aflw2000.load_aflw2000(sample_root())
    assert len(data.names) == 100 and data.landmarks.shape == (100, 68, 2)
    np.testing.assert_array_equal(np.bincount(landmarks.yaw_bin_index(data.yaw_deg)),
                                  [74, 15, 11])
    assert np.abs(data.angles_deg).max() <= 180
    i = data.names.index("image01530")  # stored (-328.0, -104.6, 334.0) degrees
    stored = aflw2000.read_annotation(os.path.join(sample_root(), "image01530.mat"))[1]
    assert np.degrees(stored[0]) < -300 and np.degrees(stored[2]) > 300
    np.testing.assert_allclose(data.angles_deg[i], [32.03, -104.58, -26.0], atol=0.01)
    # Every recovered triple gives the stored rotation.
    poses = np.stack([aflw2000.read_annotation(p)[1]
                      for p in sorted(glob.glob(os.path.join(sample_root(), "*.mat")))])
    np.testing.assert_allclose(E(np.radians(data.angles_deg)), E(poses[:, :3]), atol=1e-5)
    balanced = aflw2000.load_aflw2000(sample_root(), limit=30)
    np.testing.assert_array_equal(np.bincount(landmarks.yaw_bin_index(balanced.yaw_deg)),
                                  [10, 10, 10])


def test_real_sample_pose_convention_explains_pt3d():
    """(x, -y, z) of pt3d_68 is s R X + t for one face shape X only with R = E(angles)^T."""
    mats = sorted(glob.glob(os.path.join(sample_root(), "*.mat")))
    annotations = [sio.loadmat(m) for m in mats]

    def spread(rotation):
        shapes = []
        for mat in annotations:
            pts = np.asarray(mat["pt3d_68"], np.float64) * np.array([[1.0], [-1.0], [1.0]])
            pts -= pts.mean(axis=1, keepdims=True)
            pose = np.asarray(mat["Pose_Para"], np.float64).ravel()
            shapes.append(rotation(pose).T @ pts / pose[6])
        shapes = np.array(shapes)
        mean = shapes.mean(axis=0)
        rms = np.sqrt(((shapes - mean) ** 2).sum(axis=1).mean(axis=1))
        return float(np.median(rms) / np.sqrt((mean ** 2).sum(axis=0).mean()))

    release = spread(aflw2000.release_rotation)
    untransposed = spread(lambda pose: E(pose[:3]))
    negated = spread(lambda pose: E(-pose[:3]))
    assert release < 0.1  # measured 0.071 (identity and expression differ between faces)
    assert untransposed > 0.5 and negated > release * 1.5  # measured 1.00 and 0.14


def test_real_sample_with_mediapipe_scores_every_image():
    from cpem_jax.detect import mediapipe_landmarker as mpl
    available, reason = mpl.mediapipe_available()
    if not available:
        pytest.skip(reason)
    task = shared_path("assets", "face_landmarker.task")
    try:
        landmarker = mpl.MediaPipeLandmarker(task)
    except OSError as err:
        pytest.skip(f"mediapipe cannot run here: {err}")
    res = aflw2000.evaluate_aflw2000(landmarker, sample_root(), limit=6)
    landmarker.close()
    assert res["count"] == 6 and res["n_unscored"] == 0
    assert all(b["count"] == 2 for b in res["bins"].values())
    assert res["bins"]["[0,30]"]["nme"] < 6.0 and res["mean_of_bins"] < 15.0
