"""One entry point for every estimator: a source in, a `VideoEstimate` out.

    estimate = estimate_video("talk.mp4", method="fit")
"""
from __future__ import annotations

import os
from typing import Optional

from cpem_jax.estimation.video_estimate import VideoEstimate

METHODS = ("fit", "net")


def default_landmarker(name: str = "auto"):
    """The front end by name (`cpem_jax.detect.backends.make_landmarker`): "auto" is MediaPipe's
    478-point face mesh where mediapipe and its model bundle are available, else dlib's 68 points;
    one log line says which runs. "mediapipe" or "dlib" insist on that one.

    Raises:
      ValueError: an unknown name.
      RuntimeError: the named backend cannot run (the message says how to install it).
    """
    from cpem_jax.detect.backends import make_landmarker
    try:
        return make_landmarker(name)
    except (ImportError, OSError) as error:  # Optional dependency: the message says the fix.
        raise RuntimeError(str(error).splitlines()[0] if str(error) else repr(error)) from error


def make_estimator(method: str = "fit", fit_config=None, face_model: Optional[str] = None,
                   checkpoint: Optional[str] = None, landmarker=None):
    """An estimator: `estimator(source, face=0, max_frames=None, progress=True) -> VideoEstimate`,
    with its face model in `estimator.model`.

    Args:
      method: "fit" (per-video fitting with `fit_config`, a FitConfig) or "net" (the network
        restored from `checkpoint`: a training workdir or a weights file of
        `estimation.net_weights`; None is the weights shipped with the package).
      face_model: face model spec (see cpem_jax.face_model.load_face_model); for "net" the
        checkpoint's model is used unless this names another.
      landmarker: the front end: a FaceLandmarker, or its name for `default_landmarker`
        ("auto", "mediapipe", "dlib"); None is "auto".
    Raises:
      ValueError: unknown method.
      CheckpointError: the checkpoint (or the shipped weights) cannot be loaded.
    """
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    if landmarker is None or isinstance(landmarker, str):
        landmarker = default_landmarker(landmarker or "auto")
    if method == "net":
        from cpem_jax.estimation.net_weights import load_weights, shipped_weights_path
        from cpem_jax.estimation.network import NetEstimator, NetPredictor
        if checkpoint and os.path.isdir(checkpoint):
            predictor = NetPredictor.from_workdir(checkpoint, face_model)
        else:
            predictor = load_weights(checkpoint or shipped_weights_path(), face_model)
        return NetEstimator(predictor, landmarker)
    from cpem_jax.estimation.fitting import FitEstimator
    from cpem_jax.face_model import load_face_model
    from cpem_jax.fit.fitter import FitConfig
    return FitEstimator(load_face_model(face_model), landmarker, fit_config or FitConfig())


def estimate_video(source, method: str = "fit", fit_config=None, face_model: Optional[str] = None,
                   checkpoint: Optional[str] = None, face: int = 0,
                   max_frames: Optional[int] = None, progress: bool = True,
                   landmarker=None) -> VideoEstimate:
    """`make_estimator(...)(source, ...)`: one source, one estimate (face 0 = the largest).

    Raises NoFaceError (RuntimeError) when no frame shows a face.
    """
    estimator = make_estimator(method, fit_config, face_model, checkpoint, landmarker)
    return estimator(source, face=face, max_frames=max_frames, progress=progress)
