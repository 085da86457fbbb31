"""Detect, follow and crop one face through an input, for the fitter and the network alike.

Two passes over the input: the first detects and tracks the face (so that the crop squares can be
smoothed over the whole video), the second cuts the crops.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from tqdm import tqdm

from cpem_jax.detect.crop import CropConfig, crop_face, crop_squares_for_track
from cpem_jax.detect.tracking import track_faces
from cpem_jax.io.frames import open_frames


class NoFaceError(RuntimeError):
    """No face was found in any frame of the input."""


def detect_and_crop(source_spec, landmarker, crop_config: CropConfig, face: int = 0,
                    max_frames: Optional[int] = None, redetect_every: int = 1,
                    progress: bool = True):
    """Observations (one per frame), crops [N, S, S, 3] uint8, affines [N, 2, 3], fps."""
    source = open_frames(source_spec, max_frames=max_frames)
    fps = float(source.fps)
    observations = list(tqdm(track_faces(source, landmarker, face=face,
                                         redetect_every=redetect_every),
                             total=source.expected_count or None, unit="frame",
                             desc="detecting", disable=not progress))
    if not observations:
        raise NoFaceError(f"no frame could be read from {source_spec!r}")
    if not any(o.found for o in observations):
        raise NoFaceError(f"no face found in any of the {len(observations)} frames of "
                          f"{source_spec!r}; check the input shows a face, large enough "
                          f"(about 80 px or more across)")
    squares = crop_squares_for_track(observations, crop_config)
    crops = np.zeros((len(observations), crop_config.size, crop_config.size, 3), np.uint8)
    affines = np.zeros((len(observations), 2, 3))
    by_index = {o.frame_index: i for i, o in enumerate(observations)}
    for frame in open_frames(source_spec, max_frames=max_frames):
        i = by_index.get(frame.index)
        if i is None or not np.all(np.isfinite(squares[i])):
            continue
        crop = crop_face(frame.image, squares[i], None, crop_config)
        crops[i], affines[i] = crop.image, crop.affine
    return observations, crops, affines, fps
