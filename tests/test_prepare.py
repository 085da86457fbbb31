"""`cpem-jax prepare`: inputs and ids, shards, the written layout as `cpem_jax.data` reads it,
resume, bad inputs, and the teacher file.

The end-to-end tests make tiny videos from the shared photo (the face moved a few pixels per
frame) and skip without the shared data; most run with --no-teacher, one with the fit on 3 frames.
"""
import csv
import json
import os

import cv2
import numpy as np
import pytest

from conftest import shared_path
from cpem_jax.cli import main as cli_main
from cpem_jax.cli import prepare_cmd
from cpem_jax.data import cpem_folder
from cpem_jax.io.images import read_image
from cpem_jax.io.video_writer import write_video
from cpem_jax.prepare import (DEFAULT_YAW_THRESHOLD_DEG, expand_inputs, parse_shard,
                              select_shard, shard_of)
from cpem_jax.prepare.layout import VideoPaths, landmark_text


def run_cli(argv, monkeypatch):
    """`cpem-jax prepare ARGV` through the real entry point (registering the command if the
    command table does not list it yet)."""
    if prepare_cmd not in cli_main.COMMANDS:
        monkeypatch.setattr(cli_main, "COMMANDS", cli_main.COMMANDS + (prepare_cmd,))
    return cli_main.main(["prepare", *map(str, argv)])


# -- inputs, ids and shards (no shared data needed) -------------------------------------------

def _touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_ids_from_paths(tmp_path):
    vox = tmp_path / "vox"
    for rel in ("id00025/O_ICgJ0s-_o/00001.mp4", "id00025/O_ICgJ0s-_o/00002.mp4",
                "id00026/abc/00001.mp4", "loose clip.mov", "seq/frames/0001.jpg",
                "seq/frames/0002.jpg", "notes.txt"):
        _touch(str(vox / rel))
    _touch(str(tmp_path / "single" / "1.png"))
    _touch(str(tmp_path / "single" / "2.png"))
    _touch(str(tmp_path / "talk.mp4"))
    _touch(str(tmp_path / "face.JPG"))
    items = expand_inputs([str(vox), str(tmp_path / "single"), str(tmp_path / "talk.mp4"),
                           str(tmp_path / "face.JPG"), str(tmp_path / "nothing.mp4")])
    got = {(i.person_id, i.video_id): (i.kind, i.problem is None) for i in items}
    assert got == {
        ("id00025", "O_ICgJ0s-_o_00001"): ("video", True),
        ("id00025", "O_ICgJ0s-_o_00002"): ("video", True),
        ("id00026", "abc_00001"): ("video", True),
        ("loose_clip", "loose_clip"): ("video", True),
        ("seq", "frames"): ("image_folder", True),
        ("single", "single"): ("image_folder", True),
        ("talk", "talk"): ("video", True),
        ("face", "face"): ("image", True),
        ("nothing", "nothing"): ("missing", False),
    }
    assert [i.key for i in items] == sorted(i.key for i in items)


def test_clashing_ids_and_repeated_inputs(tmp_path):
    _touch(str(tmp_path / "a" / "clip.mp4"))
    _touch(str(tmp_path / "b" / "clip.mp4"))
    items = expand_inputs([str(tmp_path / "b" / "clip.mp4"), str(tmp_path / "a" / "clip.mp4"),
                           str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "a")])
    assert len(items) == 2  # The same file three times is one input.
    first, second = items
    assert first.source.endswith(os.path.join("a", "clip.mp4")) and first.problem is None
    assert "already has" in second.problem and second.source.endswith(
        os.path.join("b", "clip.mp4"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (bad,) = expand_inputs([str(empty)])
    assert "holds no video or image" in bad.problem


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    for p in range(7):
        for v in range(5):
            _touch(str(tmp_path / f"person{p}" / f"video{v}.mp4"))
    items = expand_inputs([str(tmp_path)])
    assert len(items) == 35
    for count in (1, 2, 3, 8):
        shards = [select_shard(items, (k, count)) for k in range(count)]
        keys = [item.key for shard in shards for item in shard]
        assert sorted(keys) == sorted(i.key for i in items)  # Cover, and no key twice.
        assert len(set(keys)) == len(keys)
        for k, shard in enumerate(shards):
            assert all(shard_of(item, count) == k for item in shard)
    # The shard of an input depends on it alone: adding inputs moves no other one.
    _touch(str(tmp_path / "person9" / "extra.mp4"))
    more = {i.key: shard_of(i, 3) for i in expand_inputs([str(tmp_path)])}
    assert all(more[i.key] == shard_of(i, 3) for i in items)


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_text(text):
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text)


def test_landmark_files_use_the_data_convention(tmp_path):
    """Written files put pixel centres at integers (the demo data's convention); the reader
    gives back the project's coordinates."""
    points = np.random.default_rng(0).uniform(10, 200, (68, 2)).astype(np.float32)
    path = tmp_path / "lm.txt"
    path.write_text(landmark_text(points))
    first = [float(v) for v in path.read_text().splitlines()[0].split()]
    np.testing.assert_allclose(first, points[0] - 0.5, atol=1e-3)  # x first, then y.
    np.testing.assert_allclose(cpem_folder.read_landmarks(str(path)), points, atol=1e-3)


def test_reader_joins_per_video_flag_files(tmp_path):
    """A source with front_face_flag/P/V.csv files (and a front_face_flag.csv) is read whole;
    a row given twice is skipped as a duplicate."""
    root = tmp_path / "src"
    crop = np.full((32, 32, 3), 120, np.uint8)
    rows = {("p", "v1"): ["0", "1"], ("p", "v2"): ["1"], ("q", "v1"): ["0"]}
    for (person, video), frames in rows.items():
        paths = VideoPaths(str(root), person, video)
        paths.make_folders()
        for n, _ in enumerate(frames):
            cv2.imwrite(os.path.join(paths.crops, f"{n}.jpg"), crop)
            cv2.imwrite(os.path.join(paths.masks, f"{n}.png"), crop[..., 0])
            for folder in (paths.landmarks, paths.landmarks2d):
                with open(os.path.join(folder, f"{n}.txt"), "w") as f:
                    f.write("1 2\n" * 68)
    with open(root / "front_face_flag.csv", "w") as f:  # q/v1 the old way.
        f.write("person_id,video_id,frame_name,front_face_flag\nq,v1,0,0\n")
    for (person, video), frames in rows.items():
        if person == "p":
            with open(VideoPaths(str(root), person, video).flags, "w") as f:
                f.write("person_id,video_id,frame_name,front_face_flag\n")
                f.writelines(f"{person},{video},{n},{flag}\n" for n, flag in enumerate(frames))
    with open(VideoPaths(str(root), "p", "v2").flags, "a") as f:
        f.write("p,v2,0,0\n")  # Duplicate: the first row (1) stands.
    index = cpem_folder.build_index(str(root))
    assert index.counts() == {"src": {"people": 2, "clips": 3, "frames": 4}}
    flags = {(f.person_id, f.video_id, f.frame_name): f.front_flag for f in index.frames}
    assert flags == {("p", "v1", "0"): False, ("p", "v1", "1"): True, ("p", "v2", "0"): True,
                     ("q", "v1", "0"): False}
    assert [s.reason for s in index.skipped] == ["duplicate row for p/v2/0"]


class _FakeDlib:
    """detect_boxes finds a face on the first crop only; landmarks_in_boxes records its boxes."""

    def __init__(self, first_box):
        self.first_box, self.boxes = np.asarray(first_box, np.float32), []

    def detect_boxes(self, crop):
        found = crop[0, 0, 0] == 0
        return (self.first_box[None] if found else np.zeros((0, 4), np.float32),
                np.ones(int(found), np.float32))

    def landmarks_in_boxes(self, crop, boxes):
        self.boxes.append(np.asarray(boxes[0], np.float64))
        return np.full((1, 68, 2), len(self.boxes), np.float32)


def test_dlib_box_where_the_detector_misses():
    """A crop where dlib's detector misses gets a box placed from the front end's points with the
    box-to-points offset of the video's detected crops."""
    from cpem_jax.detect.tracking import box_from_landmarks, box_offset_from_landmarks
    from cpem_jax.prepare.frontend import Dlib68

    rng = np.random.default_rng(1)
    landmarks = rng.uniform(60, 160, (2, 68, 2)).astype(np.float32)
    landmarks[1] = landmarks[1] * 0.8 + 20  # A smaller, moved face on the second crop.
    crops = np.zeros((2, 224, 224, 3), np.uint8)
    crops[1] = 1  # The fake detector misses this one.
    first_box = [50.0, 40.0, 170.0, 175.0]
    fake = _FakeDlib(first_box)
    points, detected = Dlib68(fake)(crops, landmarks)
    assert detected == 1 and points.shape == (2, 68, 2)
    np.testing.assert_allclose(fake.boxes[0], first_box)
    offset = box_offset_from_landmarks(np.asarray(first_box), landmarks[0])
    np.testing.assert_allclose(fake.boxes[1], box_from_landmarks(landmarks[1], offset), atol=1e-3)


def test_without_dlib_the_front_end_points_are_copied(monkeypatch):
    from cpem_jax.detect import dlib_landmarker
    from cpem_jax.prepare.frontend import Dlib68

    def missing(*args, **kwargs):
        raise ImportError("dlib is not installed; run `pip install dlib-bin`.")

    monkeypatch.setattr(dlib_landmarker, "DlibLandmarker", missing)
    dlib68 = Dlib68()
    assert not dlib68.available and "dlib unavailable" in dlib68.note
    landmarks = np.random.default_rng(2).uniform(0, 224, (3, 68, 2)).astype(np.float32)
    points, detected = dlib68(np.zeros((3, 224, 224, 3), np.uint8), landmarks)
    np.testing.assert_array_equal(points, landmarks)
    assert detected == 0


# -- end to end on small inputs made from the shared photo ------------------------------------

def _face_frames(n, shift=(3, 2), size=(256, 256)):
    """n frames of the shared photo's face, moved by `shift` pixels per frame."""
    photo = read_image(shared_path("data", "images", "JianzhuGuo.jpg"))
    photo = cv2.resize(photo, (photo.shape[1] * size[1] // photo.shape[0], size[1]),
                       interpolation=cv2.INTER_AREA)
    canvas = np.full((size[1] + 40, size[1] + 40, 3), 40, np.uint8)
    frames = []
    for i in range(n):
        frame = canvas.copy()
        x, y = 10 + shift[0] * i, 10 + shift[1] * i
        w = min(photo.shape[1], frame.shape[1] - x)
        frame[y:y + photo.shape[0], x:x + w] = photo[:frame.shape[0] - y, :w]
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """A folder of inputs: two videos (4 and 3 frames), an image folder (3) and an image (1)."""
    root = tmp_path_factory.mktemp("footage")
    write_video(str(root / "alice.mp4"), _face_frames(4), fps=25.0)
    write_video(str(root / "bob.mp4"), _face_frames(3, shift=(-2, 1)), fps=25.0)
    os.makedirs(root / "carol")
    for i, frame in enumerate(_face_frames(3, shift=(1, -2))):
        cv2.imwrite(str(root / "carol" / f"img{i + 1}.jpg"), cv2.cvtColor(frame,
                                                                          cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "dave.png"), cv2.cvtColor(_face_frames(1)[0], cv2.COLOR_RGB2BGR))
    return root


EXPECTED = {("alice", "alice"): 4, ("bob", "bob"): 3, ("carol", "carol"): 3, ("dave", "dave"): 1}


def _clip_counts(index):
    return {(c.person_id, c.video_id): len(c) for c in index.clips}


def _markers(out):
    return {os.path.relpath(os.path.join(d, n), out): os.stat(os.path.join(d, n)).st_mtime_ns
            for d, _, names in os.walk(os.path.join(out, "done")) for n in names}


def test_front_end_only_layout_resume_and_redo(footage, tmp_path, monkeypatch, capsys):
    out = tmp_path / "data"
    inputs = [footage / "alice.mp4", footage / "bob.mp4", footage / "carol",
              footage / "dave.png"]
    assert run_cli([*inputs, "-o", out, "--no-teacher", "--quiet"], monkeypatch) == 0
    assert "4 videos prepared (11 frames" in capsys.readouterr().out
    index = cpem_folder.build_index(str(out), check_images="decode")
    assert _clip_counts(index) == EXPECTED and not index.skipped
    for frame in index.frames[:4]:
        image = cpem_folder.read_image(frame.image_path)
        mask = cpem_folder.read_mask(frame.mask_path)
        assert image.shape == (224, 224, 3) and mask.shape == (224, 224)
        assert set(np.unique(mask)) <= {0.0, 1.0} and 0.1 < mask.mean() < 0.8
        lm = cpem_folder.read_landmarks(frame.landmarks_path)
        lm2 = cpem_folder.read_landmarks(frame.landmarks2d_path)
        assert lm.min() > 0 and lm.max() < 224
        # dlib and the front end find the same face: same points within a few pixels.
        assert np.median(np.linalg.norm(lm - lm2, axis=1)) < 6.0
        # The skin mask covers the nose and not the eyes (front end's points 30, 36-47).
        assert mask[int(lm[30, 1]), int(lm[30, 0])] == 1.0
        assert mask[int(lm[36:42, 1].mean()), int(lm[36:42, 0].mean())] == 0.0
    marker = json.loads((out / "done" / "alice" / "alice.json").read_text())
    assert marker["frames_read"] == 4 and marker["frames_written"] == 4
    assert marker["teacher"] is False and marker["frontal_frames"] == sum(
        f.front_flag for f in index.frames if f.person_id == "alice")
    with open(out / "front_face_flag" / "alice" / "alice.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["front_face_flag"] == "1" for r in rows] == [
        abs(float(r["yaw_deg"])) <= DEFAULT_YAW_THRESHOLD_DEG for r in rows]
    assert sorted(os.listdir(out / "data" / "carol" / "carol")) == [
        "000000.jpg", "000001.jpg", "000002.jpg"]

    # A rerun touches nothing.
    before = _markers(str(out))
    assert run_cli([*inputs, "-o", out, "--no-teacher", "--quiet"], monkeypatch) == 0
    assert "0 videos prepared" in capsys.readouterr().out and _markers(str(out)) == before

    # A half-written video (no marker, a stray file) is redone whole; the others are skipped.
    os.remove(out / "done" / "bob" / "bob.json")
    (out / "data" / "bob" / "bob" / "000077.jpg").write_bytes(b"partial")
    (out / "front_face_flag" / "bob" / "bob.csv.tmp99").write_text("person_id,vid")
    assert run_cli([*inputs, "-o", out, "--no-teacher", "--quiet"], monkeypatch) == 0
    assert "1 videos prepared (3 frames" in capsys.readouterr().out
    after = _markers(str(out))
    assert {k: v for k, v in after.items() if "bob" not in k} == {
        k: v for k, v in before.items() if "bob" not in k}
    assert not (out / "data" / "bob" / "bob" / "000077.jpg").exists()
    assert not (out / "front_face_flag" / "bob" / "bob.csv.tmp99").exists()
    assert _clip_counts(cpem_folder.build_index(str(out))) == EXPECTED


def test_bad_inputs_are_named_and_skipped(footage, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"not a video at all")
    cv2.imwrite(str(bad / "blank.png"), np.full((120, 120, 3), 128, np.uint8))
    out = tmp_path / "data"
    rc = run_cli([bad / "broken.mp4", bad / "blank.png", tmp_path / "missing.mp4",
                  footage / "bob.mp4", "-o", out, "--no-teacher", "--quiet"], monkeypatch)
    captured = capsys.readouterr()
    assert rc == 1
    failed = [line for line in captured.out.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 3
    for name, reason in (("broken.mp4", "cannot be opened as a video"),
                         ("blank.png", "no face"), ("missing.mp4", "does not exist")):
        (line,) = [f for f in failed if name in f]
        assert reason in line
        assert sum(name in line for line in captured.err.splitlines()) == 1  # One line each.
    assert "1 videos prepared" in captured.out
    assert _clip_counts(cpem_folder.build_index(str(out))) == {("bob", "bob"): 3}
    assert not (out / "data" / "blank").exists() and not (out / "done" / "blank").exists()


def test_shards_write_one_folder(footage, tmp_path, monkeypatch, capsys):
    out = tmp_path / "data"
    listed = []
    for k in range(3):
        assert run_cli([footage, "-o", out, "--shard", f"{k}/3", "--dry-run"], monkeypatch) == 0
        listed += [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()
                   if "\t" in line]
    assert sorted(listed) == sorted(f"{p}/{v}" for p, v in EXPECTED)
    for k in range(2):
        assert run_cli([footage, "-o", out, "--shard", f"{k}/2", "--no-teacher", "--quiet"],
                       monkeypatch) == 0
    assert _clip_counts(cpem_folder.build_index(str(out))) == EXPECTED


@pytest.mark.parametrize("argv, message", [
    (["--shard", "2/2"], "--shard must be K/N"),
    (["--max-frames", "0"], "--max-frames must be >= 1"),
])
def test_usage_errors_exit_2_with_one_line(argv, message, tmp_path, monkeypatch, capsys):
    assert run_cli([tmp_path, "-o", tmp_path / "out", *argv], monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    file = tmp_path / "file"
    file.write_text("")
    assert run_cli([tmp_path, "-o", file], monkeypatch) == 2
    assert "is a file" in capsys.readouterr().err


def test_teacher_on_three_frames(footage, tmp_path, monkeypatch, capsys):
    """--no-teacher first, then the teacher: the video is redone with the fit; every teacher row
    names its frame file; the frontal flags follow the teacher's yaw."""
    from cpem_jax.export import load_coefficients

    out = tmp_path / "data"
    video = footage / "alice.mp4"
    args = [video, "-o", out, "--max-frames", "3", "--quiet"]
    assert run_cli([*args, "--no-teacher"], monkeypatch) == 0
    assert run_cli([*args, "--iterations-scale", "0.1", "--no-photometric", "--frontal-yaw", "20"],
                   monkeypatch) == 0
    assert "1 videos prepared (3 frames" in capsys.readouterr().out
    marker = json.loads((out / "done" / "alice" / "alice.json").read_text())
    assert marker["teacher"] and marker["teacher_file"] == os.path.join("teacher", "alice",
                                                                        "alice.npz")
    estimate = load_coefficients(str(out / marker["teacher_file"]))
    assert estimate.n_frames == 3 and estimate.n_found == 3 and estimate.method == "fit"
    with open(out / "teacher" / "alice" / "alice.frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame_index"]) for r in rows] == list(estimate.frame_index)
    index = cpem_folder.build_index(str(out))
    by_name = {f.frame_name: f for f in index.frames}
    assert sorted(by_name) == sorted(r["frame_name"] for r in rows)
    yaw = np.degrees(estimate.rotation[:, 1])
    assert [by_name[r["frame_name"]].front_flag for r in rows] == list(np.abs(yaw) <= 20)
    # The teacher's landmarks are the written ones (both in crop pixels of the same crops).
    lm = cpem_folder.read_landmarks(by_name[rows[0]["frame_name"]].landmarks_path)
    a = estimate.crop_affine[0]
    np.testing.assert_allclose(lm, estimate.landmarks_detected[0] @ a[:, :2].T + a[:, 2],
                               atol=2e-3)
