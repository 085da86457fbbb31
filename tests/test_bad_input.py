"""Bad input to `cpem-jax retarget` / `fit`: one line naming the fix, the right exit status, no
traceback, nothing computed lost and no corrupt file left behind.

Ctrl-C is tested on the command run in a subprocess (a signal must reach a real process); the
other cases call `main` in this process, with the estimator replaced where the estimate itself
does not matter (`fake_estimator`, from test_retarget_cli).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import imageio.v2 as imageio
import numpy as np
import pytest

from cpem_jax.cli.main import main
from cpem_jax.retarget import pipeline as pipeline_module

from conftest import REPO_ROOT, shared_path
from test_retarget_cli import (N_FRAMES, SIZE, fake_estimator, model_npz, tiny_video,  # noqa: F401
                               unit_model)

pytestmark = pytest.mark.filterwarnings("ignore:os.fork")


def _error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ------------------------------------------------------------------ the output folder


@pytest.mark.parametrize("kind,expected", [
    ("a_file", "is an existing file, not a folder"),
    ("below_a_file", "which is a file, not a folder"),
    ("not_writable", "cannot write into the output folder"),
])
def test_output_folder_problems_exit_2_before_any_work(kind, expected, fake_estimator, tmp_path,
                                                       capsys):
    _, calls = fake_estimator
    video = tmp_path / "in.mp4"
    tiny_video(video)
    (tmp_path / "notes.txt").write_text("x")
    if kind == "a_file":
        out = str(tmp_path / "notes.txt")
    elif kind == "below_a_file":
        out = str(tmp_path / "notes.txt" / "out")
    else:  # /sys refuses new entries even to root, where permission bits would not.
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("needs Linux's /sys to make a folder no one may write to")
        out = "/sys/cpem-jax-out"
    for command in ("retarget", "fit"):
        assert main([command, str(video), "-o", out, "--quiet"]) == 2
        lines = _error_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("cpem-jax: error: -o" if kind != "not_writable"
                                                       else "cpem-jax: error: cannot write")
        assert expected in lines[0]
    assert calls == []  # refused before the estimator ran


def test_an_output_that_cannot_be_written_is_reported_and_the_others_kept(
        fake_estimator, tmp_path, monkeypatch, capsys):
    video, out = tmp_path / "in.mp4", tmp_path / "out"
    tiny_video(video)

    def disk_full(track, path, **kwargs):
        with open(path, "w") as f:
            f.write("Timecode,")  # a partial file, then the error
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(pipeline_module, "write_livelink_csv", disk_full)
    assert main(["retarget", str(video), "-o", str(out), "--outputs", "csv,livelink,json",
                 "--quiet"]) == 1
    assert _error_lines(capsys)[-1].startswith(
        "cpem-jax: livelink not written: No space left on device")
    assert sorted(os.listdir(out)) == ["blendshapes.csv", "blendshapes.json", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["outputs"]) == {"csv", "json"} and "livelink" in summary["failures"]


# ------------------------------------------------------------------ faces


def test_face_index_past_the_faces_found_names_the_count(model_npz, tmp_path, capsys):
    image = shared_path("data", "images", "trump_hillary.jpg")
    status = main(["retarget", image, "-o", str(tmp_path / "out"), "--face", "5",
                   "--face-model", model_npz, "--landmarker", "dlib", "--outputs", "csv",
                   "--quiet"])
    assert status == 2
    line = _error_lines(capsys)[-1]
    assert "at most 2 faces were found" in line and "--face must be 0..1" in line


def test_no_face_hint_mentions_orientation_and_lighting(model_npz, tmp_path, capsys):
    image = tmp_path / "blank.png"
    imageio.imwrite(str(image), np.full((120, 160, 3), 200, np.uint8))
    assert main(["retarget", str(image), "-o", str(tmp_path / "out"), "--face-model", model_npz,
                 "--landmarker", "dlib", "--quiet"]) == 2
    line = _error_lines(capsys)[-1]
    assert "no face found" in line and "upright" in line and "lit" in line


# ------------------------------------------------------------------ avatars


def smile_frown_avatar(path):
    from cpem_jax.export.gltf import write_glb
    vertices = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    deltas = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    write_glb(path, vertices, triangles, deltas, ("Smile", "Frown"))


def test_avatar_matching_nothing_is_refused_before_the_fit(fake_estimator, tmp_path, capsys):
    _, calls = fake_estimator
    video, avatar = tmp_path / "in.mp4", tmp_path / "blob.glb"
    tiny_video(video)
    smile_frown_avatar(avatar)
    # Only the avatar asked for: nothing else to make, so nothing is done.
    assert main(["retarget", str(video), "-o", str(tmp_path / "a"), "--avatar", str(avatar),
                 "--outputs", "avatar", "--quiet"]) == 2
    line = _error_lines(capsys)[-1]
    assert "none of its 2 morph targets (Smile, Frown)" in line and "--avatar-map" in line
    assert calls == []
    # With the other outputs: they are made, the avatar is not, exit status 1.
    out = tmp_path / "b"
    assert main(["retarget", str(video), "-o", str(out), "--avatar", str(avatar),
                 "--outputs", "csv,avatar", "--quiet"]) == 1
    lines = _error_lines(capsys)
    assert "rename the shape keys to ARKit names" in lines[-1] and len(calls) == 1
    assert sorted(os.listdir(out)) == ["blendshapes.csv", "summary.json"]
    assert "Smile" in json.loads((out / "summary.json").read_text())["failures"]["avatar"]


def test_avatar_map_makes_the_avatar_move(fake_estimator, tmp_path, capsys):
    video, avatar, table = tmp_path / "in.mp4", tmp_path / "blob.glb", tmp_path / "map.json"
    tiny_video(video)
    smile_frown_avatar(avatar)
    table.write_text(json.dumps({"Smile": "mouthSmileLeft", "Frown": "jawOpen"}))
    out = tmp_path / "out"
    assert main(["retarget", str(video), "-o", str(out), "--avatar", str(avatar),
                 "--avatar-map", str(table), "--outputs", "avatar", "--quiet"]) == 0
    assert "avatar: 2 targets driven" in capsys.readouterr().out
    table.write_text(json.dumps({"Smile": "grin"}))
    assert main(["retarget", str(video), "-o", str(out), "--avatar", str(avatar),
                 "--avatar-map", str(table), "--quiet"]) == 2
    assert "'grin' is neither an ARKit blendshape name" in _error_lines(capsys)[-1]


# ------------------------------------------------------------------ Ctrl-C


def _run_and_interrupt(args, trigger, delay, cwd, code=None, timeout=300):
    """Runs the command (or Python `code`) in its own process group, sends SIGINT to the group
    (as a terminal's Ctrl-C does) `delay` s after `trigger` shows on stderr (None: after
    `delay` s); returns (exit status, seconds from SIGINT to exit, stderr lines)."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.path.join(REPO_ROOT, "tests"))
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m",
                                                         "cpem_jax.cli.main", *args]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    err = b""
    start = time.time()
    try:
        if trigger is not None:
            while trigger.encode() not in err:
                chunk = process.stderr.read1(4096)
                assert chunk, f"ended before {trigger!r}: {err.decode()[-2000:]}"
                err += chunk
        time.sleep(delay)
        assert process.poll() is None, f"ended before the interrupt: {err.decode()[-2000:]}"
        sent = time.time()
        os.killpg(process.pid, signal.SIGINT)
        err += process.stderr.read()
        status = process.wait(timeout=timeout)
        stopped = time.time() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert time.time() - start < timeout
    return status, stopped, [line for line in err.decode().splitlines() if line.strip()]


def test_ctrl_c_during_the_fit_stops_at_once_with_one_line(model_npz, tmp_path):
    video = shared_path("data", "videos", "d0.mp4")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"frames": 78, "old": "a complete earlier run"}')
    status, stopped, lines = _run_and_interrupt(
        ["retarget", video, "-o", str(out), "--face-model", model_npz, "--landmarker", "dlib"],
        trigger="detecting", delay=5.0, cwd=str(tmp_path))
    assert status == 130 and stopped < 2.0, (status, stopped, lines)
    ours = [line for line in lines if "cpem-jax" in line or "Traceback" in line
            or "Error" in line or "Exception" in line]
    assert len(ours) == 1, lines
    assert re.fullmatch(r"cpem-jax: interrupted after \d+ frames \(.+\); nothing written",
                        ours[0]), lines
    assert ours[0] == lines[-1]
    assert os.listdir(out) == []  # the stale summary is gone, nothing half-written is left


# A run whose estimate is known at once (`known_estimate`) and whose preview is slow, so that
# SIGINT arrives while the preview's encoder is writing.
SLOW_PREVIEW = """
import sys, time
import numpy as np
from cpem_jax.cli.main import main
from cpem_jax.face_model import cache
from cpem_jax.retarget import pipeline, preview
from test_retarget_cli import known_estimate

model = cache.load_model(sys.argv[1])
estimate = known_estimate(model)

class Estimator:
    def __init__(self, *args, **kwargs):
        self.model = model
    def __call__(self, *args, **kwargs):
        return estimate

def slow(frames):
    for i, frame in enumerate(frames):
        if i == 2:
            sys.stderr.write("PREVIEW STARTED\\n")
            sys.stderr.flush()
        time.sleep(1.0)
        yield frame

original = preview.preview_frames
preview.preview_frames = lambda *a, **k: slow(original(*a, **k))
pipeline.make_estimator = Estimator
pipeline.default_landmarker = lambda name="auto": None
sys.exit(main(["retarget", sys.argv[2], "-o", sys.argv[3], "--preview-size", "32", "--quiet"]))
"""


def test_ctrl_c_while_writing_keeps_complete_outputs_and_no_partial_file(model_npz, tmp_path):
    video, out = tmp_path / "in.mp4", tmp_path / "out"
    tiny_video(video)
    out.mkdir()
    (out / "summary.json").write_text('{"old": "a complete earlier run"}')
    code = SLOW_PREVIEW.replace("sys.argv[1]", repr(model_npz)).replace(
        "sys.argv[2]", repr(str(video))).replace("sys.argv[3]", repr(str(out)))
    status, stopped, lines = _run_and_interrupt(None, "PREVIEW STARTED", 0.3, str(tmp_path),
                                                code=code)
    assert status == 130 and stopped < 2.0, (status, stopped, lines)
    assert lines[0] == "PREVIEW STARTED" and len(lines) == 2, lines
    written = ["coefficients.npz", "coefficients.json", "blendshapes.csv", "blendshapes.json",
               "livelink.csv", "face.glb"]
    assert lines[1] == (f"cpem-jax: interrupted after {N_FRAMES} frames (writing preview.mp4); "
                        f"outputs up to frame {N_FRAMES - 1} written: {', '.join(written)} "
                        "(listed in summary.json)")
    time.sleep(1.0)  # an encoder left running would now finish its file
    assert sorted(os.listdir(out)) == sorted(written + ["summary.json"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"]["phase"] == "writing preview.mp4"
    assert sorted(f for files in summary["outputs"].values() for f in files) == sorted(written)
    assert "old" not in summary


# ------------------------------------------------------------------ noise on stderr


def test_damaged_video_prints_no_decoder_lines(tmp_path):
    source = shared_path("data", "videos", "d0.mp4")
    data = bytearray(open(source, "rb").read())
    noise = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    for offset in (0.3, 0.5, 0.7):
        start = int(len(data) * offset)
        data[start:start + 2000] = noise
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)  # `main` in this process may have set it
    decode = ("import cv2, sys\ncapture = cv2.VideoCapture(sys.argv[1])\n"
              "while capture.read()[0]:\n    pass\n")
    plain = subprocess.run([sys.executable, "-c", decode, str(damaged)], capture_output=True,
                           text=True, timeout=300, env=env)
    assert "[h264" in plain.stderr  # the damage does make FFmpeg talk
    # --face 3 of a one-face video: the whole video is decoded, then one error line.
    run = subprocess.run([sys.executable, "-m", "cpem_jax.cli.main", "retarget", str(damaged),
                          "-o", str(tmp_path / "out"), "--face", "3", "--landmarker", "dlib",
                          "--outputs", "csv", "--quiet"],
                         capture_output=True, text=True, timeout=600, env=env)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and not any("[h264" in line for line in lines), lines
    assert lines[-1].startswith("cpem-jax: error: face 3") and "--face must be 0..0" in lines[-1]


def test_corrupt_coefficient_file_error_does_not_quote_numpy(tmp_path):
    from cpem_jax.export.coefficients import load_coefficients
    path = tmp_path / "coefficients.npz"
    path.write_bytes(os.urandom(300))
    with pytest.raises(ValueError) as error:
        load_coefficients(str(path))
    assert "is not a readable .npz file" in str(error.value)
    assert "pickle" not in str(error.value)


# ------------------------------------------------------------------ abbreviated flags


def test_flags_are_never_abbreviated(tmp_path, capsys):
    video = str(tmp_path / "in.mp4")
    with pytest.raises(SystemExit) as stop:
        main(["retarget", video, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert "-o/--output" in capsys.readouterr().err  # --out did not pass for --output
    with pytest.raises(SystemExit) as stop:
        main(["retarget", video, "-o", str(tmp_path / "out"), "--livelink", "zero"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --livelink zero" in err and "--livelink-eyes" in err
    assert not (tmp_path / "out").exists()
