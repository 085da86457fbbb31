"""benchmarks/synthetic_peer.py: MediaPipe's blendshapes matched to a split's units, clip by
clip, with frames without a face counted and scored as all zero (the tracker stubbed)."""
import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import mediapipe_tracks  # noqa: E402
import synthetic_peer  # noqa: E402
from cpem_jax.evaluation import synthetic_eval  # noqa: E402
from cpem_jax.export import ARKIT_NAMES  # noqa: E402


class _Tracker:
    """Answers each frame with its image's first value as every ARKit weight; None for 0."""
    made = []

    def __init__(self, task):
        self.timestamps, self.closed = [], False
        _Tracker.made.append(self)

    def weights(self, frame):
        self.timestamps.append(frame.timestamp_s)
        value = float(frame.image[0, 0, 0])
        return None if value == 0 else np.full(len(ARKIT_NAMES), value / 10)

    def close(self):
        self.closed = True


def test_peer_expressions_match_units_by_arkit_name(monkeypatch):
    values = {"a": 3, "b": 0, "c": 5}          # frame b: no face
    frames = [types.SimpleNamespace(image_path=k) for k in values]
    gt = types.SimpleNamespace(unit_names=["browDown_L", "jawOpen", "notAnArkitUnit"],
                               expression=np.ones((3, 3)), clip_rows=lambda: [[0, 1], [2]])
    monkeypatch.setattr(synthetic_eval, "split_frames", lambda data, truth: frames)
    monkeypatch.setattr(mediapipe_tracks, "BlendshapeTracker", _Tracker)
    monkeypatch.setattr("cpem_jax.io.read_image",
                        lambda path: np.full((4, 4, 3), values[path], np.uint8))
    _Tracker.made.clear()
    expression, misses, matched = synthetic_peer.peer_expressions("split", gt, "task")
    assert matched == 2 and misses == 1
    np.testing.assert_allclose(expression, [[0.3, 0.3, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    # One tracker per clip, each clip's time starting at 0, every tracker closed.
    assert [t.timestamps for t in _Tracker.made] == [[0.0, 1 / 30], [0.0]]
    assert all(t.closed for t in _Tracker.made)
