"""`--method fit`: follow and crop one face, then fit the model to it with one identity.

With a dense front end (MediaPipe's 478 points) and a face model that has a dense table
(ICT-FaceKit, `cpem_jax.face_model.dense_landmarks`), the fit uses every point; otherwise the 68.
Frames without a face are kept in the estimate with face_found = False.
"""
from __future__ import annotations

import logging
import time
from typing import Optional

from cpem_jax.detect.crop import CropConfig
from cpem_jax.detect.pipeline import detect_and_crop
from cpem_jax.estimation.video_estimate import VideoEstimate
from cpem_jax.face_model.dense_landmarks import DenseLandmarks, dense_landmarks_for
from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.fitter import FitConfig, SequenceFitter


def fit_video(source_spec, model: FaceModel, landmarker, config: FitConfig = FitConfig(),
              face: int = 0, max_frames: Optional[int] = None, progress: bool = True,
              render_fn=None, crop_config: Optional[CropConfig] = None,
              dense: Optional[DenseLandmarks] = None,
              fitter: Optional[SequenceFitter] = None) -> VideoEstimate:
    """Detect, crop and fit a whole input (module docstring); phase timings in `timings`.

    `dense`: the model's dense table (default `dense_landmarks_for(model)`, None for a model
    without one); used when the front end gives dense points. `fitter`: a SequenceFitter of
    `model` and `config` to reuse (its programs stay compiled between inputs).
    """
    crop_config = crop_config or CropConfig(size=config.size)
    if crop_config.size != config.size:
        raise ValueError(f"crop size {crop_config.size} differs from the fit size {config.size}")
    t0 = time.perf_counter()
    tracked = detect_and_crop(source_spec, landmarker, crop_config, face, max_frames,
                              progress=progress)
    t1 = time.perf_counter()
    found = tracked.found
    crop_dense = tracked.crop_dense()
    if crop_dense is not None and dense is None:
        dense = dense_landmarks_for(model)
    if crop_dense is not None and dense is None:
        logging.info("face model %s has no dense landmark table: fitting the 68 points",
                     model.name)
    if fitter is None or fitter.dense is not dense:
        fitter = SequenceFitter(model, config, render_fn, dense=dense)
    result = fitter.fit(tracked.crops[found], tracked.crop_landmarks()[found], progress=progress,
                        dense=None if crop_dense is None or dense is None else crop_dense[found])
    t2 = time.perf_counter()
    if not found.all():
        logging.warning("no face in %d of %d frames (flagged face_found=false in the output)",
                        int((~found).sum()), len(found))
    frames = result.frames
    return VideoEstimate.from_tracked(
        tracked, model, fitter.camera, method="fit", identity=result.shared.identity,
        albedo=result.shared.albedo, expression=frames.expression, rotation=frames.rotation,
        translation=frames.translation, lighting=frames.lighting,
        landmarks_fitted=result.landmarks_fitted,
        timings={"detect_crop_s": t1 - t0, "estimate_s": t2 - t1})


class FitEstimator:
    """`fit_video` with a fixed model, front end and config: estimator(source) -> VideoEstimate."""
    method = "fit"

    def __init__(self, model: FaceModel, landmarker, config: FitConfig = FitConfig()):
        self.model, self.landmarker, self.config = model, landmarker, config
        self.dense = dense_landmarks_for(model)
        self._fitters = {}  # Compiled once per estimator, reused by every input.

    def __call__(self, source, face: int = 0, max_frames: Optional[int] = None,
                 progress: bool = True) -> VideoEstimate:
        tracked_dense = self.dense if hasattr(self.landmarker, "dense_in_boxes") else None
        key = tracked_dense is not None
        if key not in self._fitters:
            self._fitters[key] = SequenceFitter(self.model, self.config, dense=tracked_dense)
        return fit_video(source, self.model, self.landmarker, self.config, face=face,
                         max_frames=max_frames, progress=progress, dense=tracked_dense,
                         fitter=self._fitters[key])
