"""The face landmarker interface and the per-frame face observation.

Coordinates follow the project's image convention: pixel (u, v), u to the right, v downward,
pixel centres at integer + 0.5 (the top-left pixel covers [0, 1) x [0, 1)). Landmarkers whose
native output counts pixel indices (dlib, face-alignment) add 0.5 before returning.

Boxes are `[x0, y0, x1, y1]` in those continuous coordinates (x1, y1 exclusive edges).
Landmarks are the 68 iBUG / Multi-PIE points in their standard order: jaw 0-16 (0 on the
subject's right, i.e. image left for a frontal face), brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Optional

import numpy as np

N_LANDMARKS = 68


def _float32(array, shape_tail, name) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape [N, {', '.join(map(str, shape_tail))}], "
                         f"got {array.shape}.")
    return array


@dataclasses.dataclass(frozen=True)
class Detections:
    """All faces found in one image.

    Attributes:
      boxes: [N, 4] float32 face boxes [x0, y0, x1, y1] in image pixels.
      landmarks: [N, 68, 2] float32 landmark (u, v) in image pixels.
      scores: [N] float32 detector confidence (larger is surer; the scale is the detector's).
      dense: None, or [N, P, 2] float32 all points of a dense landmarker in image pixels (e.g.
        P = 478 for MediaPipe's face mesh with iris, see `cpem_jax.detect.mediapipe_landmarker`);
        `landmarks` are then derived from these.
    """
    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    dense: Optional[np.ndarray] = None

    def __post_init__(self):
        object.__setattr__(self, "boxes", _float32(self.boxes, (4,), "boxes"))
        object.__setattr__(self, "landmarks",
                           _float32(self.landmarks, (N_LANDMARKS, 2), "landmarks"))
        object.__setattr__(self, "scores", np.asarray(self.scores, np.float32).reshape(-1))
        counts = {len(self.boxes), len(self.landmarks), len(self.scores)}
        if len(counts) != 1:
            raise ValueError(f"boxes, landmarks and scores disagree on the face count: "
                             f"{len(self.boxes)}, {len(self.landmarks)}, {len(self.scores)}.")
        if self.dense is not None:
            dense = np.asarray(self.dense, np.float32)
            if dense.ndim != 3 or dense.shape[2] != 2 or dense.shape[0] != len(self.boxes):
                raise ValueError(f"dense must have shape [N={len(self.boxes)}, P, 2], got "
                                 f"{dense.shape}.")
            object.__setattr__(self, "dense", dense)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros((0, N_LANDMARKS, 2)), np.zeros((0,)))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def take(self, indices) -> "Detections":
        """The faces at `indices` (a sequence of ints), in that order."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Detections(self.boxes[indices], self.landmarks[indices], self.scores[indices],
                          None if self.dense is None else self.dense[indices])


@dataclasses.dataclass(frozen=True)
class FaceObservation:
    """The followed face in one frame, as later stages (fitting, retargeting) consume it.

    Attributes:
      frame_index: index of the frame in its source.
      timestamp_s: time of the frame in seconds.
      found: False when the face was not found in this frame; box and landmarks are then NaN.
      box: [4] float32 [x0, y0, x1, y1] in original image pixels: the detector's box, or on
        frames followed between detections, a box of the same convention placed from landmarks.
      landmarks: [68, 2] float32 (u, v) in original image pixels.
      score: detector score of the last detection that confirmed this face (NaN when not found).
      dense: None, or [P, 2] float32 all points of a dense landmarker (e.g. MediaPipe's 478) in
        original image pixels.
    """
    frame_index: int
    timestamp_s: float
    found: bool
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    dense: Optional[np.ndarray] = None

    @classmethod
    def missing(cls, frame_index: int, timestamp_s: float) -> "FaceObservation":
        """A frame where the face was not found (NaN box and landmarks)."""
        return cls(frame_index, float(timestamp_s), False,
                   np.full((4,), np.nan, np.float32),
                   np.full((N_LANDMARKS, 2), np.nan, np.float32), float("nan"))


class FaceLandmarker(abc.ABC):
    """Finds faces and their 68 landmarks.

    Implementations provide `detect_boxes` (face detector) and `landmarks_in_boxes` (landmark
    regressor started from boxes); `detect` composes the two. Trackers call
    `landmarks_in_boxes` alone between detections, with boxes predicted from the previous frame.
    """

    @abc.abstractmethod
    def detect_boxes(self, image: np.ndarray) -> tuple:
        """Finds faces.

        Args:
          image: [H, W, 3] uint8 RGB.
        Returns:
          (boxes [N, 4] float32 image pixels, scores [N] float32).
        """

    @abc.abstractmethod
    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Regresses landmarks for faces known to lie in `boxes`.

        Args:
          image: [H, W, 3] uint8 RGB.
          boxes: [N, 4] float32 face boxes in the detector's box convention (see `detect_boxes`).
        Returns:
          [N, 68, 2] float32 landmarks in image pixels.
        """

    def detect(self, image: np.ndarray) -> Detections:
        """Finds every face and its landmarks in `image [H, W, 3] uint8 RGB`."""
        check_rgb_uint8(image)
        boxes, scores = self.detect_boxes(image)
        if len(boxes) == 0:
            return Detections.empty()
        return Detections(boxes, self.landmarks_in_boxes(image, boxes), scores)

    def detect_near(self, image: np.ndarray, box: np.ndarray) -> Detections:
        """Faces a second, slower search finds around `box [4]` where `detect` lost a followed
        face (`FaceTracker` asks). None here; MediaPipe's landmarker asks dlib's CNN detector."""
        check_rgb_uint8(image)
        return Detections.empty()


def check_rgb_uint8(image: np.ndarray, name: Optional[str] = "image") -> None:
    """Raises ValueError unless `image` is [H, W, 3] uint8."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 \
            or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name} must be an [H, W, 3] uint8 RGB array, got shape {shape} dtype "
                         f"{dtype}; read frames with cpem_jax.io.open_frames.")
