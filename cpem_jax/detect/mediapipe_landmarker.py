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
graph runs it on a region of interest: an upright square of `box_scale` x the box's longer side,
resized to the model's 256 x 256 input with RGB in [0, 1]; then `refine` more times on the region
MediaPipe derives from a mesh (rotated so that the outer eye corners 33 -> 263 are level,
centred on the mesh's extent, side 1.5 x its longer side). With `flip_average` (the default) the
last pass also runs on the mirrored crop and averages the two meshes, its points paired by
`mirror_permutation` (the face presence stays the upright crop's): on the 400 frames of the
synthetic test split (exact points) the inner 51 points' NME fell from 2.57 to 2.49 % and the
iris centres' error from 1.99 to 1.81 % of the inter-ocular distance; on the AFLW2000-3D sample
the 68 points' NME per yaw bin from 3.36 / 4.65 / 9.62 to 3.32 / 4.51 / 9.17 %
(benchmarks/synthetic_front_end.py, benchmarks/aflw2000_landmarks.py; experiments/dense_fit,
section 17); it costs one more run of the mesh model per face. So a box from a tracker or from
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

Pixel convention: the mesh model's outputs are continuous coordinates of its input tensor (a
horizontal flip of the input maps x to 256 - x, measured 256.46 +- 0.10 over 59 face crops, not
255), so points map back through the crop's affine unchanged and follow the project convention of
`cpem_jax.detect.base` (pixel centres at integer + 0.5). The FaceLandmarker task (VIDEO mode
below) instead returns normalised coordinates whose product with the image size counts pixel
indices: on 59 face crops upscaled 2x and 3x by pixel repetition its points moved by +0.25 and
+0.33 px per source pixel, as index coordinates must ((f - 1) / (2 f)); 0.5 is added there.

Video: the `FaceLandmarker` interface is per image, so MediaPipe's VIDEO running mode (its
FaceLandmarker task follows the faces from the previous frame's mesh and runs its detector only
when it has lost them) is a separate method, `detect_video(image, timestamp_s)`, for callers that
read frames in order with increasing timestamps; `reset_video()` starts a new video. The
project's own tracker (`cpem_jax.detect.FaceTracker`) can instead follow a face through
`landmarks_in_boxes`, which works on any frame order.
"""
from __future__ import annotations

import logging
import weakref
import zipfile
from typing import Optional, Tuple

import numpy as np

from cpem_jax.detect.base import Detections, FaceLandmarker, check_rgb_uint8
from cpem_jax.detect.crop import apply_affine, invert_affine, warp_image
from cpem_jax.detect.mediapipe_mesh import (IBUG68_FROM_MESH, N_DENSE, N_MESH, ibug68_from_dense,
                                            mirror_permutation, roi_affine, roi_from_mesh)
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

# The mesh model maps a mirrored crop's x to size + _FLIP_SHIFT - x (module docstring: 256.46 for
# the bundle's 256 px model), so mirrored points come back through that map and the average
# keeps the upright crop's convention.
_FLIP_SHIFT = 0.46
# dlib's CNN detector box -> this detector's box: centre moved by (0.059, 0.146) x the CNN box's
# width, side 1.083 x it (medians over 242 frames of the 15 shared talking-head videos where both
# found one face; the mesh's refinement pass re-centres the crop after the first run anyway).
_CNN_BOX_SHIFT = (0.059, 0.146)
_CNN_BOX_SCALE = 1.083
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
      refine: further passes of the mesh model on the region derived from the previous mesh.
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
                 box_scale: float = 1.5, refine: int = 1, flip_average: bool = True,
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
        if refine < 0:
            raise ValueError(f"refine must be >= 0, got {refine}.")
        self._mp, self._vision, self._base_options = import_mediapipe()
        self.task_path = find_task(task_path, sha256)
        self.max_faces = int(max_faces)
        self.min_presence = float(min_presence)
        self.box_min_presence = float(box_min_presence)
        self.box_scale = float(box_scale)
        self.refine = int(refine)
        with zipfile.ZipFile(self.task_path) as bundle:
            detector_model = bundle.read("face_detector.tflite")
            mesh_model = bundle.read("face_landmarks_detector.tflite")
        self._mesh = MeshModel(mesh_model, num_threads)
        self._mirror = mirror_permutation(self.task_path, None) if flip_average else None
        self._second_detector = second_detector
        self._second = None
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
        check_rgb_uint8(image)
        result = self._detector.detect(self._mp_image(image))
        boxes, scores = [], []
        for detection in result.detections:
            b = detection.bounding_box
            boxes.append([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height])
            scores.append(detection.categories[0].score if detection.categories else np.nan)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        order = np.argsort(-np.nan_to_num(scores, nan=-1.0), kind="stable")[:self.max_faces]
        return boxes[order], scores[order]

    def _mesh_in_roi(self, image: np.ndarray, centre, side: float, angle: float,
                     last: bool = True) -> tuple:
        size = self._mesh.size
        affine = roi_affine(centre, side, angle, size)
        crop = warp_image(image, affine, (size, size), "constant")
        points, presence = self._mesh(crop)
        if last and self._mirror is not None:
            mirrored = self._mesh(crop[:, ::-1])[0][self._mirror]
            mirrored[:, 0] = size + _FLIP_SHIFT - mirrored[:, 0]
            points = (points + mirrored) / 2
        return apply_affine(invert_affine(affine), points), presence

    def mesh_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> tuple:
        """All 478 points and the face-presence probability of the faces in `boxes`.

        Args:
          image: [H, W, 3] uint8 RGB.
          boxes: [N, 4] face boxes [x0, y0, x1, y1] in image pixels (any face box: a detector's,
            a tracker's, or the tight box of ground-truth landmarks).
        Returns:
          (dense [N, 478, 2] float32 image pixels, NaN rows only for a non-finite box;
          presence [N] float32 in [0, 1], NaN for a non-finite box).
        """
        check_rgb_uint8(image)
        boxes = np.asarray(boxes, np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be [N, 4], got {boxes.shape}.")
        dense = np.full((len(boxes), N_DENSE, 2), np.nan, np.float32)
        presence = np.full(len(boxes), np.nan, np.float32)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            side = self.box_scale * max(x1 - x0, y1 - y0)
            if not np.isfinite([x0, y0, x1, y1]).all() or side <= 0:
                continue
            points, p = self._mesh_in_roi(image, ((x0 + x1) / 2, (y0 + y1) / 2), side, 0.0,
                                          last=self.refine == 0)
            for step in range(self.refine):
                points, p = self._mesh_in_roi(image, *roi_from_mesh(points),
                                              last=step == self.refine - 1)
            presence[i] = p
            dense[i] = points
        return dense, presence

    def dense_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """[N, 478, 2] float32 points of the faces in `boxes [N, 4]` (see `mesh_in_boxes`).

        NaN rows where the face presence is below `box_min_presence`.
        """
        dense, presence = self.mesh_in_boxes(image, boxes)
        dense[~(presence >= self.box_min_presence)] = np.nan
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
        candidates, candidate_scores = self.detect_boxes(image)
        if len(candidates) == 0:
            return Detections.empty()
        dense, presence = self.mesh_in_boxes(image, candidates)
        found = presence >= self.min_presence
        boxes, dense = list(candidates[found]), list(dense[found])
        scores = list(candidate_scores[found])
        for k in np.flatnonzero(~found):
            for box in self._second_opinion(image, candidates[k]):
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
        boxes = self._second_opinion(image, box)[:self.max_faces]
        if len(boxes) == 0:
            return Detections.empty()
        dense = self.mesh_in_boxes(image, boxes)[0]
        return Detections(boxes, ibug68_from_dense(dense), np.full(len(boxes), np.nan, np.float32),
                          dense=dense)

    def _second_opinion(self, image: np.ndarray, box) -> np.ndarray:
        """[N, 4] float32 boxes of the faces the second detector finds around `box [4]`."""
        second = self._second_detector_on_demand()
        if second is None:
            return np.zeros((0, 4), np.float32)
        return _detector_boxes(second.boxes_near(image, box)[0])

    def _second_detector_on_demand(self):
        """The `CnnFaceDetector`, created on first use; None when off or dlib cannot run."""
        if self._second is None and self._second_detector:
            from cpem_jax.detect.cnn_detector import CnnFaceDetector  # noqa: PLC0415
            try:
                self._second = CnnFaceDetector()
            except (ImportError, OSError) as err:
                _LOG.warning("no second face detector for faces MediaPipe's mesh is unsure "
                             "of (%s); turned faces may be missed", str(err).splitlines()[0])
                self._second_detector = False
        return self._second

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


def _detector_boxes(cnn_boxes: np.ndarray) -> np.ndarray:
    """dlib CNN boxes [N, 4] -> boxes [N, 4] float32 in this detector's convention."""
    cnn_boxes = np.asarray(cnn_boxes, np.float64).reshape(-1, 4)
    width = cnn_boxes[:, 2] - cnn_boxes[:, 0]
    centre = (cnn_boxes[:, :2] + cnn_boxes[:, 2:]) / 2 + np.outer(width, _CNN_BOX_SHIFT)
    half = (_CNN_BOX_SCALE * width / 2)[:, None]
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


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
