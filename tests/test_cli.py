"""The `cpem-jax` command: model convert / info / preview / fetch-ict / fetch-landmarker, the
`--landmarker-task` flag, and their error handling."""
import os

import cv2
import numpy as np

from cpem_jax.cli.main import main


def test_convert_prints_counts_and_info_reads_it(fake_ict_zip, tmp_path, capsys):
    out = tmp_path / "fake.npz"
    assert main(["model", "convert", str(fake_ict_zip), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6706 vertices" in printed and "2 expression" in printed and "3 identity" in printed
    assert out.exists()
    assert main(["model", "info", "--face-model", str(out)]) == 0
    assert "jawOpen, eyeBlink_L" in capsys.readouterr().out


def test_preview_writes_a_png(fake_ict_zip, tmp_path, capsys):
    model = tmp_path / "fake.npz"
    main(["model", "convert", str(fake_ict_zip), "-o", str(model)])
    png = tmp_path / "preview.png"
    assert main(["model", "preview", "--face-model", str(model), "-o", str(png),
                 "--expressions", "jawOpen", "--size", "96"]) == 0
    image = cv2.imread(str(png))
    assert image.shape == (96, 192, 3)
    assert image.std() > 5  # Something was drawn.


def test_errors_are_one_line_with_exit_status_2(fake_ict_zip, tmp_path, capsys):
    model = tmp_path / "fake.npz"
    main(["model", "convert", str(fake_ict_zip), "-o", str(model)])
    capsys.readouterr()
    assert main(["model", "preview", "--face-model", str(model), "-o",
                 str(tmp_path / "x.png"), "--expressions", "smile"]) == 2
    err = capsys.readouterr().err
    assert "unknown expression unit 'smile'" in err and not os.path.exists(tmp_path / "x.png")
    assert main(["model", "convert", str(tmp_path / "missing.zip"), "-o", str(model)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["model", "convert", "--bfm", "x.mat", "-o", str(model)]) == 2
    assert "--bfm-expression" in capsys.readouterr().err


def test_fetch_ict_fails_clearly_offline(tmp_path, capsys, monkeypatch):
    from cpem_jax.face_model import fetch
    monkeypatch.setattr(fetch, "ICT_ARCHIVE_URL", "http://127.0.0.1:9/ICT-FaceKit.zip")
    monkeypatch.setattr(fetch.fetch_ict, "__defaults__", ("http://127.0.0.1:9/ICT-FaceKit.zip",
                                                          2.0))
    assert main(["model", "fetch-ict", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "could not download ICT-FaceKit" in err and "--face-model" in err
    assert not any(p.endswith(".part") for p in os.listdir(tmp_path))


def test_fetch_landmarker_downloads_and_checks_the_bundle(tmp_path, capsys):
    from conftest import shared_path
    source = shared_path("assets", "face_landmarker.task")
    out = tmp_path / "models"
    out.mkdir()
    assert main(["model", "fetch-landmarker", str(out), "--url", f"file://{source}"]) == 0
    printed = capsys.readouterr().out
    path = out / "face_landmarker.task"
    assert path.read_bytes() == open(source, "rb").read()
    assert "sha256 checked" in printed and f"--landmarker-task {path}" in printed


def test_fetch_landmarker_fails_clearly_offline_or_on_another_file(tmp_path, capsys):
    assert main(["model", "fetch-landmarker", str(tmp_path / "a.task"),
                 "--url", "http://127.0.0.1:9/face_landmarker.task"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not download face_landmarker.task" in err
    other = tmp_path / "other.bin"
    other.write_bytes(b"not a model bundle")
    assert main(["model", "fetch-landmarker", str(tmp_path / "b.task"),
                 "--url", f"file://{other}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the expected" in err
    assert sorted(os.listdir(tmp_path)) == ["other.bin"]      # nothing partial left behind


def test_landmarker_task_flag_on_every_front_end_command(tmp_path, capsys, monkeypatch):
    from cpem_jax.cli import main as cli_main
    from cpem_jax.cli.options import use_landmarker_task
    from cpem_jax.detect.mediapipe_task import TASK_ENV, find_task
    parser = cli_main.build_parser()
    for command in ("retarget", "fit", "calibrate", "prepare", "evaluate"):
        sub = cli_main._subparser(parser, command)
        assert "--landmarker-task" in sub._option_string_actions, command
    # A bad path: one line naming the fix, before any work.
    monkeypatch.delenv(TASK_ENV, raising=False)
    assert main(["evaluate", "--aflw2000", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--landmarker-task", str(tmp_path / "absent.task")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cpem-jax model fetch-landmarker" in err
    assert not (tmp_path / "out").exists() and TASK_ENV not in os.environ
    # A good one is what every MediaPipe front end of the run finds first.
    from conftest import shared_path
    source = shared_path("assets", "face_landmarker.task")
    copy = tmp_path / "copy.task"
    copy.write_bytes(open(source, "rb").read())
    monkeypatch.setenv(TASK_ENV, source)          # restored after the test
    use_landmarker_task(cli_main.parse_args(["fit", "x.mp4", "-o", str(tmp_path / "o"),
                                             "--landmarker-task", str(copy)]))
    assert find_task() == str(copy)
