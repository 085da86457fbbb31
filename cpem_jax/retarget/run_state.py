"""How far a `cpem-jax retarget` run got, so that Ctrl-C can end it with whole files.

`RunState` follows the offline run (phase, frames the front end has seen through a
`CountingLandmarker`, the `OutputFiles` complete); `RunState.finish_interrupted`, called by the
command's Ctrl-C handler, removes the files of unfinished outputs and writes a summary.json of
the complete ones. `LiveRunState` adds the live run's side: Ctrl-C first asks the loop to stop
(`request_stop`); when it does not stop in time, `finish_interrupted` closes the incremental
writers, each after its last whole row. `interrupted_line` is the one line a stopped live run
prints.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

from cpem_jax.io.live import LiveFrames
from cpem_jax.retarget.output_files import SUMMARY, OutputFiles


class CountingLandmarker:
    """A front end (`cpem_jax.detect.base.FaceLandmarker`) that counts the frames it is shown,
    so an interrupted run can say how far it got. Everything else is the wrapped one's."""

    def __init__(self, landmarker):
        self._landmarker = landmarker
        self._last = None
        self.frames = 0

    def _saw(self, image) -> None:
        if image is not self._last:
            self._last, self.frames = image, self.frames + 1

    def detect_boxes(self, image):
        self._saw(image)
        return self._landmarker.detect_boxes(image)

    def landmarks_in_boxes(self, image, boxes):
        self._saw(image)
        return self._landmarker.landmarks_in_boxes(image, boxes)

    def detect(self, image):
        self._saw(image)
        return self._landmarker.detect(image)

    def __getattr__(self, name):
        return getattr(self._landmarker, name)


class RunState:
    """How far one run got: the phase, the frames seen, the output files (see module doc)."""

    def __init__(self):
        self.phase = "starting"
        self.files: Optional[OutputFiles] = None
        self.landmarker: Optional[CountingLandmarker] = None
        self.n_frames: Optional[int] = None
        self.summary: Dict[str, Any] = {}

    @property
    def frames_seen(self) -> int:
        """Frames the estimate holds, or while estimating, the frames the front end has seen."""
        if self.n_frames is not None:
            return self.n_frames
        return self.landmarker.frames if self.landmarker is not None else 0

    def finish_interrupted(self) -> str:
        """After Ctrl-C: removes the files of unfinished outputs, writes a summary.json listing
        the complete ones (when there are any) and returns the one line to print."""
        head = f"interrupted after {self.frames_seen} frames ({self.phase})"
        if self.files is None:
            return f"{head}; nothing written"
        with self.files.lock:
            self.files.discard_pending()
            done = self.files.sizes()
            if not done:
                return f"{head}; nothing written"
            summary = {**self.summary, "interrupted": {"phase": self.phase,
                                                       "frames_seen": self.frames_seen},
                       "outputs": done}
            self.files.write_json(SUMMARY, summary)
        return self._written_line(head, done)

    def _written_line(self, head: str, done: Dict[str, Dict[str, int]]) -> str:
        names = ", ".join(n for files in done.values() for n in files)
        return (f"{head}; outputs up to frame {self.frames_seen - 1} written: {names} "
                f"(listed in {SUMMARY})")


class LiveRunState(RunState):
    """`RunState` of a live run: Ctrl-C asks the loop to stop (`request_stop`); the hard path
    (`finish_interrupted`) closes the incremental writers, each after its last whole row."""

    def __init__(self):
        super().__init__()
        self.stop_requested = threading.Event()
        self.stopped = threading.Event()  # The loop saw the request and is finishing.
        self.frames: Optional[LiveFrames] = None
        self.writers: List[Any] = []
        self.processed = 0
        self.stats_fn = None

    @property
    def frames_seen(self) -> int:
        return self.processed

    def request_stop(self) -> None:
        """Asks the loop to stop after the frame in hand (from any thread)."""
        self.stop_requested.set()
        if self.frames is not None:
            self.frames.stop()

    def finish_interrupted(self) -> str:
        """The hard path of Ctrl-C (the loop did not stop in time): closes the incremental
        writers, each after the row it may be writing, removes unfinished end-of-run files,
        writes a summary.json listing what is complete and returns the line to print."""
        for writer in self.writers:
            writer.close()  # Waits for a row being written; later rows are refused.
        if self.stats_fn is not None:
            self.summary["live"] = self.stats_fn()
        return super().finish_interrupted()

    def _written_line(self, head: str, done: Dict[str, Dict[str, int]]) -> str:
        return interrupted_line(self.processed, self.phase, done)


def interrupted_line(frames: int, phase: str, outputs: Dict[str, Dict[str, int]]) -> str:
    """The one line a live run stopped by Ctrl-C prints (without the 'cpem-jax: ' prefix)."""
    names = ", ".join(n for files in outputs.values() for n in files)
    return (f"interrupted after {frames} frames ({phase}); written: {names or 'nothing'}, "
            f"every row a processed frame (listed in {SUMMARY})")
