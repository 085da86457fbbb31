"""The live front end: the followed face, frame by frame, in frames that come in time order.

`make_front(name)` builds the landmarker ("auto", "mediapipe", "dlib"); `LiveFront.observe` gives
the followed face's `FaceObservation` per frame: its box [4], 68 points [68, 2] and, from
MediaPipe, its 478 points [478, 2] (`dense`), image pixels. MediaPipe runs in its VIDEO mode (its
own tracker: one mesh pass per frame, its detector only when the face is lost; the face is then
followed by box overlap); other front ends go through `detect.FaceTracker`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from cpem_jax.detect.base import FaceObservation
from cpem_jax.detect.tracking import FaceTracker, box_iou, select_face


def make_front(name: str = "auto", face: int = 0):
    """The front end by name ("auto", "mediapipe", "dlib") for a live source showing `face`
    (0 = largest): MediaPipe follows at most face + 1 faces (its VIDEO mode runs its detector on
    every frame while it follows fewer faces than that).

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
    """The followed face in frames that come in time order.

    Args:
      landmarker: a FaceLandmarker; one with `detect_video` (MediaPipe) runs in its VIDEO mode.
      face: which face (0 = largest when a face is first chosen; then followed by box overlap).
      redetect_every: for other front ends, `FaceTracker`'s detector period in frames.
    """

    def __init__(self, landmarker, face: int = 0, redetect_every: int = 10,
                 min_iou: float = 0.3):
        if face < 0:
            raise ValueError(f"face must be >= 0, got {face}")
        self.landmarker = landmarker
        self.face = int(face)
        self.min_iou = float(min_iou)
        self.video = callable(getattr(landmarker, "detect_video", None))
        self.tracker = None if self.video else FaceTracker(landmarker, face=face,
                                                           redetect_every=redetect_every)
        self.most_faces = 0
        self._box: Optional[np.ndarray] = None
        self._last_ms: Optional[int] = None

    @property
    def dense(self) -> bool:
        """The front end gives dense points (MediaPipe's 478)."""
        return self.video or callable(getattr(self.landmarker, "dense_in_boxes", None))

    def warm_up(self) -> None:
        """Runs the front end once on a blank image, so that the first frame does not wait for
        MediaPipe to build its VIDEO-mode task (it does so on its first frame)."""
        if self.video:
            self.observe(-1, 0.0, np.zeros((128, 128, 3), np.uint8))
            self._box = None

    def observe(self, index: int, timestamp_s: float, image: np.ndarray) -> FaceObservation:
        """The followed face in `image [H, W, 3] uint8 RGB` (NaN arrays when not found)."""
        if not self.video:
            observation = self.tracker.update(index, timestamp_s, image)
            self.most_faces = self.tracker.most_faces
            return observation
        ms = int(round(timestamp_s * 1000.0))
        if self._last_ms is not None and ms <= self._last_ms:
            ms = self._last_ms + 1  # A camera's clock may repeat; MediaPipe needs increasing.
        self._last_ms = ms
        detections = self.landmarker.detect_video(image, ms / 1000.0)
        self.most_faces = max(self.most_faces, len(detections))
        chosen = None
        if len(detections):
            if self._box is not None:
                overlaps = box_iou(self._box, detections.boxes)
                best = int(np.argmax(overlaps))
                chosen = best if overlaps[best] >= self.min_iou else None
            if chosen is None:
                chosen = select_face(detections.boxes, self.face)
        if chosen is None:
            self._box = None
            return FaceObservation.missing(index, timestamp_s)
        self._box = detections.boxes[chosen]
        return FaceObservation(int(index), float(timestamp_s), True, self._box.copy(),
                               detections.landmarks[chosen].copy(), float("nan"),
                               detections.dense[chosen].copy())
