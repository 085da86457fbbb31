"""The per-frame material of one video: crops, both landmark sets, skin masks, frontal flags.

The front end (`cpem_jax.detect`) follows one face (the largest) and crops it in one pass. With
the teacher, the identity-locked fit (`cpem_jax.estimation`) runs that same pass and its
`VideoEstimate` carries the crops and landmarks, so nothing is detected twice and the teacher's
coefficients belong to exactly the crops written. Only frames with a face are kept.

* `landmarks/`: the front end's 68 points in crop pixels (MediaPipe's iBUG subset of its dense
  mesh where MediaPipe runs, else dlib's).
* `landmarks2d/`: dlib's 68 points regressed on the crop, in dlib's own face box: the HOG
  detector's box on the crop that overlaps the front end's landmarks, or, where the detector
  misses (turned faces), a box placed from the front end's landmarks with the video's median
  box-to-landmark offset (`DEFAULT_DLIB_BOX_OFFSET` when no frame of the video had a detection).
  Without dlib the front end's points are copied, so the folder stays readable (and the
  "paper" landmark merge equals the "3d" one); the marker says so.
* Skin masks: `cpem_jax.fit.skin_mask.skin_mask_from_landmarks` on the front end's 68 points
  (jaw contour closed over the raised brows, minus eyes, brows and inner mouth): no face parser
  is available offline.
* Frontal flag: |yaw| <= `yaw_threshold_deg`, yaw from the teacher fit, or without it from the
  fit's own starting pose: the PnP of the model's mean face on the front end's dense points (or
  the inner 68 points without them), `SequenceFitter.initial_poses`.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from cpem_jax.detect.tracking import (box_from_landmarks, box_iou, box_offset_from_landmarks,
                                     landmark_extent)
from cpem_jax.fit.skin_mask import skin_mask_from_landmarks

# dlib's HOG box relative to the extent of the front end's 68 points ((corner - extent centre) /
# extent size, per coordinate): the median over the 172 shared demo crops (VoxCeleb2 frames)
# where the detector found the face, with MediaPipe's 68 points.
DEFAULT_DLIB_BOX_OFFSET = np.array([-0.59, -0.61, 0.46, 0.44])
MIN_BOX_IOU = 0.3


@dataclasses.dataclass(frozen=True)
class VideoFrames:
    """The frames with a face of one video.

    Attributes:
      n_read: frames read from the source (with a face or not).
      frame_index: [M] int64 source frame numbers.
      crops: [M, S, S, 3] uint8 RGB face crops.
      landmarks: [M, 68, 2] float32 the front end's 68 points, crop pixels (centres at +0.5).
      yaw_deg: [M] float32 head yaw in degrees.
      yaw_source: "teacher" (the fit's rotation) or "pnp" (mean-face PnP).
      fps: the source's frame rate.
      estimate: the teacher's VideoEstimate (all n_read frames), or None.
    """
    n_read: int
    frame_index: np.ndarray
    crops: np.ndarray
    landmarks: np.ndarray
    yaw_deg: np.ndarray
    yaw_source: str
    fps: float
    estimate: object = None

    @property
    def n_found(self) -> int:
        return len(self.frame_index)


def to_crop(points: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """points [M, P, 2] image pixels, affines [M, 2, 3] image -> crop -> [M, P, 2] float32."""
    points, affines = np.asarray(points, np.float64), np.asarray(affines, np.float64)
    return (np.einsum("mpj,mij->mpi", points, affines[:, :, :2])
            + affines[:, None, :, 2]).astype(np.float32)


def frames_from_estimate(estimate) -> VideoFrames:
    """The teacher's frames with a face (`cpem_jax.estimation.VideoEstimate` with crops)."""
    if estimate.crops is None:
        raise ValueError("the teacher estimate carries no crops; it must come from an estimator "
                         "run on the source, not from a file")
    found = np.asarray(estimate.face_found, bool)
    return VideoFrames(
        n_read=estimate.n_frames, frame_index=np.asarray(estimate.frame_index)[found],
        crops=np.asarray(estimate.crops)[found],
        landmarks=to_crop(estimate.landmarks_detected[found], estimate.crop_affine[found]),
        yaw_deg=np.degrees(np.asarray(estimate.rotation, np.float64)[:, 1]).astype(np.float32),
        yaw_source="teacher", fps=float(estimate.fps), estimate=estimate)


def frames_from_tracked(tracked, initial_poses) -> VideoFrames:
    """The front end's frames with a face (`cpem_jax.detect.pipeline.TrackedCrops`).

    Args:
      initial_poses: the fit's starting pose, `SequenceFitter.initial_poses(landmarks [M, 68, 2],
        dense [M, P, 2] or None) -> (rotation [M, 3], translation [M, 3])` (mean-face PnP); its
        yaw flags the frames.
    """
    found = tracked.found
    landmarks = tracked.crop_landmarks()[found]
    dense = tracked.crop_dense()  # [N, P, 2] or None (a 68-point front end)
    rotation, _ = initial_poses(landmarks, None if dense is None else dense[found])
    return VideoFrames(
        n_read=len(found), frame_index=np.array([o.frame_index for o in tracked.observations],
                                                np.int64)[found],
        crops=tracked.crops[found], landmarks=landmarks,
        yaw_deg=np.degrees(np.asarray(rotation, np.float64)[:, 1]).astype(np.float32),
        yaw_source="pnp", fps=float(tracked.fps))


def frontal_flags(yaw_deg: np.ndarray, threshold_deg: float) -> np.ndarray:
    """[M] bool: |yaw| <= threshold_deg."""
    return np.abs(np.asarray(yaw_deg, np.float64)) <= float(threshold_deg)


def skin_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """[M, 68, 2] crop pixels -> [M, size, size] float32 {0, 1} (`skin_mask_from_landmarks`)."""
    return np.stack([skin_mask_from_landmarks(lm, size) for lm in landmarks]) if len(landmarks) \
        else np.zeros((0, size, size), np.float32)


class Dlib68:
    """dlib's 68 points on face crops (module docstring), or a copy of the front end's where dlib
    is not installed (`available` is then False and `note` says why)."""

    def __init__(self, landmarker=None):
        self.note = ""
        if landmarker is None:
            try:
                from cpem_jax.detect.dlib_landmarker import DlibLandmarker
                landmarker = DlibLandmarker()
            except (ImportError, OSError) as err:
                self.note = (f"dlib unavailable ({str(err).splitlines()[0]}); landmarks2d/ holds "
                             f"a copy of the front end's points")
        self.landmarker = landmarker

    @property
    def available(self) -> bool:
        return self.landmarker is not None

    def __call__(self, crops: np.ndarray, landmarks: np.ndarray) -> Tuple[np.ndarray, int]:
        """crops [M, S, S, 3] uint8, front-end landmarks [M, 68, 2] crop pixels ->
        (dlib's [M, 68, 2] float32 crop pixels, how many crops the HOG detector found)."""
        if not self.available:
            return np.asarray(landmarks, np.float32).copy(), 0
        boxes: list = []
        for crop, lm in zip(crops, landmarks):
            found, _ = self.landmarker.detect_boxes(crop)
            iou = box_iou(landmark_extent(lm), found) if len(found) else np.zeros(0)
            boxes.append(found[int(np.argmax(iou))] if len(iou) and iou.max() >= MIN_BOX_IOU
                         else None)
        detected = [i for i, b in enumerate(boxes) if b is not None]
        offset = (np.median([box_offset_from_landmarks(boxes[i], landmarks[i]) for i in detected],
                            axis=0) if detected else DEFAULT_DLIB_BOX_OFFSET)
        out = np.zeros((len(crops), 68, 2), np.float32)
        for i, (crop, lm) in enumerate(zip(crops, landmarks)):
            box = boxes[i] if boxes[i] is not None else box_from_landmarks(lm, offset)
            out[i] = self.landmarker.landmarks_in_boxes(crop, np.asarray(box)[None])[0]
        return out, len(detected)


def check_frames(frames: VideoFrames, size: int) -> Optional[str]:
    """None, or one line saying why these frames cannot be written."""
    if frames.n_found == 0:
        return f"no face in any of its {frames.n_read} frames"
    if frames.crops.shape[1:] != (size, size, 3):
        return f"crops are {frames.crops.shape[1:]}, expected ({size}, {size}, 3)"
    if not np.all(np.isfinite(frames.landmarks)):
        return "the front end returned non-finite landmarks on a frame with a face"
    return None
