"""Choosing one face and following it through a video.

Selection: faces are ranked by box area (`order="size"`, 0 = largest) or by box centre from
left to right (`order="left"`, 0 = leftmost in the image); `face=N` picks the N-th.

Detection is the landmarker's `detect` (for MediaPipe that includes its test of a face: the mesh
model's face presence, or its second detector). Following: the chosen face is matched in each new
detection by the overlap (IoU) of its landmarks' extent with the previous frame's, so another face
that becomes larger does not steal the track (landmarks, not boxes: two detectors' boxes of one
face differ). When detection loses the followed face, the landmarker's `detect_near` is asked
around the last box (MediaPipe's: its second detector; none for the others); where that finds
nothing either and the detector has never seen more than one face at a time, the one face it
found elsewhere is taken as the followed face (a cut, or a jump between frames far apart). With
`redetect_every=k > 1` the detector runs only every k-th frame; in between, the landmark
regressor is started from a box predicted from the previous frame's landmarks (the box keeps the
offset and scale relative to the landmark extent that the last detection had), which is much
cheaper than detection. If a predicted box drifts (its landmarks disagree with it) or leaves
the image, the detector runs on that frame. A landmark regressor always returns points, so a face
that disappears between detections is only noticed at the next detection (at most k - 1 frames
late); use `redetect_every=1` when every missed frame must be flagged.

A dense landmarker (one with `dense_in_boxes` and `landmarks_from_dense`, e.g. MediaPipe's 478
points) gives each observation its dense points too (`FaceObservation.dense`). One that can
follow its own points (`dense_following(image, previous)`, MediaPipe's) is started between
detections from the previous frame's dense points rather than from a box, as MediaPipe's own
video graph carries a face from frame to frame: the region keeps the face's roll (MediaPipe's
mesh model loses a face rolled 45 degrees or more in an upright crop; on d0's first 40 frames
turned by 60 degrees and followed with `redetect_every=5`, followed frames started upright were
up to 32 px from a detection's points, started from the last frame within 0.2 px) and a still
face costs two runs of the model instead of three.

Frames where the face is not found produce `FaceObservation.missing(...)` (flagged, not dropped).
After `max_missed` consecutive misses the track is released and the next detection picks a face
by the selection rule again.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

import numpy as np

from cpem_jax.detect.base import Detections, FaceLandmarker, FaceObservation

ORDERS = ("size", "left")
# A followed box with less than this fraction of its area inside the image triggers detection.
MIN_VISIBLE_FRACTION = 0.5


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of `boxes [..., 4]` ([x0, y0, x1, y1]) -> [...] (0 for empty boxes)."""
    boxes = np.asarray(boxes, np.float64)
    return (np.clip(boxes[..., 2] - boxes[..., 0], 0, None)
            * np.clip(boxes[..., 3] - boxes[..., 1], 0, None))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of `box [4]` with each of `boxes [M, 4]` -> [M] in [0, 1]."""
    box = np.asarray(box, np.float64).reshape(4)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = box_area(box) + box_area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def visible_fraction(box: np.ndarray, width: int, height: int) -> float:
    """Fraction of the area of `box [4]` inside a `width` x `height` image (0 for empty boxes)."""
    box = np.asarray(box, np.float64).reshape(4)
    clipped = np.clip(box, [0, 0, 0, 0], [width, height, width, height])
    area = box_area(box)
    return float(box_area(clipped) / area) if area > 0 else 0.0


def rank_faces(boxes: np.ndarray, order: str = "size") -> np.ndarray:
    """Face indices in selection order.

    Args:
      boxes: [N, 4] face boxes.
      order: "size" (largest area first) or "left" (smallest centre x first).
    Returns:
      [N] int64 indices into `boxes`.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if order == "size":
        return np.argsort(-box_area(boxes), kind="stable")
    if order == "left":
        return np.argsort(boxes[:, 0] + boxes[:, 2], kind="stable")
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")


def select_face(boxes: np.ndarray, face: int = 0, order: str = "size") -> Optional[int]:
    """Index of the `face`-th face of `boxes [N, 4]` in `order`, or None when there are fewer."""
    if face < 0:
        raise ValueError(f"face must be >= 0 (0 = first in '{order}' order), got {face}.")
    ranked = rank_faces(boxes, order)
    return int(ranked[face]) if face < len(ranked) else None


def landmark_extent(landmarks: np.ndarray) -> np.ndarray:
    """Axis-aligned extent [x0, y0, x1, y1] of `landmarks [..., 68, 2]` -> [..., 4]."""
    landmarks = np.asarray(landmarks, np.float64)
    return np.concatenate([landmarks.min(axis=-2), landmarks.max(axis=-2)], axis=-1)


def box_offset_from_landmarks(box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Expresses `box [4]` relative to the extent of `landmarks [68, 2]`.

    Returns:
      [4] float64: (box corner - extent centre) / extent size, per corner coordinate, so that
      `box_from_landmarks(landmarks, offset)` gives back `box`.
    """
    extent = landmark_extent(landmarks)
    centre = np.tile((extent[:2] + extent[2:]) / 2, 2)
    size = np.tile(np.maximum(extent[2:] - extent[:2], 1e-6), 2)
    return (np.asarray(box, np.float64) - centre) / size


def box_from_landmarks(landmarks: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Inverse of `box_offset_from_landmarks`: a [4] float32 box from `landmarks [68, 2]`."""
    extent = landmark_extent(landmarks)
    centre = np.tile((extent[:2] + extent[2:]) / 2, 2)
    size = np.tile(extent[2:] - extent[:2], 2)
    return (centre + np.asarray(offset) * size).astype(np.float32)


class FaceTracker:
    """Follows one face through consecutive frames.

    Args:
      landmarker: any FaceLandmarker (e.g. DlibLandmarker).
      face: which face to follow, the N-th in `order` (0 = largest or leftmost).
      order: "size" or "left" (see `rank_faces`).
      redetect_every: run the detector every k-th frame (1: every frame); in between, landmarks
        start from a box predicted from the previous landmarks.
      min_iou: least box overlap for a detection to count as the followed face, and for a
        predicted box to be trusted.
      max_missed: consecutive missed frames before the track is released and a face is chosen
        again by `face`/`order`.
    """

    def __init__(self, landmarker: FaceLandmarker, face: int = 0, order: str = "size",
                 redetect_every: int = 1, min_iou: float = 0.3, max_missed: int = 10) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
        if face < 0:
            raise ValueError(f"face must be >= 0, got {face}.")
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1, got {redetect_every}.")
        self.landmarker = landmarker
        self.face = int(face)
        self.order = order
        self.redetect_every = int(redetect_every)
        self.min_iou = float(min_iou)
        self.max_missed = int(max_missed)
        self.detector_calls = 0
        self.most_faces = 0  # the most faces the detector found in one frame
        self.reset()

    def reset(self) -> None:
        """Forgets the followed face (the next frame chooses one again)."""
        self._box: Optional[np.ndarray] = None          # [4] last box of the followed face
        self._landmarks: Optional[np.ndarray] = None    # [68, 2] last landmarks
        self._dense: Optional[np.ndarray] = None        # [P, 2] last dense points, if any
        self._offset: Optional[np.ndarray] = None       # [4] box relative to landmark extent
        self._score = float("nan")
        self._since_detect = 0
        self._missed = 0

    @property
    def is_following(self) -> bool:
        """True while a face is being followed (found recently enough)."""
        return self._box is not None

    def _points_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> tuple:
        """(landmarks [N, 68, 2], dense [N, P, 2] or None): a dense landmarker's points
        (`dense_in_boxes`, with its 68 points `landmarks_from_dense`), else the 68 only."""
        dense_fn = getattr(self.landmarker, "dense_in_boxes", None)
        if dense_fn is None:
            return self.landmarker.landmarks_in_boxes(image, boxes), None
        dense = dense_fn(image, boxes)
        return self.landmarker.landmarks_from_dense(dense), dense

    def _detect(self, image: np.ndarray) -> Optional[int]:
        """Runs the detector; returns the index of the followed face, updating state, or None.

        The landmarker's `detect`, then, where that loses a followed face, its `detect_near`
        around the last box (module docstring).
        """
        self.detector_calls += 1
        self._since_detect = 0
        found: Detections = self.landmarker.detect(image)
        self.most_faces = max(self.most_faces, len(found))
        chosen = self._choose(found)
        if chosen is None and self._box is not None:
            detected = found
            found = self.landmarker.detect_near(image, self._box)
            chosen = self._choose(found)
            if chosen is None and self.most_faces <= 1 and len(detected):
                # Never more than one face in view: the one found elsewhere is the followed
                # face after a cut or a jump, not another that would steal the track.
                found, chosen = detected, select_face(detected.boxes, self.face, self.order)
        if chosen is None:
            return None
        self._box = found.boxes[chosen].astype(np.float32)
        self._landmarks = found.landmarks[chosen]
        self._dense = None if found.dense is None else found.dense[chosen]
        self._offset = box_offset_from_landmarks(self._box, self._landmarks)
        self._score = float(found.scores[chosen])
        return chosen

    def _choose(self, found: Detections) -> Optional[int]:
        """The followed face's index in `found` (by the selection rule when following none)."""
        if len(found) == 0:
            return None
        if self._box is None:
            return select_face(found.boxes, self.face, self.order)
        # Points, not boxes: a face's detector box and a second detector's box differ in
        # convention (MediaPipe's box of a small face can be twice a dlib CNN box).
        overlaps = box_iou(landmark_extent(self._landmarks), landmark_extent(found.landmarks))
        best = int(np.argmax(overlaps))
        return best if overlaps[best] >= self.min_iou else None

    def _follow(self, image: np.ndarray) -> bool:
        """Regresses landmarks from the predicted box; False when the prediction is not trusted."""
        predicted = box_from_landmarks(self._landmarks, self._offset)
        following = getattr(self.landmarker, "dense_following", None)
        if following is not None and self._dense is not None:
            dense = following(image, self._dense[None])
            landmarks = self.landmarker.landmarks_from_dense(dense)
        else:
            landmarks, dense = self._points_in_boxes(image, predicted[None])
        landmarks = landmarks[0]
        box = box_from_landmarks(landmarks, self._offset)
        if not np.all(np.isfinite(landmarks)) or box_iou(predicted, box[None])[0] < self.min_iou:
            return False
        if visible_fraction(box, image.shape[1], image.shape[0]) < MIN_VISIBLE_FRACTION:
            return False
        self._box, self._landmarks = box, landmarks
        self._dense = None if dense is None else dense[0]
        return True

    def update(self, frame_index: int, timestamp_s: float, image: np.ndarray) -> FaceObservation:
        """Finds the followed face in the next frame.

        Args:
          frame_index: the frame's index in its source.
          timestamp_s: the frame's time in seconds.
          image: [H, W, 3] uint8 RGB.
        Returns:
          FaceObservation (found=False with NaN arrays when the face is not in this frame).
        """
        found = False
        if self._box is not None and self._since_detect < self.redetect_every \
                and self._landmarks is not None:
            found = self._follow(image)
        if not found:
            found = self._detect(image) is not None
        self._since_detect += 1
        if not found:
            self._missed += 1
            if self._missed > self.max_missed:
                self.reset()
            else:
                # Re-detect on the next frame rather than follow stale landmarks.
                self._since_detect = self.redetect_every
            return FaceObservation.missing(frame_index, timestamp_s)
        self._missed = 0
        return FaceObservation(int(frame_index), float(timestamp_s), True, self._box.copy(),
                               self._landmarks.astype(np.float32).copy(), self._score,
                               None if self._dense is None
                               else self._dense.astype(np.float32).copy())


def track_faces(frames: Iterable, landmarker: FaceLandmarker, face: int = 0,
                order: str = "size", redetect_every: int = 1, min_iou: float = 0.3,
                max_missed: int = 10) -> Iterator[FaceObservation]:
    """Follows one face through `frames` (an iterable of (index, timestamp_s, image [H, W, 3])).

    Yields one FaceObservation per frame, in order; see `FaceTracker` for the arguments.
    """
    tracker = FaceTracker(landmarker, face=face, order=order, redetect_every=redetect_every,
                          min_iou=min_iou, max_missed=max_missed)
    for index, timestamp_s, image in frames:
        yield tracker.update(index, timestamp_s, image)


def observe_image(image: np.ndarray, landmarker: FaceLandmarker, face: int = 0,
                  order: str = "size", frame_index: int = 0,
                  timestamp_s: float = 0.0) -> FaceObservation:
    """The `face`-th face (in `order`) of one image `[H, W, 3] uint8 RGB` as a FaceObservation."""
    detections: Detections = landmarker.detect(image)
    chosen = select_face(detections.boxes, face, order)
    if chosen is None:
        return FaceObservation.missing(frame_index, timestamp_s)
    return FaceObservation(int(frame_index), float(timestamp_s), True,
                           detections.boxes[chosen].copy(), detections.landmarks[chosen].copy(),
                           float(detections.scores[chosen]),
                           None if detections.dense is None else detections.dense[chosen].copy())
