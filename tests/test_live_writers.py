"""Live writers and the causal smoother: frame by frame they give what the offline writers give
for the whole track, and every flushed file is valid."""
import csv
import json

import numpy as np
import pytest

from cpem_jax.export.csv_json import read_json, write_csv
from cpem_jax.export.livelink import read_livelink_csv, write_livelink_csv
from cpem_jax.export.schema import FrameTrack
from cpem_jax.export.smoothing import (OneEuroParams, OnlineOneEuro, SmoothingConfig,
                                       StreamSmoother, one_euro_filter, smooth_track)
from cpem_jax.export.stream_writers import (CsvStreamWriter, JsonLinesStreamWriter,
                                            LiveLinkStreamWriter, read_json_lines)

UNITS = ("eyeBlink_L", "eyeBlink_R", "jawOpen", "browInnerUp_L", "browInnerUp_R",
         "eyeLookIn_L", "eyeLookOut_R", "cheekRaiser_L")  # the last one has no ARKit name


def _track(n=40, fps=25.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0.5, 2.5, n)) / fps  # Uneven steps, as with dropped frames.
    found = np.ones(n, bool)
    found[[7, 8, 20]] = False
    expression = np.clip(0.5 + 0.3 * np.sin(np.arange(n)[:, None] * 0.3 + np.arange(len(UNITS)))
                         + 0.05 * rng.standard_normal((n, len(UNITS))), 0.0, 1.0)
    rotation = 0.2 * rng.standard_normal((n, 3))
    rotation[:, 2] = np.pi - 0.1 + 0.08 * np.arange(n) % (2 * np.pi)  # Roll across +-pi.
    rotation[:, 2] = np.pi - np.mod(np.pi - rotation[:, 2], 2 * np.pi)
    translation = rng.standard_normal((n, 3))
    expression[~found] = rotation[~found] = translation[~found] = 0.0
    return FrameTrack(timestamps=t, face_found=found, expression=expression, unit_names=UNITS,
                      rotation=rotation, translation=translation, fps=fps)


def test_online_one_euro_is_the_offline_filter_sample_by_sample():
    track = _track()
    params = OneEuroParams(min_cutoff=1.2, beta=0.7)
    offline = one_euro_filter(track.expression, track.timestamps, params, track.face_found)
    online = OnlineOneEuro(params)
    for i in range(track.n_frames):
        if not track.face_found[i]:
            online.reset()
            continue
        np.testing.assert_allclose(online(track.expression[i], track.timestamps[i]), offline[i],
                                   atol=1e-6)
    with pytest.raises(ValueError, match="increasing"):
        online(track.expression[0], track.timestamps[-1])


@pytest.mark.parametrize("enabled", [True, False])
def test_stream_smoother_equals_smooth_track(enabled):
    track = _track()
    config = SmoothingConfig(enabled=enabled)
    whole = smooth_track(track, config)
    smoother = StreamSmoother(config)
    for i in range(track.n_frames):
        e, r, t = smoother(track.expression[i], track.rotation[i], track.translation[i],
                           track.timestamps[i], track.face_found[i])
        np.testing.assert_allclose(e, whole.expression[i], atol=2e-6)
        np.testing.assert_allclose(t, whole.translation[i], atol=2e-5)
        # Angles compared on the circle (+-pi are the same roll).
        np.testing.assert_allclose(np.angle(np.exp(1j * (r - whole.rotation[i]))), 0.0,
                                   atol=2e-6)
    if enabled:  # The smoothing did something (the test can tell the two apart).
        assert np.abs(whole.expression - track.expression).max() > 0.01


def test_csv_stream_is_the_offline_csv_row_by_row(tmp_path):
    track = _track()
    write_csv(track, tmp_path / "whole.csv")
    writer = CsvStreamWriter(str(tmp_path / "stream.csv"), UNITS)
    for i in range(track.n_frames):
        writer.write(i, track.timestamps[i], track.face_found[i], track.expression[i],
                     track.rotation[i], track.translation[i])
        if i == 10:  # Flushed: a reader sees the header and 11 whole rows now.
            with open(tmp_path / "stream.csv", newline="") as f:
                rows = list(csv.reader(f))
            assert len(rows) == 12 and all(len(r) == len(rows[0]) for r in rows)
    writer.close()
    assert (tmp_path / "stream.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert writer.rows == track.n_frames
    with pytest.raises(ValueError, match="closed"):
        writer.write(0, 0.0, True, track.expression[0], track.rotation[0], track.translation[0])


def test_json_lines_read_back_complete_and_truncated(tmp_path):
    track = smooth_track(_track())
    path = str(tmp_path / "t.jsonl")
    writer = JsonLinesStreamWriter(path, UNITS, track.fps, SmoothingConfig().to_dict(),
                                   {"live": True})
    for i in range(track.n_frames):
        writer.write(i + 100, track.timestamps[i], track.face_found[i], track.expression[i],
                     track.rotation[i], track.translation[i],
                     raw=(track.expression_raw[i], track.rotation_raw[i],
                          track.translation_raw[i]), extra={"calibrated": i > 5})
    writer.close()
    back = read_json_lines(path)
    np.testing.assert_allclose(back.expression, track.expression, atol=1e-6)
    np.testing.assert_allclose(back.expression_raw, track.expression_raw, atol=1e-6)
    np.testing.assert_array_equal(back.face_found, track.face_found)
    lines = open(path).read().splitlines()
    assert json.loads(lines[0])["live"] is True and len(lines) == track.n_frames + 1
    entry = json.loads(lines[1])
    assert entry["frame"] == 100 and entry["calibrated"] is False and len(entry["blendshapes"]) == 52
    writer.complete_json(str(tmp_path / "t.json"))
    whole = read_json(tmp_path / "t.json")
    np.testing.assert_allclose(whole.rotation, track.rotation, atol=1e-6)
    # A writer killed in the middle of a line: the finished lines still read.
    cut = tmp_path / "cut.jsonl"
    text = open(path).read()
    cut.write_text(text[:text.rindex("\n", 0, len(text) - 1) + 40])
    assert read_json_lines(str(cut)).n_frames == track.n_frames - 1
    (tmp_path / "bad.jsonl").write_text('{"format": "other"}\n{}\n')
    with pytest.raises(ValueError, match="not a cpem-jax JSON Lines track"):
        read_json_lines(str(tmp_path / "bad.jsonl"))


@pytest.mark.parametrize("fps", [60.0, 24.0])
def test_live_link_stream_equals_the_resampled_offline_file(tmp_path, fps):
    track = _track()
    expected_rows = write_livelink_csv(track, tmp_path / "whole.csv", fps=fps)
    writer = LiveLinkStreamWriter(str(tmp_path / "stream.csv"), UNITS, fps=fps)
    written = sum(writer.write(track.timestamps[i], track.expression[i], track.rotation[i])
                  for i in range(track.n_frames))
    writer.close()
    assert written == writer.rows == expected_rows
    codes_a, names_a, values_a = read_livelink_csv(tmp_path / "whole.csv")
    codes_b, names_b, values_b = read_livelink_csv(tmp_path / "stream.csv")
    assert codes_a == codes_b and names_a == names_b
    diff = values_a - values_b
    diff[:, 52:55] = np.angle(np.exp(1j * diff[:, 52:55]))  # Head angles on the circle.
    assert np.abs(diff).max() <= 2e-6
    again = LiveLinkStreamWriter(str(tmp_path / "again.csv"), UNITS, fps=fps)
    again.write(1.0, track.expression[0], track.rotation[0])
    with pytest.raises(ValueError, match="time order"):
        again.write(1.0, track.expression[1], track.rotation[1])


def test_no_preview_window_without_a_display_or_gui(monkeypatch):
    import cv2

    from cpem_jax.retarget.live_window import PreviewWindow, display_available
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display_available():  # Windows / macOS always have one.
        pytest.skip("this platform always has a display")
    assert PreviewWindow.open() is None
    gui = cv2.getBuildInformation().split("GUI:")[1].splitlines()[0].strip()
    if gui != "NONE":
        pytest.skip(f"OpenCV has a GUI backend ({gui}); not opening a window in tests")
    monkeypatch.setenv("DISPLAY", ":0")
    assert display_available() and PreviewWindow.open() is None  # Headless OpenCV: no window.
