"""Renders a fitted track back onto its crops, in batches, for overlay videos and PNGs."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import jax
import numpy as np

from cpem_jax.export.coefficients import CoefficientTrack
from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.fit.fitter import FitConfig
from cpem_jax.viz.overlay_video import overlay_frame


def overlay_frames(track: CoefficientTrack, crops: np.ndarray, model: FaceModel,
                   config: FitConfig, render_fn=None, batch: int = 8,
                   indices: Optional[Sequence[int]] = None) -> Iterator[np.ndarray]:
    """Yields one overlay [S, 3S, 3] uint8 per frame (or per frame of `indices`, in order);
    frames without a face show the crop only."""
    if render_fn is None:
        from cpem_jax.render.face_renderer import render_face as render_fn
    camera = config.camera()
    render = jax.jit(lambda m, c: render_fn(m, c, camera))
    size = config.size
    order = np.arange(track.n_frames) if indices is None else np.asarray(indices, int)
    for begin in range(0, len(order), batch):
        idx = order[begin:begin + batch]
        padded = np.concatenate([idx, np.repeat(idx[-1:], batch - len(idx))])
        found = track.face_found[padded]
        safe = lambda a: np.nan_to_num(np.asarray(a[padded], np.float32))
        coeffs = Coefficients(identity=safe(track.identity), expression=safe(track.expression),
                              albedo=safe(track.albedo), lighting=safe(track.lighting),
                              rotation=safe(track.rotation), translation=safe(track.translation))
        out = render(model, coeffs)
        images, masks = np.asarray(out.image), np.asarray(out.mask)
        for j, i in enumerate(idx):
            to_crop = lambda lm: (lm @ track.crop_affine[i][:, :2].T + track.crop_affine[i][:, 2])
            mask = masks[j] if found[j] else np.zeros((size, size), np.float32)
            yield overlay_frame(crops[i], images[j], mask, to_crop(track.landmarks_detected[i]),
                                to_crop(track.landmarks_fitted[i]))
