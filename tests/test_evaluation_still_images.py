"""Still-image benchmarks: the 68-point .pts reader, the ground-truth-box front end, the
estimator loop, and `cpem-jax evaluate --aflw2000 / --landmarks68` (fabricated files with fake
front ends and estimators; the real AFLW2000-3D sample in $CPEM_SHARED when present)."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from conftest import shared_path
from cpem_jax.detect import Detections, FaceLandmarker
from cpem_jax.evaluation import aflw2000, annotated, landmarks, landmarks68, still_images
from test_evaluation_aflw2000 import write_set

# -- the .pts reader -----------------------------------------------------------------------------

def _points(seed=0):
    rng = np.random.default_rng(seed)
    pts = np.stack([rng.uniform(60, 180, 68), rng.uniform(70, 190, 68)], 1)
    pts[36], pts[45] = (80.0, 100.0), (160.0, 100.0)  # outer eye corners 80 px apart
    return pts


def _pts_text(pts):
    """A .pts file as 300-W ships it (two spaces after n_points:, three decimals)."""
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    return f"version: 1\nn_points:  68\n{{\n{body}\n}}\n"


def test_read_pts_hand_written_300w_file(tmp_path):
    lines = ["version: 1", "n_points:  68", "{"]
    lines += [f"{100 + k}.5 {200 + 2 * k}.25" for k in range(68)]
    lines += ["}"]
    (tmp_path / "a.pts").write_text("\n".join(lines))  # no final newline, like some files
    pts = landmarks68.read_pts(str(tmp_path / "a.pts"))
    assert pts.shape == (68, 2) and pts.dtype == np.float64
    np.testing.assert_array_equal(pts[0], [100.5, 200.25])
    np.testing.assert_array_equal(pts[67], [167.5, 334.25])
    # 300-W is 1-based: the top-left pixel's centre (1, 1) is (0.5, 0.5) in the project.
    np.testing.assert_array_equal(landmarks68.pts_to_pixels([[1.0, 1.0]]), [[0.5, 0.5]])
    np.testing.assert_array_equal(landmarks68.pts_to_pixels([[0.0, 0.0]], origin=0),
                                  [[0.5, 0.5]])
    with pytest.raises(ValueError, match="origin"):
        landmarks68.pts_to_pixels(pts, origin=2)


@pytest.mark.parametrize("text, message", [
    ("version: 1\nn_points: 5\n{\n1 2\n}\n", "holds 5 points"),
    ("hello\n", "version: 1"),
    ("version: 1\npoints: 68\n{\n}\n", "n_points: 68"),
    ("version: 1\nn_points: 68\n" + "1 2\n" * 68, r"expected '\{'"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 67 + "1 x\n}\n", "point 67"),
])
def test_read_pts_rejects_bad_files(tmp_path, text, message):
    (tmp_path / "bad.pts").write_text(text)
    with pytest.raises(landmarks68.PtsFormatError, match=message):
        landmarks68.read_pts(str(tmp_path / "bad.pts"))


def test_write_pts_round_trip(tmp_path):
    pts = _points()
    landmarks68.write_pts(str(tmp_path / "r.pts"), pts)
    np.testing.assert_allclose(landmarks68.read_pts(str(tmp_path / "r.pts")), pts, atol=5e-4)


def write_pts_set(root, n=3, nested=True):
    """Images (every pixel = the index) with .pts beside them, in 300-W-like sub-folders."""
    out = []
    for i in range(n):
        folder = root / ("helen" if i % 2 == 0 else "lfpw") / "testset" if nested else root
        folder.mkdir(parents=True, exist_ok=True)
        pts = _points(i)
        (folder / f"face_{i}.pts").write_text(_pts_text(pts + 0.5))   # 1-based on disk
        ext = ".JPG" if i == 1 else ".png"
        cv2.imwrite(str(folder / f"face_{i}{ext}"), np.full((240, 240, 3), i, np.uint8))
        out.append(pts)
    return np.stack(out)


def test_load_landmarks68_recursive_sorted_and_shifted(tmp_path):
    truth = write_pts_set(tmp_path)
    data = landmarks68.load_landmarks68(str(tmp_path))
    assert data.names == ["helen/testset/face_0", "helen/testset/face_2", "lfpw/testset/face_1"]
    assert data.image_paths[2].endswith("face_1.JPG")
    np.testing.assert_allclose(data.landmarks, truth[[0, 2, 1]], atol=1e-3)
    np.testing.assert_allclose(landmarks68.load_landmarks68(str(tmp_path), origin=0).landmarks,
                               truth[[0, 2, 1]] + 1.0, atol=1e-3)
    assert landmarks68.load_landmarks68(str(tmp_path), limit=2).names == data.names[:2]


def test_load_landmarks68_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        landmarks68.load_landmarks68(str(tmp_path / "nope"))
    with pytest.raises(landmarks68.PtsFormatError, match="no .pts files"):
        landmarks68.load_landmarks68(str(tmp_path))
    (tmp_path / "lonely.pts").write_text(_pts_text(_points()))
    with pytest.raises(landmarks68.PtsFormatError, match="has no image lonely"):
        landmarks68.load_landmarks68(str(tmp_path))


def test_landmarks68_scores_known_offsets():
    target = np.stack([_points(0), _points(1)])
    pred = target + np.array([[[2.0, 0.0]], [[0.0, 4.0]]])
    pred[1, 10] = np.nan  # no landmarks at all for image 1 would be a NaN row; one NaN spoils it
    res = landmarks68.landmarks68_scores(pred, target, missed=np.array([False, True]))
    assert res["nme_interocular"] == pytest.approx(100 * 2.0 / 80.0)
    box = landmarks.box_size(landmarks.landmark_box(target[:1]))[0]
    assert res["nme_box"] == pytest.approx(100 * 2.0 / box)
    assert res["count"] == 1 and res["n_unscored"] == 1 and res["n_missed"] == 1
    with pytest.raises(ValueError, match=r"\[N, 68, 2\]"):
        landmarks68.landmarks68_scores(pred[:, :5], target[:, :5])


# -- the ground-truth-box front end ---------------------------------------------------------------

class IndexLandmarker(FaceLandmarker):
    """Fake front end for images whose pixels hold their index: the detector finds the face of
    even images only (its box = the ground-truth extent grown by 10% per side, plus a decoy face
    elsewhere), and started from any box it returns the ground truth shifted by `shift` px."""

    def __init__(self, truth, shift=(1.0, 0.0)):
        self.truth = np.asarray(truth, np.float64)
        self.shift = np.asarray(shift, np.float64)
        self.boxes_given = {}

    def grown(self, i):
        lo, hi = self.truth[i].min(0), self.truth[i].max(0)
        return np.r_[lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)]

    def detect_boxes(self, image):
        i = int(image[0, 0, 0])
        decoy = [1000.0, 1000.0, 1100.0, 1100.0]
        if i % 2:
            return np.array([decoy], np.float32), np.ones(1, np.float32)
        return np.array([decoy, self.grown(i)], np.float32), np.array([0.9, 0.8], np.float32)

    def landmarks_in_boxes(self, image, boxes):
        i = int(image[0, 0, 0])
        self.boxes_given[i] = np.asarray(boxes[0], np.float64)
        return np.repeat((self.truth[i] + self.shift)[None], len(boxes), 0).astype(np.float32)

    def extra(self):
        return "delegated"


def test_pick_face_and_fallback_offset():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 150, 150], [90, 90, 300, 300]], np.float64)
    assert annotated.pick_face(boxes, np.array([60.0, 60, 140, 140])) == 1
    assert annotated.pick_face(boxes, np.array([500.0, 500, 600, 600])) is None
    assert annotated.pick_face(np.zeros((0, 4)), np.array([0.0, 0, 1, 1])) is None
    pts = _points()[None]
    box = annotated.box_in_extent([-0.6, -0.7, 0.6, 0.5], pts[0])
    offset = annotated.fallback_offset(box[None], pts, np.array([True]))
    np.testing.assert_allclose(offset, [-0.6, -0.7, 0.6, 0.5], atol=1e-9)
    np.testing.assert_array_equal(annotated.fallback_offset(box[None], pts, np.array([False])),
                                  annotated.TIGHT_OFFSET)


def test_ground_truth_box_landmarker_sees_only_the_annotated_face():
    truth = np.stack([_points(0), _points(1)])
    inner = IndexLandmarker(truth)
    front = annotated.GroundTruthBoxLandmarker(inner, offset=[-0.6, -0.6, 0.6, 0.6])
    image0, image1 = np.zeros((8, 8, 3), np.uint8), np.ones((8, 8, 3), np.uint8)
    with pytest.raises(RuntimeError, match="set_target"):
        front.detect_boxes(image0)
    front.set_target(truth[0])
    boxes, scores = front.detect_boxes(image0)   # the decoy is dropped
    np.testing.assert_allclose(boxes[0], inner.grown(0), atol=1e-3)
    assert scores.tolist() == [pytest.approx(0.8)] and not front.missed
    found = front.detect(image0)
    assert len(found) == 1 and not front.missed
    front.set_target(truth[1])
    boxes, scores = front.detect_boxes(image1)   # only the decoy: a miss
    lo, hi = truth[1].min(0), truth[1].max(0)
    centre, size = (lo + hi) / 2, hi - lo
    np.testing.assert_allclose(boxes[0], np.r_[centre - 0.6 * size, centre + 0.6 * size],
                               atol=1e-3)
    assert front.missed and scores.tolist() == [0.0] and front.detector_calls == 1
    found = front.detect(image1)
    np.testing.assert_allclose(found.landmarks[0], truth[1] + [1.0, 0.0], atol=1e-3)
    assert front.extra() == "delegated"   # other attributes are the wrapped landmarker's
    with pytest.raises(AttributeError):
        front.detect_video(image1, 0.0)


class FakeEstimator:
    """Stands in for make_estimator(...): runs the front end the way the tracker does
    (detect_boxes, then landmarks_in_boxes) and returns a one-frame VideoEstimate whose model
    landmarks are the front end's, its rotation `rotations[i]` (i = the image's pixel value)."""

    def __init__(self, front_end, rotations, unit_names=("eyeBlink_L", "jawOpen")):
        self.front_end, self.rotations, self.unit_names = front_end, rotations, unit_names
        self.calls = []

    def __call__(self, source, face=0, max_frames=None, progress=True):
        from cpem_jax.estimation import VideoEstimate
        from cpem_jax.geometry.camera import crop_camera
        from cpem_jax.io import read_image
        self.calls.append((source, face, progress))
        image = read_image(source)
        boxes, _ = self.front_end.detect_boxes(image)
        lm = self.front_end.landmarks_in_boxes(image, boxes[:1])
        i = int(image[0, 0, 0])
        affine = np.array([[[0.5, 0.0, 3.0], [0.0, 0.5, -2.0]]])   # image -> crop pixels
        crop_lm = lm @ affine[0, :, :2].T + affine[0, :, 2]
        return VideoEstimate(
            frame_index=np.zeros(1, np.int64), timestamp_s=np.zeros(1), face_found=np.ones(1, bool),
            crop_affine=affine, landmarks_detected=lm, identity=np.zeros(3, np.float32),
            albedo=np.zeros(2, np.float32), expression=np.array([[0.25, 0.5]], np.float32),
            rotation=np.asarray(self.rotations[i], np.float32)[None],
            translation=np.zeros((1, 3), np.float32), lighting=np.zeros((1, 3, 9), np.float32),
            landmarks_fitted=crop_lm, camera=crop_camera(224), unit_names=self.unit_names,
            fps=25.0, face_model="fake", method="fake")


def test_estimate_annotated_reads_landmarks_pose_and_misses(tmp_path):
    truth = np.stack([_points(i) for i in range(3)])
    paths = []
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((240, 240, 3), i, np.uint8))
        paths.append(str(tmp_path / f"{i}.png"))
    front = annotated.GroundTruthBoxLandmarker(IndexLandmarker(truth))
    rotations = np.radians([[1.0, 2.0, 3.0], [0.0, -40.0, 0.0], [5.0, 0.0, 0.0]])
    est = annotated.estimate_annotated(FakeEstimator(front, rotations), front, paths, truth)
    np.testing.assert_array_equal(est.missed, [False, True, False])
    np.testing.assert_allclose(est.landmarks, truth + [1.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(est.rotation, rotations, atol=1e-6)
    np.testing.assert_allclose(est.expression, [[0.25, 0.5]] * 3)
    assert est.unit_names == ["eyeBlink_L", "jawOpen"] and est.errors == [""] * 3
    assert (est.seconds > 0).all()


def test_pose_errors_in_the_release_convention(tmp_path):
    root = write_set(tmp_path, [10.0, -45.0, 70.0])
    data = aflw2000.load_aflw2000(str(root))
    exact = aflw2000.pose_errors_deg(data.project_pose, data)
    assert max(exact["pitch"], exact["yaw"], exact["roll"], exact["geodesic"]) < 1e-3
    # Turning every head 3 degrees further about the camera's y axis: geodesic error exactly 3;
    # for write_set's poses (pitch 5.7, roll 0) that is about 3 degrees of yaw too.
    from cpem_jax.geometry.rotation import euler_to_matrix
    turn = euler_to_matrix(np.radians([0.0, 3.0, 0.0]), xp=np)
    turned = euler_to_matrix(data.project_pose, xp=np) @ turn
    from cpem_jax.geometry.rotation import matrix_to_euler
    rotation = np.asarray(matrix_to_euler(turned), np.float64)
    rotation[1] = np.nan
    res = aflw2000.pose_errors_deg(rotation, data)
    assert res["count"] == 2 and res["geodesic"] == pytest.approx(3.0, abs=1e-3)
    assert res["yaw"] == pytest.approx(3.0, abs=0.2) and np.isnan(res["per_image"][1]).all()
    with pytest.raises(ValueError, match="expected"):
        aflw2000.pose_errors_deg(rotation[:2], data)


# -- the command -----------------------------------------------------------------------------------

@pytest.fixture()
def fake_front_end(monkeypatch):
    """make_landmarker(...) -> an IndexLandmarker on the truth the test registers."""
    holder = {}
    import cpem_jax.detect as detect
    monkeypatch.setattr(detect, "make_landmarker", lambda name="auto", **kw: IndexLandmarker(
        holder["truth"], holder.get("shift", (1.0, 0.0))))
    return holder


def _mkdir(path):
    path.mkdir(parents=True)
    return path


def _run(argv, capsys):
    from cpem_jax.cli.main import main
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_aflw2000_landmarker_only(tmp_path, fake_front_end, capsys):
    root = write_set(_mkdir(tmp_path / "aflw"), [10.0, -45.0, 70.0, 20.0])
    data = aflw2000.load_aflw2000(str(root))
    fake_front_end["truth"] = data.landmarks
    out = tmp_path / "report"
    rc, stdout, _ = _run(["evaluate", "--aflw2000", str(root), "--out", str(out),
                          "--landmarker-only", "--no-progress"], capsys)
    assert rc == 0 and "results.md" in stdout
    res = json.loads((out / "results.json").read_text())
    box = landmarks.box_size(landmarks.landmark_box(data.landmarks))
    expect = 100.0 / box                      # 1 px error everywhere
    assert res["nme_by_yaw_bin"] == pytest.approx([(expect[0] + expect[3]) / 2, expect[1],
                                                   expect[2]], rel=1e-4)
    assert res["nme_mean"] == pytest.approx(np.mean(res["nme_by_yaw_bin"]))
    # One image per bin but the first: the intervals pin those bins (1 px error everywhere).
    spans = res["nme_by_yaw_bin_interval95"]
    assert spans[1] == pytest.approx([expect[1]] * 2) and spans[2] == pytest.approx([expect[2]] * 2)
    low, high = sorted((expect[0], expect[3]))
    assert low * (1 - 1e-5) <= spans[0][0] <= spans[0][1] <= high * (1 + 1e-5)
    assert res["nme_mean_interval95"][0] <= res["nme_mean"] <= res["nme_mean_interval95"][1]
    assert res["n_by_yaw_bin"] == [2, 1, 1] and res["detector_misses"] == 2
    assert res["detector_misses_by_yaw_bin"] == [1, 1, 0]   # images 1 and 3 (odd)
    assert res["pose_mae_deg"] is None and res["seconds_per_image"] > 0
    md = (out / "results.md").read_text()
    assert "| CPEM paper, dense-model fit, 2,000 images | 2.68 | 3.48 | 4.75 | 3.64 |" in md
    assert "3.57" in md and "on 4 images" in md
    assert "raw 68 points" in md and "(miss 1/1)" in md and "95 % bootstrap interval" in md
    assert f"{res['nme_by_yaw_bin'][2]:.2f} [{spans[2][0]:.2f}, {spans[2][1]:.2f}] (miss 0/1)" in md
    assert np.load(out / "predictions.npz")["front_end_landmarks"].shape == (4, 68, 2)


def test_cli_aflw2000_estimator_uses_the_ground_truth_box(tmp_path, fake_front_end, capsys,
                                                          monkeypatch):
    root = write_set(_mkdir(tmp_path / "aflw"), [10.0, -45.0, 70.0])
    data = aflw2000.load_aflw2000(str(root))
    fake_front_end["truth"] = data.landmarks
    made = []

    def fake_make_estimator(method="fit", fit_config=None, face_model=None, checkpoint=None,
                            landmarker=None):
        made.append((method, fit_config, checkpoint))
        est = FakeEstimator(landmarker, {i: data.project_pose[i] for i in range(3)})
        made.append(est)
        return est

    import cpem_jax.estimation.estimate as estimate_lib
    monkeypatch.setattr(estimate_lib, "make_estimator", fake_make_estimator)
    out = tmp_path / "report"
    rc, _, err = _run(["evaluate", "--aflw2000", str(root), "--out", str(out),
                       "--max-images", "3", "--no-progress"], capsys)
    assert rc == 0, err
    method, config, checkpoint = made[0]
    assert method == "fit" and checkpoint is None
    assert config.identity_landmark_iters == 300      # the default fit, not a reduced one
    assert [c[1:] for c in made[1].calls] == [(0, False)] * 3
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "fit" and res["detector_misses"] == 1   # image 1 (odd) missed
    assert res["pose_mae_deg"]["yaw"] == pytest.approx(0.0, abs=1e-3)
    assert res["pose_geodesic_deg"] == pytest.approx(0.0, abs=1e-3)
    box = landmarks.box_size(landmarks.landmark_box(data.landmarks))
    assert res["nme_by_yaw_bin"] == pytest.approx(list(100.0 / box), rel=1e-4)
    assert res["front_end_only"]["detector_misses"] == 1
    assert [p["missed"] for p in res["per_image"]] == [False, True, False]
    md = (out / "results.md").read_text()
    assert "ours: fit (IndexLandmarker front end), model landmarks" in md
    assert "Head pose" in md and "geodesic" in md


def test_cli_landmarks68(tmp_path, fake_front_end, capsys):
    root = tmp_path / "w300"
    truth = write_pts_set(root)
    fake_front_end["truth"] = truth     # indexed by the pixel value = the creation index
    fake_front_end["shift"] = (1.0, 1.0)
    out = tmp_path / "report"
    rc, _, err = _run(["evaluate", "--landmarks68", str(root), "--out", str(out),
                       "--landmarker-only", "--no-progress"], capsys)
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["n_images"] == 3 and res["pts_origin"] == 1
    assert res["nme_interocular"] == pytest.approx(100 * np.sqrt(2.0) / 80.0, rel=1e-4)
    assert res["detector_misses"] == 1     # face_1 (odd index)
    assert [p["front_end_missed"] for p in res["per_image"]] == [False, False, True]
    assert "NME inter-ocular" in (out / "results.md").read_text()
    # Read as 0-based, the truth moves by (+1, +1) onto the predictions: no error left.
    rc, _, _ = _run(["evaluate", "--landmarks68", str(root), "--out", str(out),
                     "--landmarker-only", "--pts-origin", "0", "--no-progress"], capsys)
    res0 = json.loads((out / "results.json").read_text())
    assert rc == 0 and res0["pts_origin"] == 0
    assert res0["nme_interocular"] == pytest.approx(0.0, abs=2e-3)   # .pts rounding


@pytest.mark.parametrize("extra, message", [
    (["--aflw2000", "{missing}"], "is not a folder"),
    (["--landmarks68", "{missing}"], "is not a folder"),
    (["--aflw2000", "{empty}"], "no .mat files"),
    (["--landmarks68", "{empty}"], "no .pts files"),
    (["--aflw2000", "{empty}", "--method", "net", "--checkpoint", "{missing}"],
     "does not exist"),
    (["--aflw2000", "{empty}", "--landmarker-only", "--method", "fit"], "front end alone"),
    (["--aflw2000", "{empty}", "--max-images", "0"], "--max-images must be >= 1"),
    (["--data", "{empty}", "--max-images", "3", "--method", "fit"], "applies to --aflw2000"),
    (["--data", "{empty}"], "needs one of"),
])
def test_cli_still_image_errors_are_one_line_exit_2(tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    argv = ["evaluate", "--out", str(tmp_path / "r")] + [
        a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in extra]
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


# -- real files ------------------------------------------------------------------------------------

def _real_front_end(name):
    if name == "mediapipe":
        from cpem_jax.detect import mediapipe_landmarker as mpl
        available, reason = mpl.mediapipe_available()
        if not available:
            pytest.skip(reason)
        shared_path("assets", "face_landmarker.task")
    else:
        pytest.importorskip("dlib")


@pytest.mark.parametrize("front_end", ["mediapipe", "dlib"])
def test_cli_real_aflw_sample_landmarker_only(tmp_path, capsys, front_end):
    root = shared_path("data", "aflw2000-3d-sample")
    _real_front_end(front_end)
    out = tmp_path / "report"
    rc, _, err = _run(["evaluate", "--aflw2000", root, "--out", str(out), "--landmarker",
                       front_end, "--landmarker-only", "--max-images", "3", "--no-progress"],
                      capsys)
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["n_images"] == 3 and res["n_by_yaw_bin"] == [1, 1, 1]
    assert res["front_end"] == front_end and len(res["nme_by_yaw_bin"]) == 3
    assert all(np.isfinite(res["nme_by_yaw_bin"])) and res["unscored"] == 0
    assert res["nme_by_yaw_bin"][0] < 6.0      # the frontal image (image00002)
    assert "the shared sample holds 100" in (out / "results.md").read_text()


def test_real_aflw_image_as_a_300w_pts_file_scores_the_same(tmp_path, capsys):
    """A .pts written by hand (1-based, as 300-W) from an AFLW2000-3D image's landmarks gives
    the same box NME through --landmarks68 as through --aflw2000."""
    sample = shared_path("data", "aflw2000-3d-sample")
    _real_front_end("mediapipe")
    pts, _ = aflw2000.read_annotation(os.path.join(sample, "image00002.mat"))
    folder = tmp_path / "pts"
    folder.mkdir()
    shutil.copy(os.path.join(sample, "image00002.jpg"), folder / "image00002.jpg")
    # pt3d_68 is in the project's continuous pixel frame here (aflw2000 module doc); 1-based
    # 300-W coordinates are half a pixel larger.
    (folder / "image00002.pts").write_text(_pts_text(pts + 0.5))
    only = tmp_path / "aflw"
    only.mkdir()
    for ext in (".jpg", ".mat"):
        shutil.copy(os.path.join(sample, "image00002" + ext), only / ("image00002" + ext))
    rc, _, err = _run(["evaluate", "--landmarks68", str(folder), "--out", str(tmp_path / "a"),
                       "--landmarker", "mediapipe", "--landmarker-only", "--no-progress"],
                      capsys)
    assert rc == 0, err
    rc, _, err = _run(["evaluate", "--aflw2000", str(only), "--out", str(tmp_path / "b"),
                       "--landmarker", "mediapipe", "--landmarker-only", "--no-progress"],
                      capsys)
    assert rc == 0, err
    pts_res = json.loads((tmp_path / "a" / "results.json").read_text())
    aflw_res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert pts_res["nme_box"] == pytest.approx(aflw_res["nme_by_yaw_bin"][0], abs=0.01)
    assert pts_res["nme_interocular"] > pts_res["nme_box"]   # eyes closer than the box size
    assert pts_res["nme_box"] < 6.0


def test_cli_aflw2000_scores_the_3d_convention_points_where_the_model_has_them(
        tmp_path, fake_front_end, capsys, monkeypatch):
    """With the model's 3D-convention iBUG points (`face_model.ibug68_3d`) the headline scores
    them, and the model's own landmark vertices get their own block and row."""
    root = write_set(_mkdir(tmp_path / "aflw"), [10.0, -45.0, 70.0])
    data = aflw2000.load_aflw2000(str(root))
    fake_front_end["truth"] = data.landmarks
    from cpem_jax.evaluation import still_images

    def fake_estimate(landmarker, front, make_estimator, data, progress, desc, face_model):
        n = len(data.names)
        return annotated.EstimatorPredictions(
            landmarks=data.landmarks + [2.0, 0.0], rotation=np.zeros((n, 3)),
            expression=np.zeros((n, 1)), unit_names=["jawOpen"], missed=np.zeros(n, bool),
            seconds=np.ones(n), cpu_s=np.ones(n), errors=[""] * n,
            landmarks_3d68=data.landmarks + [1.0, 0.0])

    import cpem_jax.estimation.estimate as estimate_lib
    monkeypatch.setattr(estimate_lib, "make_estimator", lambda **kw: object())
    monkeypatch.setattr(still_images, "_estimate", fake_estimate)
    out = tmp_path / "report"
    rc, _, err = _run(["evaluate", "--aflw2000", str(root), "--out", str(out),
                       "--no-progress"], capsys)
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    box = landmarks.box_size(landmarks.landmark_box(data.landmarks))
    assert res["points"] == "3d68"
    assert res["nme_by_yaw_bin"] == pytest.approx(list(100.0 / box), rel=1e-4)
    assert res["model_68"]["nme_by_yaw_bin"] == pytest.approx(list(200.0 / box), rel=1e-4)
    assert res["per_image"][0]["nme_model_68"] == pytest.approx(200.0 / box[0], rel=1e-4)
    assert np.load(out / "predictions.npz")["landmarks_3d68"].shape == (3, 68, 2)
    md = (out / "results.md").read_text()
    assert "the model's 3D-convention 68 vertices" in md
    assert "the model's own 68 landmark vertices" in md
