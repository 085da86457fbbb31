"""`cpem-jax fit`: detect and follow a face through a video (or images), crop it, fit the model.

Frames where the face is not found are kept in the output with face_found = false.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional

import numpy as np

from cpem_jax.detect.crop import CropConfig, apply_affine
from cpem_jax.detect.pipeline import detect_and_crop
from cpem_jax.export.coefficients import CoefficientTrack, assemble_track
from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.fitter import FitConfig, SequenceFitter


@dataclasses.dataclass
class VideoFit:
    """A fitted video: the coefficient track, the face crops [N, S, S, 3] uint8 (zeros where no
    face) and timings (seconds) of each phase."""
    track: CoefficientTrack
    crops: np.ndarray
    timings: dict


def fit_video(source_spec, model: FaceModel, landmarker, config: FitConfig = FitConfig(),
              face: int = 0, max_frames: Optional[int] = None, progress: bool = True,
              render_fn=None, crop_config: Optional[CropConfig] = None) -> VideoFit:
    """Detect, crop and fit a whole input; see the module docstring."""
    crop_config = crop_config or CropConfig(size=config.size)
    if crop_config.size != config.size:
        raise ValueError(f"crop size {crop_config.size} differs from the fit size {config.size}")
    t0 = time.perf_counter()
    observations, crops, affines, fps = detect_and_crop(source_spec, landmarker, crop_config,
                                                        face, max_frames, progress=progress)
    t1 = time.perf_counter()
    found = np.array([o.found for o in observations])
    detected = np.stack([o.landmarks for o in observations]).astype(np.float32)
    crop_landmarks = np.stack([apply_affine(a, lm) if f else lm
                               for a, lm, f in zip(affines, detected, found)]).astype(np.float32)
    fitter = SequenceFitter(model, config, render_fn)
    result = fitter.fit(crops[found], crop_landmarks[found], progress=progress)
    t2 = time.perf_counter()

    n, n_found = len(observations), int(found.sum())
    frames = result.frames
    estimates = {"expression": frames.expression, "rotation": frames.rotation,
                 "translation": frames.translation, "lighting": frames.lighting,
                 "identity": np.repeat(np.asarray(result.shared.identity)[None], n_found, 0),
                 "albedo": np.repeat(np.asarray(result.shared.albedo)[None], n_found, 0)}
    track = assemble_track(observations, affines, estimates, result.landmarks_fitted,
                           model.expression_names, fps, config.size,
                           config.focal_per_pixel * config.size, config.distance_cm,
                           model.name, "fit")
    if n_found < n:
        logging.warning("no face in %d of %d frames (flagged face_found=false in the output)",
                        n - n_found, n)
    return VideoFit(track=track, crops=crops,
                    timings={"detect_crop_s": t1 - t0, "fit_s": t2 - t1, "frames": n})
