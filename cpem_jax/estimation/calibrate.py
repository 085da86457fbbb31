"""`cpem-jax calibrate`: an identity profile from the first frames with a face of a video or camera.

The frames are followed by a `LiveFront` and cropped as the live estimator crops them (the
square of `detect.crop.square_from_landmarks`, unsmoothed); the identity stage
(`estimation.identity.IdentityCalibration`) then runs on them in the caller's thread, and the
result is an `IdentityProfile` for `StreamingEstimator(profile=...)`.
"""
from __future__ import annotations

import logging

import numpy as np

from cpem_jax.detect.crop import crop_affine, square_from_landmarks, warp_image
from cpem_jax.estimation.identity import IdentityProfile
from cpem_jax.estimation.live_front import LiveFront
from cpem_jax.estimation.streaming import StreamConfig, StreamingEstimator
from cpem_jax.face_model.model import FaceModel


def calibrate_identity(frames, front: LiveFront, model: FaceModel,
                       config: StreamConfig = StreamConfig(), source: str = "",
                       progress=None) -> IdentityProfile:
    """An identity profile from the first `config.calibration_frames` frames with a face.

    Args:
      frames: an iterable of `io.frames.Frame` in time order (a video or a camera).
      front: the LiveFront that follows the face.
      model: the face model.
      config: the calibration settings (`calibration_frames`, `keyframes`,
        `identity_iterations`, `calibration_photometric`).
      source: recorded in the profile.
      progress: called with (frames collected, frames wanted, False) after each frame with a
        face, and (collected, wanted, True) when the identity stage starts.
    Raises:
      RuntimeError: no frame shows a face (one line saying so).
    """
    estimator = StreamingEstimator(model, front, config)
    calibration = estimator._calibration
    seen = 0
    for frame in frames:
        seen += 1
        observation = front.observe(frame.index, frame.timestamp_s, frame.image)
        if not observation.found:
            continue
        square = square_from_landmarks(observation.landmarks)
        affine = crop_affine(square, config.size)
        to_crop = lambda p: (np.asarray(p, np.float64) @ affine[:, :2].T + affine[:, 2])
        calibration.add(warp_image(frame.image, affine, (config.size, config.size)),
                        to_crop(observation.landmarks).astype(np.float32),
                        to_crop(observation.dense).astype(np.float32)
                        if estimator.use_dense and observation.dense is not None else None)
        if progress is not None:
            progress(len(calibration.crops), calibration.wanted, False)
        if len(calibration.crops) >= calibration.wanted:
            break
    if not calibration.crops:
        raise RuntimeError(f"no face found in any of the {seen} frames read; the calibration "
                           "needs frames that show the face (upright, evenly lit, about 80 px or "
                           "more across)")
    if len(calibration.crops) < calibration.wanted:
        logging.info("calibrating on the %d frames with a face of %d read (%d wanted)",
                     len(calibration.crops), seen, calibration.wanted)
    if progress is not None:
        progress(len(calibration.crops), calibration.wanted, True)
    calibration.fit(estimator.fitter)
    if calibration.error is not None:
        raise calibration.error
    return calibration.profile(model, config.size, config.calibration_photometric,
                               type(front.landmarker).__name__, source=str(source))
