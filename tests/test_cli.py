"""The `cpem-jax` command: model convert / info / preview / fetch-ict and its error handling."""
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
