"""Live frames: real-rate replay, newest-frame delivery, dropped frames counted."""
import time

import numpy as np
import pytest

from cpem_jax.io.frames import Frame, FrameSource
from cpem_jax.io.live import LiveFrames


class Synthetic(FrameSource):
    """n tiny frames at `fps`; frame i's pixel [0, 0, 0] holds i."""

    def __init__(self, n, fps, fail_at=None):
        super().__init__()
        self.n, self.fps, self.fail_at, self.closed = n, fps, fail_at, False
        self.expected_count = n

    def _frames(self):
        for i in range(self.n):
            if i == self.fail_at:
                raise OSError("the camera went away")
            image = np.zeros((4, 4, 3), np.uint8)
            image[0, 0, 0] = i
            yield Frame(i, i / self.fps, image)

    def close(self):
        self.closed = True


def test_replay_runs_at_the_source_rate_and_drops_what_a_slow_consumer_misses():
    source = Synthetic(40, fps=100.0)  # 0.4 s of video.
    start = time.monotonic()
    seen = []
    with LiveFrames(source, realtime=True) as live:
        for frame, arrival in live:
            assert arrival <= time.monotonic()
            seen.append(frame.index)
            time.sleep(0.035)  # A consumer at ~28 frames/s on a 100 frames/s source.
    elapsed = time.monotonic() - start
    assert elapsed >= 0.38  # Not faster than real time.
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert live.delivered == len(seen) and live.delivered + live.dropped == 40
    assert 5 <= live.dropped <= 35 and seen[-1] == 39  # The newest frame always wins.
    assert source.closed


def test_a_fast_consumer_gets_every_frame_in_order():
    with LiveFrames(Synthetic(6, fps=10.0), realtime=True) as live:
        seen = [frame.index for frame, _ in live]
    assert seen == list(range(6)) and live.dropped == 0


def test_a_source_error_reaches_the_consumer():
    with LiveFrames(Synthetic(5, fps=50.0, fail_at=3), realtime=True) as live:
        with pytest.raises(OSError, match="went away"):
            for _ in live:
                pass


def test_close_stops_the_reader_early():
    live = LiveFrames(Synthetic(1000, fps=20.0), realtime=True).start()
    first = next(iter(live))
    start = time.monotonic()
    live.close()
    assert first[0].index == 0 and time.monotonic() - start < 1.0


def test_stop_from_another_thread_ends_the_iteration_at_once():
    import threading
    live = LiveFrames(Synthetic(1000, fps=5.0), realtime=True)  # A frame every 0.2 s.
    seen = []
    timer = threading.Timer(0.3, live.stop)
    start = time.monotonic()
    timer.start()
    with live:
        for frame, _ in live:
            seen.append(frame.index)
    assert time.monotonic() - start < 0.6  # Not waiting for the next frame, nor the rest.
    assert seen and seen == list(range(len(seen))) and len(seen) <= 3
