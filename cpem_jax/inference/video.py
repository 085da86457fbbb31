"""`--method net`: the trained network, frame by frame, over a detected and cropped face."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
from tqdm import tqdm

from cpem_jax.detect.crop import CropConfig
from cpem_jax.detect.pipeline import detect_and_crop
from cpem_jax.export.coefficients import assemble_track
from cpem_jax.face_model.model import Coefficients
from cpem_jax.fit.video import VideoFit
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.inference.predictor import NetPredictor


def predict_video(source_spec, predictor: NetPredictor, landmarker, face: int = 0,
                  max_frames: Optional[int] = None, batch: int = 16,
                  progress: bool = True) -> VideoFit:
    """Coefficients of every frame from the network (no optimisation)."""
    crop_config = CropConfig(size=predictor.image_size)
    t0 = time.perf_counter()
    observations, crops, affines, fps = detect_and_crop(source_spec, landmarker, crop_config,
                                                        face, max_frames, progress=progress)
    t1 = time.perf_counter()
    found = np.array([o.found for o in observations])
    chosen = crops[found]
    parts = []
    for begin in tqdm(range(0, len(chosen), batch), unit="batch", desc="predicting",
                      disable=not progress):
        part = chosen[begin:begin + batch]
        padded = np.concatenate([part, np.repeat(part[-1:], batch - len(part), 0)])
        coeffs = predictor(padded)
        parts.append({k: np.asarray(getattr(coeffs, k))[:len(part)] for k in (
            "expression", "rotation", "translation", "lighting", "identity", "albedo")})
    estimates = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    landmarks = np.asarray(project_landmarks(predictor.model, Coefficients(**estimates),
                                             predictor.camera))
    t2 = time.perf_counter()
    track = assemble_track(observations, affines, estimates, landmarks,
                           predictor.model.expression_names, fps, predictor.image_size,
                           float(predictor.camera.focal), -float(predictor.camera.base_translation[2]),
                           predictor.model.name, "net")
    return VideoFit(track=track, crops=crops,
                    timings={"detect_crop_s": t1 - t0, "fit_s": t2 - t1,
                             "frames": len(observations)})
