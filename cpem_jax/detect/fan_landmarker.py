"""Plug-in point for the face-alignment network (FAN, Bulat & Tzimiropoulos 2017).

The paper's landmarks combine a 3D face-alignment network (robust jaw contour under pose) with
dlib (accurate inner face). The `face_alignment` package (PyPI `face-alignment`, PyTorch) provides
FAN; it downloads its detector and landmark weights on first use, so it is optional here and
only used when installed with its weights reachable. Without it this class raises ImportError
naming the install command; the dlib landmarker is the offline default.

Not exercised by the test suite (the package and weights are absent in CI); the conversion it
does (pixel indices -> pixel centres at +0.5, boxes [x0, y0, x1, y1]) matches `DlibLandmarker`.
"""
from __future__ import annotations

import numpy as np

from cpem_jax.detect.base import N_LANDMARKS, FaceLandmarker, check_rgb_uint8

INSTALL_HINT = ("pip install face-alignment  (needs PyTorch; it downloads the FAN and S3FD "
                "weights on first use)")


class FanLandmarker(FaceLandmarker):
    """68 landmarks from `face_alignment.FaceAlignment`.

    Args:
      landmarks_type: "2D" (visible contour) or "3D" (FAN-3D: the x, y of 3D points, whose jaw
        follows the 3D contour even when it is hidden; the paper's choice).
      device: torch device string, e.g. "cpu" or "cuda".
      face_detector: face_alignment detector name ("sfd", "blazeface", "dlib").
    Raises:
      ImportError: face_alignment is not installed (the message names the pip command).
    """

    def __init__(self, landmarks_type: str = "3D", device: str = "cpu",
                 face_detector: str = "sfd") -> None:
        try:
            import face_alignment  # noqa: PLC0415 (optional dependency)
        except ImportError as error:
            raise ImportError(f"FanLandmarker needs face_alignment: {INSTALL_HINT}; or use "
                              "DlibLandmarker.") from error
        # The enum names changed across versions (`_2D` before 1.4, `TWO_D` after).
        names = {"2D": ("TWO_D", "_2D"), "3D": ("THREE_D", "_3D")}
        if landmarks_type not in names:
            raise ValueError(f"landmarks_type must be '2D' or '3D', got {landmarks_type!r}.")
        kinds = face_alignment.LandmarksType
        kind = next(getattr(kinds, n) for n in names[landmarks_type] if hasattr(kinds, n))
        self._fa = face_alignment.FaceAlignment(kind, device=device, flip_input=False,
                                                face_detector=face_detector)

    def detect_boxes(self, image: np.ndarray) -> tuple:
        """Faces in `image [H, W, 3] uint8 RGB` -> (boxes [N, 4] float32, scores [N] float32)."""
        check_rgb_uint8(image)
        # face_alignment's detectors take BGR, as its own get_landmarks_from_image passes them.
        found = self._fa.face_detector.detect_from_image(image[..., ::-1].copy())
        found = np.asarray(found, np.float32).reshape(-1, 5)
        return found[:, :4] + 0.5, found[:, 4]

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Landmarks [N, 68, 2] float32 for the faces in `boxes [N, 4]` of `image [H, W, 3]`."""
        check_rgb_uint8(image)
        if len(boxes) == 0:
            return np.zeros((0, N_LANDMARKS, 2), np.float32)
        detected = [list(np.asarray(b, np.float64) - 0.5) for b in boxes]
        predictions = self._fa.get_landmarks_from_image(image, detected_faces=detected)
        if predictions is None or len(predictions) != len(boxes):
            raise RuntimeError("face_alignment returned no landmarks for the given boxes.")
        return np.stack([np.asarray(p)[:, :2] for p in predictions]).astype(np.float32) + 0.5
