"""Choose the face landmarker: MediaPipe's 478-point face mesh where it can run, dlib otherwise.

`make_landmarker("auto")` returns a `MediaPipeLandmarker` when the `mediapipe` package imports
and its model bundle is found (`mediapipe_task.find_task`: the `task_path` argument,
$CPEM_FACE_LANDMARKER_TASK, the cache folder, $CPEM_SHARED/assets; nothing is downloaded), and a
`DlibLandmarker` otherwise. It logs one line (INFO) naming the backend that runs and, for dlib,
why MediaPipe does not.
"""
from __future__ import annotations

import logging
from typing import Optional

from cpem_jax.detect.base import FaceLandmarker

_LOG = logging.getLogger(__name__)

BACKENDS = ("auto", "mediapipe", "dlib")


def make_landmarker(name: str = "auto", task_path: Optional[str] = None,
                    mediapipe_options: Optional[dict] = None,
                    dlib_options: Optional[dict] = None) -> FaceLandmarker:
    """A face landmarker by name.

    Args:
      name: "auto" (MediaPipe when available, else dlib), "mediapipe" or "dlib".
      task_path: MediaPipe's face_landmarker.task (None: the default lookup).
      mediapipe_options: further keyword arguments of `MediaPipeLandmarker`.
      dlib_options: keyword arguments of `DlibLandmarker` (e.g. detect_max_side).
    Raises:
      ValueError: an unknown name.
      ImportError, FileNotFoundError: the named backend cannot run ("auto" falls back instead).
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown landmarker {name!r}; choose one of {', '.join(BACKENDS)}.")
    if name in ("auto", "mediapipe"):
        from cpem_jax.detect.mediapipe_landmarker import MediaPipeLandmarker  # noqa: PLC0415
        try:
            landmarker = MediaPipeLandmarker(task_path=task_path, **(mediapipe_options or {}))
        except (ImportError, OSError) as err:  # OSError covers a missing bundle or native lib.
            if name == "mediapipe":
                raise
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            from cpem_jax.detect.dlib_landmarker import DlibLandmarker  # noqa: PLC0415
            landmarker = DlibLandmarker(**(dlib_options or {}))
            _LOG.info("face landmarks: dlib 68-point shape predictor (MediaPipe unavailable: %s)",
                      reason)
            return landmarker
        _LOG.info("face landmarks: MediaPipe FaceLandmarker, 478 points (model %s)",
                  landmarker.task_path)
        return landmarker
    from cpem_jax.detect.dlib_landmarker import DlibLandmarker  # noqa: PLC0415
    landmarker = DlibLandmarker(**(dlib_options or {}))
    _LOG.info("face landmarks: dlib 68-point shape predictor (%s)", landmarker.predictor_path)
    return landmarker
