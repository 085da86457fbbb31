"""Running a front end or a whole estimator on annotated still images (one face per image).

Shared by the AFLW2000-3D and 68-point (.pts) benchmarks. Every annotated image is scored:

- The annotated face: of the detector's faces, the one whose box overlaps the tight box of the
  ground-truth landmarks most, its centre inside that box (`pick_face`).
- Detector misses: where the detector finds no such face, the landmarker starts from a box placed
  on the ground-truth landmarks in the landmarker's own box convention (the median detector box
  relative to the extent of its predicted landmarks over the run's detected images,
  `fallback_offset`; the tight landmark box when nothing was detected at all), and the image is
  counted as a detector miss.

Front end only (`predict_annotated`): `landmarker.detect` per image, then the fallback.

Whole estimator (`estimate_annotated`): the estimator (`cpem_jax.estimation.make_estimator`) runs
on each image as a one-frame input, with `GroundTruthBoxLandmarker` as its front end: a wrapper of
the real landmarker whose detector returns only the annotated face, or the fallback box where the
real detector misses it (counted). The estimator's own code path (tracking, cropping, fitting or
the network) is otherwise untouched, so a change of the estimator shows up here unchanged.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Callable, List, Optional, Sequence

import numpy as np

from cpem_jax.detect.base import N_LANDMARKS, Detections, FaceLandmarker
from cpem_jax.evaluation.image_points import dense68_image, vertices_image

_LOG = logging.getLogger(__name__)

# Fallback box offset when no image of the run was detected: the tight landmark box itself.
TIGHT_OFFSET = np.array([-0.5, -0.5, 0.5, 0.5])


def extent(points: np.ndarray) -> np.ndarray:
    """[..., P, 2] points -> [..., 4] tight boxes (x0, y0, x1, y1)."""
    points = np.asarray(points, np.float64)
    return np.concatenate([points.min(axis=-2), points.max(axis=-2)], axis=-1)


def _centre_size(points: np.ndarray):
    ext = extent(points)
    centre = np.concatenate([(ext[..., :2] + ext[..., 2:]) / 2] * 2, axis=-1)
    size = np.concatenate([ext[..., 2:] - ext[..., :2]] * 2, axis=-1)
    return centre, size


def offset_in_extent(box: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A box [..., 4] relative to the extent of `points [..., P, 2]`: (corner - centre) / size."""
    centre, size = _centre_size(points)
    return (np.asarray(box, np.float64) - centre) / size


def box_in_extent(offset: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inverse of `offset_in_extent`: offset [4] and points [..., P, 2] -> boxes [..., 4]."""
    centre, size = _centre_size(points)
    return centre + np.asarray(offset, np.float64) * size


def pick_face(boxes: np.ndarray, gt_box: np.ndarray) -> Optional[int]:
    """The detection (row of boxes [N, 4]) whose box overlaps `gt_box [4]` most, its centre
    inside `gt_box`; None when there is none."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    gt_box = np.asarray(gt_box, np.float64)
    if len(boxes) == 0:
        return None
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = np.all((centre >= gt_box[:2]) & (centre <= gt_box[2:]), axis=1)
    lo = np.maximum(boxes[:, :2], gt_box[:2])
    hi = np.minimum(boxes[:, 2:], gt_box[2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) + np.prod(gt_box[2:] - gt_box[:2])
    iou = np.where(inside, inter / np.maximum(area - inter, 1e-9), -1.0)
    best = int(np.argmax(iou))
    return best if iou[best] >= 0 else None


def fallback_offset(boxes: np.ndarray, points: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """The landmarker's box convention: the median over detected images of the detector box
    relative to the extent of its landmarks.

    Args:
      boxes: [N, 4] detector boxes; points: [N, 68, 2] the landmarks predicted in them;
      hits: [N] bool, the images where the annotated face was detected.
    Returns:
      [4] float64 offset for `box_in_extent` (`TIGHT_OFFSET` when no image was detected).
    """
    hits = np.asarray(hits, bool) & np.isfinite(points).all(axis=(1, 2)) \
        & np.isfinite(boxes).all(axis=1)
    if not hits.any():
        return TIGHT_OFFSET.copy()
    return np.median(offset_in_extent(boxes[hits], points[hits]), axis=0)


@dataclasses.dataclass
class FrontEndPredictions:
    """A landmarker's raw 68 points on N annotated images.

    Attributes:
      landmarks: [N, 68, 2] float64 image pixels (NaN rows: no landmarks even from the
        ground-truth box).
      missed: [N] bool, the detector found no face at the annotated face.
      boxes: [N, 4] float64 the box the landmarks were regressed from (detector box, or the
        fallback box placed on the ground-truth landmarks where missed).
      detect_s: [N] wall seconds of the detection call (detector + landmarks).
      fallback_s: [N] wall seconds of the fallback call (0 where not missed).
      cpu_s: [N] process CPU seconds of both calls together.
      offset: [4] the fallback box convention used (`fallback_offset`).
    """
    landmarks: np.ndarray
    missed: np.ndarray
    boxes: np.ndarray
    detect_s: np.ndarray
    fallback_s: np.ndarray
    cpu_s: np.ndarray
    offset: np.ndarray


def predict_annotated(landmarker: FaceLandmarker, image_paths: Sequence[str],
                      gt_landmarks: np.ndarray, progress: bool = False,
                      read_image: Optional[Callable[[str], np.ndarray]] = None,
                      desc: str = "front end") -> FrontEndPredictions:
    """Runs a FaceLandmarker on every image, with the fallback for detector misses (module doc).

    Args:
      landmarker: a `cpem_jax.detect.FaceLandmarker`.
      image_paths: N image files.
      gt_landmarks: [N, 68, 2] ground-truth points in image pixels (they choose the annotated
        face and place the fallback box).
      progress: show a progress bar.
      read_image: path -> [H, W, 3] uint8 RGB (default `cpem_jax.io.read_image`).
    """
    if read_image is None:
        from cpem_jax.io import read_image
    gt_landmarks = np.asarray(gt_landmarks, np.float64)
    n = len(image_paths)
    pred = np.full((n, N_LANDMARKS, 2), np.nan)
    boxes = np.full((n, 4), np.nan)
    missed = np.zeros(n, bool)
    detect_s, fallback_s, cpu_s = np.zeros(n), np.zeros(n), np.zeros(n)
    gt_boxes = extent(gt_landmarks)
    iterator = range(n)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc=desc, unit="image")
    for i in iterator:
        image = read_image(image_paths[i])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        found = landmarker.detect(image)
        detect_s[i] = time.perf_counter() - wall0
        cpu_s[i] = time.process_time() - cpu0
        chosen = pick_face(found.boxes, gt_boxes[i])
        if chosen is None:
            missed[i] = True
        else:
            pred[i] = found.landmarks[chosen]
            boxes[i] = found.boxes[chosen]
    offset = fallback_offset(boxes, pred, ~missed)
    for i in np.flatnonzero(missed):
        boxes[i] = box_in_extent(offset, gt_landmarks[i])
        image = read_image(image_paths[i])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        pred[i] = landmarker.landmarks_in_boxes(image, boxes[i][None].astype(np.float32))[0]
        fallback_s[i] = time.perf_counter() - wall0
        cpu_s[i] += time.process_time() - cpu0
    return FrontEndPredictions(pred, missed, boxes, detect_s, fallback_s, cpu_s, offset)


class GroundTruthBoxLandmarker(FaceLandmarker):
    """A landmarker that sees only the annotated face, with the ground-truth box for misses.

    Wraps a real `FaceLandmarker`. Before each image, `set_target(gt_landmarks [68, 2])` names the
    annotated face. Then `detect_boxes`, `detect` and (where the wrapped landmarker has it)
    `detect_video` run the real detector and return only the face `pick_face` matches to the
    ground-truth box; where there is none they return one box placed on the ground-truth
    landmarks (`box_in_extent(offset, gt_landmarks)`, the landmarker's box convention) with its
    landmarks from `landmarks_in_boxes` (and `dense_in_boxes` where the wrapped landmarker has
    it), and set `missed`. Every other attribute (`landmarks_in_boxes`, `dense_in_boxes`, ...)
    is the wrapped landmarker's.

    Args:
      landmarker: the real front end.
      offset: [4] fallback box convention (`fallback_offset`; default the tight landmark box).
    Attributes:
      missed: True when a detector call since the last `set_target` fell back to the box.
      detector_calls: detector calls since the last `set_target`.
    """

    def __init__(self, landmarker: FaceLandmarker, offset: Optional[np.ndarray] = None):
        self.inner = landmarker
        self.offset = TIGHT_OFFSET.copy() if offset is None else np.asarray(offset, np.float64)
        if self.offset.shape != (4,):
            raise ValueError(f"offset must have 4 values, got {self.offset.shape}")
        self._target: Optional[np.ndarray] = None
        self.missed = False
        self.detector_calls = 0

    def __getattr__(self, name):
        # Only reached for attributes this class does not define.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def set_target(self, gt_landmarks: np.ndarray) -> None:
        """Names the annotated face of the next image: its ground-truth points [68, 2]."""
        gt = np.asarray(gt_landmarks, np.float64)
        if gt.ndim != 2 or gt.shape[1] != 2 or not np.isfinite(gt).all():
            raise ValueError(f"ground-truth landmarks must be finite [P, 2], got {gt.shape}")
        self._target = gt
        self.missed = False
        self.detector_calls = 0

    def _gt(self) -> np.ndarray:
        if self._target is None:
            raise RuntimeError("GroundTruthBoxLandmarker: call set_target(gt_landmarks) before "
                               "each image")
        return self._target

    @property
    def fallback_box(self) -> np.ndarray:
        """[4] float32 the box placed on the current ground-truth landmarks."""
        return box_in_extent(self.offset, self._gt()).astype(np.float32)

    def _fall_back(self) -> np.ndarray:
        self.missed = True
        return self.fallback_box[None]

    def detect_boxes(self, image: np.ndarray) -> tuple:
        """(boxes [1, 4] float32, scores [1] float32): the annotated face's detector box, or the
        fallback box (score 0) where the detector misses it."""
        gt_box = extent(self._gt())
        self.detector_calls += 1
        boxes, scores = self.inner.detect_boxes(image)
        chosen = pick_face(boxes, gt_box)
        if chosen is None:
            return self._fall_back(), np.zeros(1, np.float32)
        return (np.asarray(boxes, np.float32)[chosen:chosen + 1],
                np.asarray(scores, np.float32).reshape(-1)[chosen:chosen + 1])

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The wrapped landmarker's landmarks [N, 68, 2] in `boxes [N, 4]`."""
        return self.inner.landmarks_in_boxes(image, boxes)

    def _restrict(self, image: np.ndarray, found: Detections) -> Detections:
        chosen = pick_face(found.boxes, extent(self._gt()))
        if chosen is not None:
            return found.take([chosen])
        box = self._fall_back()
        dense = None
        if found.dense is not None and hasattr(self.inner, "dense_in_boxes"):
            dense = self.inner.dense_in_boxes(image, box)
        return Detections(box, self.inner.landmarks_in_boxes(image, box),
                          np.zeros(1, np.float32), dense=dense)

    def detect(self, image: np.ndarray) -> Detections:
        """The annotated face only (its landmarks and, for a dense landmarker, `dense`)."""
        self._gt()
        self.detector_calls += 1
        return self._restrict(image, self.inner.detect(image))

    def detect_video(self, image: np.ndarray, timestamp_s: float) -> Detections:
        """`detect` through the wrapped landmarker's `detect_video` (when it has one)."""
        if not hasattr(self.inner, "detect_video"):
            raise AttributeError(f"{type(self.inner).__name__} has no detect_video")
        self._gt()
        self.detector_calls += 1
        return self._restrict(image, self.inner.detect_video(image, timestamp_s))


@dataclasses.dataclass
class EstimatorPredictions:
    """An estimator's output on N annotated images (one-frame inputs).

    Attributes:
      landmarks: [N, 68, 2] float64 the model's 68 landmarks in image pixels
        (`VideoEstimate.landmarks_fitted_image`; NaN rows where the estimator found no face).
      rotation: [N, 3] float64 head rotation (pitch, yaw, roll) radians, the project's
        convention (cpem_jax.geometry.rotation); NaN rows where no face.
      expression: [N, K] float64 the face model's expression weights (NaN rows where no face).
      unit_names: K expression unit names.
      missed: [N] bool, the detector missed the annotated face (the ground-truth box was used).
      seconds: [N] wall seconds of each estimator call (read, detect, crop, estimate).
      cpu_s: [N] process CPU seconds of each call.
      errors: N strings, "" or the reason an image has no estimate.
      landmarks_dense68: [N, 68, 2] float64 the fitted face's points at the dense front end's
        68 (`dense68_image`), image pixels; None when the model has no dense table.
      landmarks_3d68: [N, 68, 2] float64 the fitted face's 68 points in the 3D convention
        (`cpem_jax.face_model.ibug68_3d`, `vertices_image`), image pixels; None when the model
        has no such table.
    """
    landmarks: np.ndarray
    rotation: np.ndarray
    expression: np.ndarray
    unit_names: List[str]
    missed: np.ndarray
    seconds: np.ndarray
    cpu_s: np.ndarray
    errors: List[str]
    landmarks_dense68: Optional[np.ndarray] = None
    landmarks_3d68: Optional[np.ndarray] = None


def estimate_annotated(estimator, front_end: GroundTruthBoxLandmarker,
                       image_paths: Sequence[str], gt_landmarks: np.ndarray,
                       progress: bool = False, desc: str = "estimator",
                       face_model: Optional[str] = None) -> EstimatorPredictions:
    """Runs an estimator on every image as a one-frame input (module docstring).

    Args:
      estimator: from `cpem_jax.estimation.estimate.make_estimator(..., landmarker=front_end)`:
        estimator(source, face=0, progress=...) -> VideoEstimate.
      front_end: the same `GroundTruthBoxLandmarker` the estimator was built with.
      image_paths: N image files.
      gt_landmarks: [N, 68, 2] ground-truth points in image pixels.
      face_model: the spec the estimator's model was loaded from (`load_face_model`), for the
        3D-convention points' reading model (`ibug68_3d.ibug68_3d_reading`).
    """
    from cpem_jax.detect.pipeline import NoFaceError

    gt_landmarks = np.asarray(gt_landmarks, np.float64)
    n = len(image_paths)
    pred = np.full((n, N_LANDMARKS, 2), np.nan)
    rotation = np.full((n, 3), np.nan)
    expressions: List[Optional[np.ndarray]] = [None] * n
    unit_names: List[str] = list(getattr(getattr(estimator, "model", None),
                                         "expression_names", ()) or ())
    missed = np.zeros(n, bool)
    table, (model3d, ids3d) = _model_tables(estimator, face_model)
    dense68 = None if table is None else np.full((n, N_LANDMARKS, 2), np.nan)
    points3d = None if ids3d is None else np.full((n, N_LANDMARKS, 2), np.nan)
    seconds, cpu_s = np.zeros(n), np.zeros(n)
    errors = [""] * n
    iterator = range(n)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc=desc, unit="image")
    for i in iterator:
        front_end.set_target(gt_landmarks[i])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        try:
            estimate = estimator(image_paths[i], face=0, progress=False)
        except NoFaceError as err:
            estimate = None
            errors[i] = str(err)
        seconds[i] = time.perf_counter() - wall0
        cpu_s[i] = time.process_time() - cpu0
        missed[i] = front_end.missed
        if estimate is None or not bool(np.asarray(estimate.face_found)[0]):
            errors[i] = errors[i] or "the estimator found no face"
            _LOG.warning("%s: %s", os.path.basename(image_paths[i]), errors[i])
            continue
        pred[i] = estimate.landmarks_fitted_image()[0]
        if dense68 is not None:
            dense68[i] = dense68_image(estimate, table)[0]
        if points3d is not None:
            points3d[i] = vertices_image(estimate, model3d, ids3d)[0]
        rotation[i] = estimate.per_frame("rotation")[0]
        expressions[i] = np.asarray(estimate.per_frame("expression")[0], np.float64)
        unit_names = list(estimate.unit_names)
    k = len(unit_names)
    expression = np.full((n, k), np.nan)
    for i, row in enumerate(expressions):
        if row is not None:
            expression[i] = row
    return EstimatorPredictions(pred, rotation, expression, unit_names, missed, seconds, cpu_s,
                                errors, dense68, points3d)


def _model_tables(estimator, spec: Optional[str] = None):
    """(dense correspondence, (model to read the 3D-convention iBUG points with, their vertex
    ids)) of the estimator's face model, loaded from `spec`; None and (None, None) without a
    model or such a table (an unusable 3D table is logged)."""
    model = getattr(estimator, "model", None)
    if model is None:
        return None, (None, None)
    from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
    from cpem_jax.face_model.ibug68_3d import Ibug68TableError, ibug68_3d_reading
    try:
        table = dense_landmarks_for(model)
    except (KeyError, ValueError, OSError):
        table = None
    try:
        reading = ibug68_3d_reading(model, spec)
    except Ibug68TableError as err:
        _LOG.warning("%s; scoring the model's own 68 landmark vertices", err)
        reading = (None, None)
    return table, reading

