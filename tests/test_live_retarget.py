"""`cpem-jax retarget --realtime / --live` end to end on a shared video: the files written row by
row are valid after the run and after Ctrl-C, the VMC stream carries every frame's values to a
receiver during the run, the summary's `live` object is there and sane, and `cpem-jax calibrate`
-> `--identity` round-trips."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from pythonosc import dispatcher, osc_server

from conftest import REPO_ROOT, shared_path
from cpem_jax.export.arkit import ARKIT_NAMES, build_arkit_mapping
from cpem_jax.export.csv_json import csv_header, read_json
from cpem_jax.export.livelink import read_livelink_csv
from cpem_jax.export.stream_writers import read_json_lines
from cpem_jax.export.vmc import vmc_names

FRAMES = 30  # 1.2 s of d0.mp4 (25 fps), replayed in real time.


def _command(*args):
    return [sys.executable, "-m", "cpem_jax.cli.main", "retarget", *args]


def _env():
    return dict(os.environ, PYTHONPATH=REPO_ROOT)


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def read_json_lines_entries(out):
    """The per-frame entries of blendshapes.jsonl (after its header line)."""
    return [json.loads(line) for line in (out / "blendshapes.jsonl").read_text().splitlines()[1:]]


def _check_files(out, units, complete=True):
    """The row-by-row files parse whole; returns (CSV rows, the JSON Lines track)."""
    header, rows = _read_csv(out / "blendshapes.csv")
    assert header == csv_header(build_arkit_mapping(units))
    assert rows and all(len(r) == len(header) for r in rows)
    frames = [int(r[0]) for r in rows]
    assert frames == sorted(set(frames))  # Source frame indices, increasing.
    values = np.array([[float(v) for v in r[3:55]] for r in rows])
    assert np.all((values >= 0) & (values <= 1))
    track = read_json_lines(str(out / "blendshapes.jsonl"))
    assert track.n_frames == len(rows)
    np.testing.assert_allclose(track.timestamps, [float(r[1]) for r in rows], atol=1e-6)
    codes, names, live_link = read_livelink_csv(out / "livelink.csv")
    span = track.timestamps[-1] - track.timestamps[0]
    assert len(codes) == int(np.floor(span * 60 + 1e-6)) + 1 and live_link.shape[1] == 61
    if complete:
        whole = read_json(out / "blendshapes.json")
        np.testing.assert_allclose(whole.expression, track.expression, atol=1e-6)
    return rows, track


@pytest.fixture
def receiver():
    """An OSC server on a free loopback port, handling packets one at a time in arrival order:
    (port, messages), each message (address, args)."""
    messages = []
    table = dispatcher.Dispatcher()
    table.set_default_handler(lambda address, *args: messages.append((address, args)))
    server = osc_server.BlockingOSCUDPServer(("127.0.0.1", 0), table)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], messages
    server.shutdown()
    server.server_close()


def _bundles(messages, first_name):
    """Messages split into frames: each frame starts with the first blendshape's value."""
    starts = [i for i, (address, args) in enumerate(messages)
              if address == "/VMC/Ext/Blend/Val" and args[0] == first_name]
    return [messages[a:b] for a, b in zip(starts, starts[1:] + [len(messages)])]


def test_realtime_replay_writes_valid_rows_streams_vmc_and_reports_live_figures(tmp_path,
                                                                              receiver):
    video = shared_path("data", "videos", "d0.mp4")
    shared_path("assets", "face_landmarker.task")
    port, messages = receiver
    out = tmp_path / "out"
    done = subprocess.run(
        _command(video, "-o", str(out), "--realtime", "--max-frames", str(FRAMES),
                 "--calibration-frames", "4", "--vmc", f"127.0.0.1:{port}",
                 "--landmarker", "mediapipe", "--no-compile-cache", "--quiet"),
        cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    units = tuple(read_json(out / "blendshapes.json").unit_names)
    rows, track = _check_files(out, units)

    live = summary["live"]
    n = live["frames_processed"]
    assert n == len(rows) == summary["frames"] and n + live["dropped_frames"] == FRAMES
    assert live["realtime"] is True and live["source_fps"] == 25.0
    assert 0 < live["frames_per_second"] <= 25.0 * 1.1  # A replay cannot outrun its source.
    assert 0 < live["latency_ms_median"] <= live["latency_ms_p95"] < 5000
    assert live["cpu_ms_per_frame"] > 0 and live["first_output_s"] > 0
    assert live["dropped_fraction"] == pytest.approx(live["dropped_frames"] / FRAMES, abs=1e-3)
    assert summary["frames_with_face"] == n  # d0 shows one face throughout.
    calibration = summary["calibration"]
    if n >= 4:  # Enough frames for the calibration: it ran (finished after the loop if late).
        assert calibration["identity"] == "live" and calibration["frames"] == 4
        assert (out / "identity.npz").exists() and "identity" in summary["outputs"]
        calibrated = [f for f in read_json_lines_entries(out) if f["calibrated"]]
        assert calibration["from_frame"] == (calibrated[0]["frame"] if calibrated
                                             else int(rows[-1][0]) + 1)
    else:  # A machine too loaded to process 4 of the 30 frames: the mean face throughout.
        assert calibration["frames"] == n and not (out / "identity.npz").exists()
    assert summary["fit_quality"]["nme_mean"] < 0.06

    # VMC: one bundle per processed frame, in order, carrying that frame's CSV values.
    assert summary["vmc"]["frames_sent"] == n
    names = vmc_names()
    deadline = time.time() + 5
    while len(_bundles(messages, names[0])) < n and time.time() < deadline:
        time.sleep(0.05)
    bundles = _bundles(messages, names[0])
    assert len(bundles) == n
    for bundle, row in zip(bundles, rows):
        addresses = [address for address, _ in bundle]
        blends = [args for address, args in bundle if address == "/VMC/Ext/Blend/Val"]
        assert [name for name, _ in blends] == list(names)
        assert addresses[:53] == ["/VMC/Ext/Blend/Val"] * 52 + ["/VMC/Ext/Blend/Apply"]
        assert addresses[53:] == ["/VMC/Ext/Bone/Pos"]  # Every frame had a face: the head.
        assert bundle[53][1][0] == "Head" and len(bundle[53][1]) == 8
        np.testing.assert_allclose([v for _, v in blends], [float(v) for v in row[3:55]],
                                   atol=2e-6)
    assert names[ARKIT_NAMES.index("jawOpen")] == "JawOpen"


def test_ctrl_c_stops_the_live_run_with_valid_files_and_status_130(tmp_path):
    video = shared_path("data", "videos", "d0.mp4")  # 78 frames, 3.1 s in real time.
    shared_path("assets", "face_landmarker.task")
    out = tmp_path / "out"
    process = subprocess.Popen(
        _command(video, "-o", str(out), "--realtime", "--calibration-frames", "8",
                 "--landmarker", "mediapipe", "--no-compile-cache", "--quiet"),
        cwd=str(tmp_path), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and process.poll() is None:
            path = out / "blendshapes.csv"
            if path.exists() and len(path.read_text().splitlines()) > 6:
                break
            time.sleep(0.02)
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        sent = time.time()
        os.killpg(process.pid, signal.SIGINT)
        status = process.wait(timeout=60)
        stopped = time.time() - sent
        err = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    lines = [line for line in err.splitlines() if "cpem-jax" in line or "Traceback" in line]
    assert status == 130 and stopped < 10, (status, stopped, err[-3000:])
    assert len(lines) == 1 and re.fullmatch(
        r"cpem-jax: interrupted after \d+ frames \(live\); written: blendshapes\.csv, "
        r"blendshapes\.jsonl, livelink\.csv, .*", lines[0]), err[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    units = tuple(read_json(out / "blendshapes.json").unit_names)
    rows, _ = _check_files(out, units)
    assert summary["interrupted"]["frames_seen"] == len(rows) < 78
    assert summary["live"]["frames_processed"] == len(rows)
    assert not [name for name in os.listdir(out) if ".partial" in name]


def test_a_writer_closed_by_the_hard_interrupt_path_keeps_whole_rows(tmp_path):
    """Ctrl-C when the loop cannot stop in time: the writers are closed after their last whole
    row and the summary lists them."""
    from cpem_jax.export.stream_writers import CsvStreamWriter
    from cpem_jax.retarget.output_files import OutputFiles
    from cpem_jax.retarget.run_state import LiveRunState
    units = ("jawOpen", "eyeBlink_L")
    state = LiveRunState()
    state.files = OutputFiles(str(tmp_path))
    writer = CsvStreamWriter(str(tmp_path / "blendshapes.csv"), units)
    state.writers = [writer]
    state.files.complete["csv"] = [writer.path]
    stop = threading.Event()

    def write_rows():
        i = 0
        while not stop.is_set():
            try:
                writer.write(i, i / 25, True, np.full(2, 0.5), np.zeros(3), np.zeros(3))
            except ValueError:  # Closed under it.
                return
            state.processed = i = i + 1

    thread = threading.Thread(target=write_rows)
    thread.start()
    time.sleep(0.2)
    line = state.finish_interrupted()
    stop.set()
    thread.join(5)
    header, rows = _read_csv(tmp_path / "blendshapes.csv")
    assert rows and all(len(r) == len(header) for r in rows)
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outputs"]["csv"]["blendshapes.csv"] == os.path.getsize(
        tmp_path / "blendshapes.csv")
    assert line.startswith("interrupted after") and "blendshapes.csv" in line


def test_calibrate_then_identity_round_trip(tmp_path, capsys):
    from cpem_jax.cli import calibrate_cmd, main as cli
    video = shared_path("data", "videos", "d0.mp4")
    shared_path("assets", "face_landmarker.task")
    commands = cli.COMMANDS if calibrate_cmd in cli.COMMANDS else cli.COMMANDS + (calibrate_cmd,)
    profile = tmp_path / "me.npz"
    original = cli.COMMANDS
    cli.COMMANDS = commands
    try:
        assert cli.main(["calibrate", video, "-o", str(profile), "--frames", "8",
                         "--no-photometric", "--landmarker", "mediapipe", "--no-compile-cache",
                         "--quiet"]) == 0
        assert f"wrote {profile}" in capsys.readouterr().out
        out = tmp_path / "out"
        assert cli.main(["retarget", video, "-o", str(out), "--live", "--identity",
                         str(profile), "--max-frames", "6", "--outputs", "csv,json",
                         "--landmarker", "mediapipe", "--no-compile-cache", "--quiet"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["calibration"] == {"identity": "profile", "photometric": False,
                                          "frames": 8, "keyframes": 8}
        assert summary["live"]["frames_processed"] == 6 and summary["live"]["dropped_frames"] == 0
        assert not (out / "identity.npz").exists()  # Nothing calibrated in this run.
        # A file that is not a profile: one line, exit 2, nothing written.
        junk = tmp_path / "junk.npz"
        junk.write_bytes(b"nothing")
        capsys.readouterr()
        assert cli.main(["retarget", video, "-o", str(tmp_path / "out2"), "--live",
                         "--identity", str(junk), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("cpem-jax: error:") and "is not an identity profile" in err[-1]
        assert not (tmp_path / "out2" / "summary.json").exists()
    finally:
        cli.COMMANDS = original


@pytest.mark.parametrize("args,expected", [
    (["--identity", "me.npz"], "--identity belong to live runs"),
    (["--vmc", "127.0.0.1:9000"], "--vmc belong to live runs"),
    (["--live", "--outputs", "csv,preview"], "preview need the whole video"),
    (["--realtime", "--method", "net", "--checkpoint", "x"], "--method net is offline only"),
    (["--live", "--vmc", "host:port"], "--vmc takes HOST:PORT"),
    (["--offline"], "--offline goes with --webcam"),
])
def test_live_option_errors_exit_2_with_one_line(args, expected, tmp_path, capsys):
    from cpem_jax.cli.main import main
    video = shared_path("data", "videos", "d0.mp4")
    assert main(["retarget", video, "-o", str(tmp_path / "out"), *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpem-jax: error:") and expected in err[0], err
