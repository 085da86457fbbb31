"""MediaPipe FaceLandmarker: a 478-point face mesh, and the 68 iBUG points taken from it.

Needs the PyPI packages `mediapipe` (its Tasks API, `mediapipe.tasks.python.vision`) and
`ai-edge-litert` (Google's TensorFlow Lite runtime), and the model bundle `face_landmarker.task`
(a zip holding `face_detector.tflite`, a short-range BlazeFace detector, and
`face_landmarks_detector.tflite`, the 478-point mesh model). Finding, checking and downloading
the bundle is `cpem_jax.detect.mediapipe_task`; the mesh's numbering, the 478 -> 68 table
(`IBUG68_FROM_MESH`), the canonical mesh and the region-of-interest geometry are
`cpem_jax.detect.mediapipe_mesh`. Both modules' public names are importable from here too.

How it runs. `detect_boxes` is the bundle's face detector through the Tasks API (FaceDetector
with `face_detector.tflite` read from the bundle). `landmarks_in_boxes` / `dense_in_boxes` run the
bundle's mesh model directly (LiteRT) on a crop around each given box, the way MediaPipe's own
graph runs it on a region of interest: a square of `box_scale` x the box's longer side (upright,
or turned by the face's roll where `detect` has it from the detector's eye keypoints and it
exceeds 30 degrees), resized to the model's 256 x 256 input with RGB in [0, 1]; then on the
region MediaPipe derives from a mesh, pass after pass until that region is steady, the last crop
averaged with its mirror image (`flip_average`; `cpem_jax.detect.mediapipe_passes`); where the
two meshes disagree the face may be upside down, and crops turned by a half or a quarter turn
are tried (`MeshPasses.from_box`). Measured
with benchmarks/aflw2000_landmarks.py and benchmarks/synthetic_front_end.py (experiments/
aflw2000, experiments/dense_fit section 17): the mirror average moved the AFLW2000-3D sample's
NME per yaw bin from 3.36 / 4.65 / 9.62 to 3.32 / 4.51 / 9.17 % and the synthetic split's inner
51 points from 2.57 to 2.49 % (iris centres 1.99 -> 1.81 % of the inter-ocular distance), for
one more run of the model per face. So a box from a tracker or from
ground truth gets landmarks where the detector misses the face (MediaPipe's FaceLandmarker task
always starts from its own detector: run on crops around the ground-truth boxes of the
AFLW2000-3D sample, it found no face in 7 of the 11 images beyond 60 degrees of yaw). The model also
gives a face-presence probability (`mesh_in_boxes`), which falls for profile views whose points
are still usable (on 27 300W-LP crops of the demo set: presence 0.001-0.01 on the three lowest,
their points 7-10% of the face size from a 3D-style reference, against 5.7% on average), so
`landmarks_in_boxes` trusts its caller that a face is in the box and gates on `box_min_presence`
(default 0: always points, like dlib's shape predictor). `detect` keeps detector boxes whose
presence reaches `min_presence` (0.5) and asks a second detector about the others
(`second_detector`, dlib's CNN face detector searching a region around the box,
`cpem_jax.detect.cnn_detector`): a face it finds there is kept whatever its presence, on the
second detector's box. The detector's boxes alone are no evidence (it scores random noise up to
0.73), nor is the presence alone: of the 11 AFLW2000-3D sample images beyond 60 degrees of yaw
the detector boxes all 11, the presence rejects 8, the CNN detector finds all 8 and none on 20
noise images (about 0.4 s of CPU per question). On a frontal photo the result agrees with the
FaceLandmarker task to 0.34% of the face size (tests/test_detect_mediapipe.py).

Pixel convention: `cpem_jax.detect.mediapipe_runtime` (the project convention of
`cpem_jax.detect.base` for both the mesh model and the FaceLandmarker task).

Video: the `FaceLandmarker` interface is per image, so MediaPipe's VIDEO running mode (its
FaceLandmarker task follows the faces from the previous frame's mesh and runs its detector only
when it has lost them) is a separate method, `detect_video(image, timestamp_s)`, for callers that
read frames in order with increasing timestamps; `reset_video()` starts a new video. The
project's own tracker (`cpem_jax.detect.FaceTracker`) can instead follow a face through
`dense_following`, the passes started from the region of the face's points in the previous
frame (two runs of the model for a still face instead of three from a box).
"""
from __future__ import annotations

import logging
import weakref
import zipfile
from typing import Optional

import numpy as np

from cpem_jax.detect.base import Detections, FaceLandmarker, check_rgb_uint8
from cpem_jax.detect.cnn_detector import SecondOpinion
from cpem_jax.detect.mediapipe_mesh import (IBUG68_FROM_MESH, N_DENSE, N_MESH, ibug68_from_dense,
                                            mirror_permutation, roi_affine, roi_from_mesh)
from cpem_jax.detect.mediapipe_passes import MeshPasses
from cpem_jax.detect.mediapipe_runtime import (INSTALL_HINT, MeshModel, import_mediapipe,
                                               mediapipe_available, to_pixels)
from cpem_jax.detect.tracking import box_iou, landmark_extent
from cpem_jax.detect.mediapipe_task import (TASK_ENV, TASK_SHA256, TaskFileError,
                                            check_task_file, download_task, file_sha256,
                                            find_task)

__all__ = [
    "MediaPipeLandmarker", "mediapipe_available", "INSTALL_HINT",
    # From mediapipe_mesh and mediapipe_task, so that one import gives the whole backend.
    "IBUG68_FROM_MESH", "N_DENSE", "N_MESH", "ibug68_from_dense", "mirror_permutation",
    "roi_affine", "roi_from_mesh",
    "TASK_ENV", "TASK_SHA256", "TaskFileError", "check_task_file", "download_task", "file_sha256",
    "find_task",
]

_LOG = logging.getLogger(__name__)

# `detect` starts the mesh from the detector's roll beyond this, upright below it: an upright start
# fails from about 45 degrees (`mesh_in_boxes`), and on turned faces (one eye hidden) the eye
# keypoints' roll moved AFLW2000-3D sample points by up to 1 % either way, no better than upright.
_ROLL_START = np.deg2rad(30.0)
# A confirmed face whose points' extent overlaps a kept face's by more than this IoU is that face.
_SAME_FACE_IOU = 0.3


class MediaPipeLandmarker(FaceLandmarker):
    """MediaPipe face detection + the 478-point face mesh, with 68 iBUG points derived from it.

    Args:
      task_path: the face_landmarker.task bundle (None: `find_task()`: $CPEM_FACE_LANDMARKER_TASK,
        the cache folder, $CPEM_SHARED/assets).
      sha256: expected digest of the bundle (None: any FaceLandmarker bundle).
      max_faces: most faces `detect_boxes` and `detect_video` return.
      min_detection_confidence: detector score threshold of `detect_boxes`, in [0, 1].
      min_presence: face-presence threshold of `detect` on detector boxes, in [0, 1].
      box_min_presence: face-presence threshold of `landmarks_in_boxes` / `dense_in_boxes` on
        given boxes, in [0, 1] (0: always points for a finite box).
      box_scale: first crop side of `dense_in_boxes` / the given box's longer side (> 1).
      refine: most further passes of the mesh model, each on the region derived from the
        previous mesh; after the second pass they stop once that region is steady (angle
        within 5 degrees, centre and side within 5 % of the side).
      flip_average: also run the last pass on the mirrored crop and average the two meshes
        (module docstring).
      second_detector: `detect` asks dlib's CNN face detector (`CnnFaceDetector.boxes_near`)
        about detector boxes whose face presence is below `min_presence`, and keeps the faces it
        finds there whatever their presence (module docstring). Without dlib it logs one
        warning and keeps only the faces that pass `min_presence`.
      num_threads: threads of the LiteRT interpreter (None: the runtime's choice).
    Raises:
      ImportError: mediapipe or ai-edge-litert is not installed (names the pip command).
      TaskFileError: the bundle is missing or not the expected file.
      OSError: mediapipe's native library does not load (it needs libEGL.so.1, libGLESv2.so.2).
      ValueError: an option out of range.

    Attributes:
      task_path: the bundle in use.
    """

    def __init__(self, task_path: Optional[str] = None, sha256: Optional[str] = TASK_SHA256,
                 max_faces: int = 4, min_detection_confidence: float = 0.5,
                 min_presence: float = 0.5, box_min_presence: float = 0.0,
                 box_scale: float = 1.5, refine: int = 4, flip_average: bool = True,
                 second_detector: bool = True, num_threads: Optional[int] = None) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}.")
        for name, value in (("min_detection_confidence", min_detection_confidence),
                            ("min_presence", min_presence),
                            ("box_min_presence", box_min_presence)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}.")
        if box_scale <= 1.0:
            raise ValueError(f"box_scale must be > 1 (a margin around the box), got {box_scale}.")
        self._mp, self._vision, self._base_options = import_mediapipe()
        self.task_path = find_task(task_path, sha256)
        self.max_faces = int(max_faces)
        self.min_presence = float(min_presence)
        self.box_min_presence = float(box_min_presence)
        self.box_scale = float(box_scale)
        with zipfile.ZipFile(self.task_path) as bundle:
            detector_model = bundle.read("face_detector.tflite")
            mesh_model = bundle.read("face_landmarks_detector.tflite")
        self._passes = MeshPasses(MeshModel(mesh_model, num_threads), refine,
                                  mirror_permutation(self.task_path, None) if flip_average
                                  else None)
        self._second = SecondOpinion(enabled=second_detector)
        self._tasks: list = []
        # Close the native tasks before interpreter shutdown tears their modules down.
        self._finalizer = weakref.finalize(self, _close_all, self._tasks)
        vision = self._vision
        self._detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
            base_options=self._base_options(model_asset_buffer=detector_model),
            min_detection_confidence=float(min_detection_confidence)))
        self._tasks.append(self._detector)
        self._video_landmarker = None
        self._last_timestamp_ms: Optional[int] = None

    # -- images --------------------------------------------------------------------------------

    def _mp_image(self, image: np.ndarray):
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                              data=np.ascontiguousarray(image))

    def detect_boxes(self, image: np.ndarray) -> tuple:
        """Faces in `image [H, W, 3] uint8 RGB` -> (boxes [N, 4] float32, scores [N] float32).

        Boxes are the detector's (BlazeFace) square-ish boxes, about brow-to-chin high, whole
        pixels; scores in [0, 1]. At most `max_faces`, best first.
        """
        return self.detect_faces(image)[:2]

    def detect_faces(self, image: np.ndarray) -> tuple:
        """`detect_boxes` with each face's roll: (boxes [N, 4], scores [N], angles [N]) float32.

        angles: radians of the line from the detector's right-eye keypoint to its left-eye one
        (the subject's sides), in image pixels, measured as `roi_from_mesh` measures the mesh's
        eye-corner line; 0 where the detector gives no keypoints.
        """
        check_rgb_uint8(image)
        height, width = image.shape[:2]
        result = self._detector.detect(self._mp_image(image))
        boxes, scores, angles = [], [], []
        for detection in result.detections:
            b = detection.bounding_box
            boxes.append([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height])
            scores.append(detection.categories[0].score if detection.categories else np.nan)
            eyes = detection.keypoints or []
            angles.append(np.arctan2((eyes[1].y - eyes[0].y) * height,
                                     (eyes[1].x - eyes[0].x) * width) if len(eyes) > 1 else 0.0)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        angles = np.asarray(angles, np.float32).reshape(-1)
        order = np.argsort(-np.nan_to_num(scores, nan=-1.0), kind="stable")[:self.max_faces]
        return boxes[order], scores[order], angles[order]

    def _mesh_of_box(self, image: np.ndarray, box, angle: float = 0.0) -> tuple:
        """(points [478, 2] image pixels, presence) of one finite box: the passes
        (`MeshPasses.from_box`) from a square around it turned by `angle` (radians, see
        `mesh_in_boxes`)."""
        x0, y0, x1, y1 = box
        roi = (((x0 + x1) / 2, (y0 + y1) / 2), self.box_scale * max(x1 - x0, y1 - y0),
               float(angle))
        return self._passes.from_box(image, roi)

    def mesh_in_boxes(self, image: np.ndarray, boxes: np.ndarray,
                      angles: Optional[np.ndarray] = None) -> tuple:
        """All 478 points and the face-presence probability of the faces in `boxes`.

        Args:
          image: [H, W, 3] uint8 RGB.
          boxes: [N, 4] face boxes [x0, y0, x1, y1] in image pixels (any face box: a detector's,
            a tracker's, or the tight box of ground-truth landmarks).
          angles: [N] each face's roll in radians (`detect_faces`), the first crop's rotation;
            None: upright crops. The mesh model does not find a face rolled by 45 degrees or
            more in an upright crop (a frontal photo turned 45-90 degrees: 23-46 % of the face
            size off, presence 0.00-0.03; from the detector's roll, 1.0-1.6 %).
        Returns:
          (dense [N, 478, 2] float32 image pixels, NaN rows only for a non-finite box;
          presence [N] float32 in [0, 1], NaN for a non-finite box).
        """
        check_rgb_uint8(image)
        boxes = np.asarray(boxes, np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be [N, 4], got {boxes.shape}.")
        angles = np.zeros(len(boxes)) if angles is None else np.asarray(angles, np.float64)
        if angles.shape != (len(boxes),):
            raise ValueError(f"angles must be [{len(boxes)}] (one per box), got {angles.shape}.")
        dense = np.full((len(boxes), N_DENSE, 2), np.nan, np.float32)
        presence = np.full(len(boxes), np.nan, np.float32)
        for i, box in enumerate(boxes):
            if (not np.isfinite(box).all() or not np.isfinite(angles[i])
                    or max(box[2] - box[0], box[3] - box[1]) <= 0):
                continue
            dense[i], presence[i] = self._mesh_of_box(image, box, angles[i])
        return dense, presence

    def dense_in_boxes(self, image: np.ndarray, boxes: np.ndarray,
                       angles: Optional[np.ndarray] = None) -> np.ndarray:
        """[N, 478, 2] float32 points of the faces in `boxes [N, 4]`, crops started from the
        faces' roll `angles [N]` (radians; None: upright; see `mesh_in_boxes`).

        NaN rows where the face presence is below `box_min_presence`.
        """
        dense, presence = self.mesh_in_boxes(image, boxes, angles)
        dense[~(presence >= self.box_min_presence)] = np.nan
        return dense

    def dense_following(self, image: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """[N, 478, 2] float32 points of faces followed from their points in the previous
        frame, `previous [N, 478, 2]` image pixels: the first pass on the region derived from
        those points, as MediaPipe's own video graph carries a face from frame to frame, then
        the passes of `mesh_in_boxes` (stopping after the first where its region is steady: a
        still face costs two runs of the model, the pass and its mirror, instead of three).
        NaN rows where a previous row is not finite or the presence is below
        `box_min_presence`."""
        check_rgb_uint8(image)
        previous = np.asarray(previous, np.float64)
        if previous.ndim != 3 or previous.shape[1:] != (N_DENSE, 2):
            raise ValueError(f"previous points must be [N, {N_DENSE}, 2], got {previous.shape}.")
        dense = np.full(previous.shape, np.nan, np.float32)
        for i, points in enumerate(previous):
            if np.isfinite(points[:N_MESH]).all():
                dense[i], presence, _ = self._passes(image, roi_from_mesh(points),
                                                     from_mesh=True)
                if not presence >= self.box_min_presence:
                    dense[i] = np.nan
        return dense

    @staticmethod
    def landmarks_from_dense(dense: np.ndarray) -> np.ndarray:
        """The 68 iBUG points [..., 68, 2] of dense points [..., 478, 2] (`ibug68_from_dense`)."""
        return ibug68_from_dense(dense)

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The 68 iBUG points [N, 68, 2] float32 of the faces in `boxes [N, 4]` of `image`.

        NaN rows where the face presence is below `box_min_presence` (see `mesh_in_boxes`).
        """
        return ibug68_from_dense(self.dense_in_boxes(image, boxes))

    def detect(self, image: np.ndarray) -> Detections:
        """Every face in `image [H, W, 3] uint8 RGB` with its 68 points and all 478 (`dense`).

        Detector boxes where the mesh model finds no face are left out, unless the second
        detector finds a face there (`second_detector`; its box, in this detector's convention,
        replaces the first detector's and keeps that one's score).
        """
        check_rgb_uint8(image)
        candidates, candidate_scores, angles = self.detect_faces(image)
        if len(candidates) == 0:
            return Detections.empty()
        angles = np.where(np.abs(angles) > _ROLL_START, angles, 0.0)
        dense, presence = self.mesh_in_boxes(image, candidates, angles)
        found = presence >= self.min_presence
        boxes, dense = list(candidates[found]), list(dense[found])
        scores = list(candidate_scores[found])
        for k in np.flatnonzero(~found):
            for box in self._second.mediapipe_boxes_near(image, candidates[k]):
                if len(boxes) >= self.max_faces:
                    break
                points = self.mesh_in_boxes(image, box[None])[0][0]
                # The same face as one kept already? By the points' extent: the two detectors'
                # boxes of one face differ (BlazeFace's box of a small face is twice the CNN's).
                if boxes and box_iou(landmark_extent(points[:N_MESH]), landmark_extent(
                        np.array(dense)[:, :N_MESH])).max() > _SAME_FACE_IOU:
                    continue
                boxes.append(box)
                dense.append(points)
                scores.append(candidate_scores[k])
        if not boxes:
            return Detections.empty()
        dense = np.array(dense, np.float32)
        return Detections(np.array(boxes, np.float32), ibug68_from_dense(dense),
                          np.array(scores, np.float32), dense=dense)

    def detect_near(self, image: np.ndarray, box) -> Detections:
        """Faces the second detector finds around `box [4]`, for a tracker that lost its face.

        MediaPipe's detector sometimes boxes nothing where the face is plain to see (a small face
        in a large frame: on liveportrait_s13, 20 of 103 frames); a tracker that was following a
        face asks here around its last box. Detections are in `detect`'s convention, scores NaN
        (the second detector's confidences are not probabilities); none without the second
        detector.
        """
        check_rgb_uint8(image)
        boxes = self._second.mediapipe_boxes_near(image, box)[:self.max_faces]
        if len(boxes) == 0:
            return Detections.empty()
        dense = self.mesh_in_boxes(image, boxes)[0]
        return Detections(boxes, ibug68_from_dense(dense), np.full(len(boxes), np.nan, np.float32),
                          dense=dense)

    # -- video ---------------------------------------------------------------------------------

    def detect_video(self, image: np.ndarray, timestamp_s: float) -> Detections:
        """One frame of a video, with the FaceLandmarker task in MediaPipe's VIDEO mode.

        The task follows the faces from the previous frame's mesh and runs its detector only
        when it has lost them, so frames must come in order.

        Args:
          image: [H, W, 3] uint8 RGB frame.
          timestamp_s: the frame's time in seconds; must increase by at least 1 ms per call
            until `reset_video()`.
        Returns:
          Detections with up to `max_faces` faces: boxes = tight boxes of the 468 mesh points
          (not detector boxes), landmarks [N, 68, 2], dense [N, 478, 2], scores NaN (the task
          gives no per-face score).
        """
        check_rgb_uint8(image)
        timestamp_ms = int(round(float(timestamp_s) * 1000.0))
        if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
            raise ValueError(f"video timestamps must increase: got {timestamp_ms} ms after "
                             f"{self._last_timestamp_ms} ms; call reset_video() to start a new "
                             f"video.")
        if self._video_landmarker is None:
            vision = self._vision
            self._video_landmarker = vision.FaceLandmarker.create_from_options(
                vision.FaceLandmarkerOptions(
                    base_options=self._base_options(model_asset_path=self.task_path),
                    running_mode=vision.RunningMode.VIDEO, num_faces=self.max_faces))
            self._tasks.append(self._video_landmarker)
        result = self._video_landmarker.detect_for_video(self._mp_image(image), timestamp_ms)
        self._last_timestamp_ms = timestamp_ms
        height, width = image.shape[:2]
        dense = np.array([to_pixels(face, width, height) for face in result.face_landmarks],
                         np.float32).reshape(-1, N_DENSE, 2)
        return Detections(landmark_extent(dense[:, :N_MESH]), ibug68_from_dense(dense),
                          np.full(len(dense), np.nan, np.float32), dense=dense)

    def reset_video(self) -> None:
        """Forgets the followed faces and the last timestamp (the next frame starts a video)."""
        if self._video_landmarker is not None:
            self._tasks.remove(self._video_landmarker)
            self._video_landmarker.close()
            self._video_landmarker = None
        self._last_timestamp_ms = None

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Releases the native MediaPipe tasks; the landmarker cannot be used afterwards."""
        self._finalizer()

    def __enter__(self) -> "MediaPipeLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close_all(tasks: list) -> None:
    """Closes MediaPipe tasks (at `close()`, garbage collection, or interpreter exit)."""
    for task in tasks:
        try:
            task.close()
        except RuntimeError as err:
            # At interpreter exit the tasks' thread pools are already shut down ("cannot schedule
            # new futures after shutdown"); the process is ending, so only make sure the task's
            # own __del__ does not call into its torn-down dispatcher again.
            _LOG.debug("closing a MediaPipe task at exit: %s", err)
            task._handle = None  # noqa: SLF001
    tasks.clear()
