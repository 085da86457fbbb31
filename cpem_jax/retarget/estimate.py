"""The estimator step of `cpem-jax retarget`: per-video fitting or the trained network.

Both return a `VideoFit` (cpem_jax.fit.video): the `CoefficientTrack` of every input frame (frames
without a face flagged), the face crops [N, S, S, 3] uint8 and the phase timings
(`detect_crop_s`, `fit_s`).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.video import VideoFit
from cpem_jax.geometry.camera import Camera, default_camera

METHODS = ("fit", "net")


@dataclasses.dataclass
class Estimate:
    """What the estimator produced and the face model and crop camera it used."""
    fit: VideoFit
    model: FaceModel
    camera: Camera


def crop_camera(fit: VideoFit) -> Camera:
    """The camera of the crops the track's pose refers to (size, focal, distance from the track)."""
    track = fit.track
    return default_camera(int(track.crop_size), focal=float(track.focal_px),
                          distance_cm=float(track.distance_cm))


def _landmarker():
    from cpem_jax.detect.dlib_landmarker import DlibLandmarker
    try:
        return DlibLandmarker()
    except ImportError as error:  # Optional dependency: say how to install it.
        raise RuntimeError(str(error)) from error


def estimate(source, method: str, fit_config=None, face_model: Optional[str] = None,
             checkpoint: Optional[str] = None, face: int = 0, max_frames: Optional[int] = None,
             progress: bool = True) -> Estimate:
    """Runs the chosen estimator over a source.

    Args:
      source: video path, image folder, image path (a webcam is recorded first, see webcam).
      method: "fit" (per-video fitting with `fit_config`, a FitConfig) or "net" (the network
        restored from `checkpoint`, a training workdir).
      face_model: face model spec (see cpem_jax.face_model.load_face_model); for "net" the
        checkpoint's model is used unless this names another.
      face: which face, 0 = the largest.
      max_frames: stop after N frames.
    Raises:
      ValueError: unknown method or missing checkpoint; NoFaceError (RuntimeError): no face.
    """
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    if method == "net":
        if not checkpoint:
            raise ValueError("--method net needs --checkpoint DIR (a training workdir); "
                             "use --method fit while no trained weights exist")
        from cpem_jax.inference.predictor import NetPredictor
        from cpem_jax.inference.video import predict_video
        predictor = NetPredictor.from_workdir(checkpoint, face_model)
        fit = predict_video(source, predictor, _landmarker(), face=face, max_frames=max_frames,
                            progress=progress)
        return Estimate(fit=fit, model=predictor.model, camera=crop_camera(fit))
    from cpem_jax.face_model import load_face_model
    from cpem_jax.fit.video import fit_video
    model = load_face_model(face_model)
    fit = fit_video(source, model, _landmarker(), fit_config, face=face, max_frames=max_frames,
                    progress=progress)
    return Estimate(fit=fit, model=model, camera=crop_camera(fit))
