"""Running MediaPipe: importing its packages, and the bundle's mesh model on square crops.

`import_mediapipe` loads the Tasks API (PyPI `mediapipe`), `import_litert_interpreter` Google's
TensorFlow Lite runtime (PyPI `ai-edge-litert`); both raise an ImportError naming the pip
command. `MeshModel` runs the bundle's `face_landmarks_detector.tflite` (478 points and a
face-presence probability per crop) directly with LiteRT, so that any box can be given to it;
`cpem_jax.detect.mediapipe_landmarker` places the crops. `to_pixels` converts the
FaceLandmarker task's (VIDEO mode) normalised points.

Pixel convention: the mesh model's outputs are continuous coordinates of its input tensor (a
horizontal flip of the input maps x to 256 - x, measured 256.46 +- 0.10 over 59 face crops, not
255), so points map back through the crop's affine unchanged and follow the project convention of
`cpem_jax.detect.base` (pixel centres at integer + 0.5). The FaceLandmarker task (VIDEO mode,
`MediaPipeLandmarker.detect_video`) instead returns normalised coordinates whose product with
the image size counts pixel indices: on 59 face crops upscaled 2x and 3x by pixel repetition its
points moved by +0.25 and +0.33 px per source pixel, as index coordinates must ((f - 1) / (2 f));
0.5 is added there.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from cpem_jax.detect.mediapipe_mesh import N_DENSE

INSTALL_HINT = "pip install -r requirements.txt"


def import_mediapipe():
    try:
        import mediapipe  # noqa: PLC0415 (optional dependency, imported on use)
        from mediapipe.tasks.python import vision  # noqa: PLC0415
        from mediapipe.tasks.python.core.base_options import BaseOptions  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(f"mediapipe is not installed ({error}); run `{INSTALL_HINT}`.") \
            from error
    return mediapipe, vision, BaseOptions


def import_litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(f"ai-edge-litert is not installed ({error}); run `{INSTALL_HINT}`.") \
            from error
    return Interpreter


def mediapipe_available() -> Tuple[bool, str]:
    """(True, version) when `mediapipe` and `ai-edge-litert` import, else (False, one-line why).

    Does not load mediapipe's native library (that happens when a task is created; it needs
    libEGL.so.1 and libGLESv2.so.2).
    """
    try:
        mediapipe, _, _ = import_mediapipe()
        import_litert_interpreter()
    except ImportError as error:
        return False, str(error)
    return True, getattr(mediapipe, "__version__", "unknown")


def to_pixels(face, width: int, height: int) -> np.ndarray:
    """One face's NormalizedLandmark list (FaceLandmarker task) -> [P, 2] float64 pixels."""
    xy = np.array([(p.x, p.y) for p in face], np.float64).reshape(-1, 2)
    # The task's normalised x * width counts pixel indices; the project's centres are at +0.5.
    return xy * np.array([width, height], np.float64) + 0.5


class MeshModel:
    """The bundle's face_landmarks_detector.tflite, run by LiteRT on square RGB crops.

    Call with a crop [S, S, 3] uint8 (S = `size`, 256) -> (points [478, 2] float64 in crop
    pixels, continuous coordinates; face-presence probability).
    """

    def __init__(self, model: bytes, num_threads: Optional[int]) -> None:
        interpreter = import_litert_interpreter()(model_content=model, num_threads=num_threads)
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][3] != 3 \
                or inputs[0]["shape"][1] != inputs[0]["shape"][2]:
            raise ValueError(f"the mesh model's input is {[d['shape'] for d in inputs]}, not one "
                             f"[1, S, S, 3] image.")
        self.size = int(inputs[0]["shape"][1])
        self._input = inputs[0]["index"]
        self._points = self._presence = None
        for detail in interpreter.get_output_details():
            count = int(np.prod(detail["shape"]))
            if count == N_DENSE * 3:
                self._points = detail["index"]
            elif count == 1 and len(detail["shape"]) == 4:
                self._presence = detail["index"]
        if self._points is None or self._presence is None:
            raise ValueError(f"the mesh model lacks a [{N_DENSE} x 3] point output or a face "
                             f"presence output; is this the FaceLandmarker bundle with iris?")
        self._interpreter = interpreter

    def __call__(self, crop: np.ndarray) -> Tuple[np.ndarray, float]:
        crop = np.ascontiguousarray(crop)
        tensor = (crop.astype(np.float32) * np.float32(1.0 / 255.0))[None]
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        points = self._interpreter.get_tensor(self._points).reshape(N_DENSE, 3)[:, :2]
        logit = float(self._interpreter.get_tensor(self._presence).reshape(()))
        return points.astype(np.float64), float(1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60))))
