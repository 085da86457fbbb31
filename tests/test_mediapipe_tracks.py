"""benchmarks/mediapipe_tracks.py: MediaPipe's own blendshapes written as tracks that
benchmarks/label_check_tracks.py scores (the peer of experiments/labels)."""
import json
import os
import subprocess
import sys

import pytest

from cpem_jax.export import ARKIT_NAMES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "mediapipe_tracks.py")


def _video():
    shared = os.environ.get("CPEM_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
    path = os.path.join(shared, "data", "videos", "d0.mp4")
    if not os.path.isfile(path):
        pytest.skip(f"no shared video {path} (set CPEM_SHARED)")
    return path


def test_tracks_hold_every_frame_with_52_named_weights(tmp_path):
    pytest.importorskip("mediapipe")
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import mediapipe_tracks
    from cpem_jax.detect.mediapipe_task import TaskFileError, find_task
    try:
        task = find_task()
    except TaskFileError as error:
        pytest.skip(str(error))
    video = _video()
    result = mediapipe_tracks.track(video, task)
    frames = result["frames"]
    assert [f["frame"] for f in frames] == list(range(len(frames))) and len(frames) > 50
    found = [f for f in frames if f["face_found"]]
    assert len(found) >= 0.9 * len(frames)
    assert result["blendshape_names"] == list(ARKIT_NAMES)
    for f in found:
        weights = f["raw"]["blendshapes"]
        assert len(weights) == 52 and all(0.0 <= w <= 1.0 for w in weights)
    # A talking face: the jaw moves over the clip.
    jaw = [f["raw"]["blendshapes"][ARKIT_NAMES.index("jawOpen")] for f in found]
    assert max(jaw) - min(jaw) > 0.1


def test_a_missing_video_gets_one_line(tmp_path):
    run = subprocess.run([sys.executable, SCRIPT, "--videos", str(tmp_path / "none.mp4"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=REPO)
    assert run.returncode != 0
    assert "no video" in run.stderr and "Traceback" not in run.stderr
