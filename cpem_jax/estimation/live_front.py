"""The live front end: the followed face, frame by frame, in frames that come in time order.

`make_front(name)` builds the landmarker ("auto", "mediapipe", "dlib"); `LiveFront.observe` gives
the followed face's `FaceObservation` per frame: its box [4], 68 points [68, 2] and, from
MediaPipe, its 478 points [478, 2] (`dense`), image pixels. Every front end goes through
`detect.FaceTracker`, as the offline fit's frames do: the detector every `redetect_every`-th
frame and, in between, MediaPipe's mesh followed from the last frame's points
(`MediaPipeLandmarker.dense_following`: its passes and their mirror average, upside-down faces
included), the passes the offline fit's frames get. MediaPipe's own VIDEO task
(`detect_video`: one pass per frame, no mirror) costs about 3 ms less per frame and read d3's
left winks at half strength live (experiments/live).
"""
from __future__ import annotations

import numpy as np

from cpem_jax.detect.base import FaceObservation
from cpem_jax.detect.tracking import FaceTracker


def make_front(name: str = "auto", face: int = 0):
    """The front end by name ("auto", "mediapipe", "dlib") for a live source showing `face`
    (0 = largest): MediaPipe's detector keeps at most face + 1 faces (each kept face costs a
    mesh pass on the frames the detector runs).

    Raises:
      ValueError: an unknown name.
      RuntimeError: the named front end cannot run (one line naming the fix).
    """
    from cpem_jax.detect.backends import make_landmarker
    try:
        return make_landmarker(name, mediapipe_options={"max_faces": int(face) + 1})
    except (ImportError, OSError) as error:
        raise RuntimeError(str(error).splitlines()[0] if str(error) else repr(error)) from error


class LiveFront:
    """The followed face in frames that come in time order (`detect.FaceTracker`).

    Args:
      landmarker: a FaceLandmarker.
      face: which face (0 = largest when a face is first chosen; then followed).
      redetect_every: the tracker's detector period in frames.
    """

    def __init__(self, landmarker, face: int = 0, redetect_every: int = 10):
        if face < 0:
            raise ValueError(f"face must be >= 0, got {face}")
        self.landmarker = landmarker
        self.face = int(face)
        self.tracker = FaceTracker(landmarker, face=face, redetect_every=redetect_every)

    @property
    def most_faces(self) -> int:
        """The most faces the detector found in one frame so far."""
        return self.tracker.most_faces

    @property
    def dense(self) -> bool:
        """The front end gives dense points (MediaPipe's 478)."""
        return callable(getattr(self.landmarker, "dense_in_boxes", None))

    def warm_up(self) -> None:
        """Runs the detector once on a blank image (its first call sets up its runtime), then
        forgets it."""
        self.tracker.update(-1, 0.0, np.zeros((128, 128, 3), np.uint8))
        self.tracker.reset()

    def observe(self, index: int, timestamp_s: float, image: np.ndarray) -> FaceObservation:
        """The followed face in `image [H, W, 3] uint8 RGB` (NaN arrays when not found)."""
        return self.tracker.update(index, timestamp_s, image)
