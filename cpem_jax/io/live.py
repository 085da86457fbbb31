"""Live frames: the newest frame of a camera (or of a video replayed at its real rate), dropping
the frames a slow consumer could not take in time, and counting them.

    with LiveFrames(open_frames("talk.mp4"), realtime=True) as live:
        for frame, arrival in live:          # arrival: time.monotonic() when it arrived
            ...                              # live.dropped: frames skipped so far

A reader thread pulls frames from the source. With `realtime=True` (a file) it releases each frame
at `start + timestamp_s`, as a camera would deliver it; a camera releases frames by itself. The
consumer always gets the newest frame released since its last one: when it is slower than the
source, the frames in between are dropped (never queued, so latency does not grow), and counted
in `dropped`. Iteration ends when the source ends or `stop()` / `close()` is called (`stop()`
returns at once and may be called from any thread, e.g. a Ctrl-C handler); an error in the
reader is raised in the consumer.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator, Optional, Tuple

from cpem_jax.io.frames import Frame, FrameSource


class LiveFrames:
    """The newest-frame view of a frame source (module docstring).

    Args:
      source: a FrameSource (an open video, image folder or webcam).
      realtime: release frames at their timestamps (for files); False for a camera, which
        delivers at its own rate.
      clock: the monotonic clock (replaceable in tests).
    Attributes:
      delivered, dropped: frames handed to the consumer / skipped, so far.
      fps: the source's frame rate.
    """

    def __init__(self, source: FrameSource, realtime: bool = True, clock=time.monotonic):
        self.source = source
        self.realtime = realtime
        self.fps = float(source.fps)
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: Optional[Tuple[Frame, float]] = None
        self._ended = False
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self.delivered = 0
        self.dropped = 0
        self._released = 0
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "LiveFrames":
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="live-frames", daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        try:
            start = None
            for frame in self.source:
                if self._stop.is_set():
                    break
                if self.realtime:
                    start = self._clock() - frame.timestamp_s if start is None else start
                    delay = start + frame.timestamp_s - self._clock()
                    if delay > 0 and self._stop.wait(delay):
                        break
                arrival = self._clock()
                with self._cond:
                    if self._latest is not None:
                        self.dropped += 1  # The consumer did not take the previous one.
                    self._latest = (frame, arrival)
                    self._released += 1
                    self._cond.notify_all()
        except BaseException as error:  # Handed to the consumer thread.
            with self._cond:
                self._error = error
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Tuple[Frame, float]]:
        self.start()
        while True:
            with self._cond:
                while self._latest is None and not self._ended and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
                if self._latest is None:
                    if self._error is not None:
                        raise self._error
                    return
                item, self._latest = self._latest, None
                self.delivered += 1
            yield item

    def stop(self) -> None:
        """Ends the iteration at once (from any thread); the reader stops at its next frame."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Stops the reader (the source is closed too)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.source.close()

    def __enter__(self) -> "LiveFrames":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
