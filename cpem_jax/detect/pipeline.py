"""Detect, follow and crop one face through an input in one pass, for every estimator.

Every frame is decoded once. The face is followed (`FaceTracker`) frame by frame, and each frame
waits in a short queue until the frames `radius = ceil(3 sigma)` ahead of it have been observed:
then its crop square is the Gaussian-weighted mean of the squares of the frames with a face in
its window (`smooth_squares`, zero lag), the same value a second pass over the whole track would
give, and the frame is cropped and dropped from memory. A frame without a face keeps its whole
image, letterboxed into the crop (what a preview shows for it), with the letterbox's affine.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from cpem_jax.detect.base import FaceObservation
from cpem_jax.detect.crop import (CropConfig, crop_affine, letterbox_affine, smooth_squares,
                                  square_from_landmarks, warp_image)
from cpem_jax.detect.tracking import FaceTracker
from cpem_jax.io.frames import open_frames


class NoFaceError(RuntimeError):
    """No face was found in any frame of the input."""


@dataclasses.dataclass
class TrackedCrops:
    """One followed face through N frames.

    Attributes:
      observations: N FaceObservation (landmarks in image pixels; NaN where no face).
      crops: [N, S, S, 3] uint8: the face crop, or the letterboxed whole frame where no face.
      affines: [N, 2, 3] float64 image pixels -> crop pixels of each crop.
      fps: the source's frame rate.
    """
    observations: List[FaceObservation]
    crops: np.ndarray
    affines: np.ndarray
    fps: float

    @property
    def found(self) -> np.ndarray:
        """[N] bool."""
        return np.array([o.found for o in self.observations], bool)

    def crop_landmarks(self) -> np.ndarray:
        """[N, 68, 2] float32 detected landmarks in crop pixels (NaN where no face)."""
        return np.stack([o.landmarks @ a[:, :2].T + a[:, 2]
                         for o, a in zip(self.observations, self.affines)]).astype(np.float32)

    def crop_dense(self) -> Optional[np.ndarray]:
        """[N, P, 2] float32 the dense landmarker's points in crop pixels (NaN rows where no face
        or no dense points), or None when no frame has dense points (e.g. dlib)."""
        counts = {len(o.dense) for o in self.observations if o.dense is not None}
        if not counts:
            return None
        if len(counts) > 1:
            raise ValueError(f"observations disagree on the dense point count: {sorted(counts)}")
        out = np.full((len(self.observations), counts.pop(), 2), np.nan, np.float32)
        for i, (o, a) in enumerate(zip(self.observations, self.affines)):
            if o.found and o.dense is not None:
                out[i] = o.dense @ a[:, :2].T + a[:, 2]
        return out


def detect_and_crop(source_spec, landmarker, crop_config: CropConfig, face: int = 0,
                    max_frames: Optional[int] = None, redetect_every: int = 1,
                    progress: bool = True) -> TrackedCrops:
    """Follows face `face` (0 = largest) through a source and crops it (module docstring).

    Raises:
      NoFaceError: no frame could be read, or no frame shows a face.
    """
    source = open_frames(source_spec, max_frames=max_frames)
    tracker = FaceTracker(landmarker, face=face, redetect_every=redetect_every)
    radius = int(math.ceil(3 * crop_config.smooth_sigma))
    size = crop_config.size
    observations: List[FaceObservation] = []
    squares: List[np.ndarray] = []
    crops: List[np.ndarray] = []
    affines: List[np.ndarray] = []
    waiting = collections.deque()  # Frames observed but not cropped yet, oldest first.

    def crop_oldest() -> None:
        frame = waiting.popleft()
        t = len(crops)
        if observations[t].found:
            lo, hi = max(0, t - radius), min(len(squares), t + radius + 1)
            valid = np.array([o.found for o in observations[lo:hi]])
            square = smooth_squares(np.stack(squares[lo:hi]), valid,
                                    crop_config.smooth_sigma)[t - lo]
            affine = crop_affine(square, size)
        else:
            affine = letterbox_affine(frame.image.shape[1], frame.image.shape[0], size)
        crops.append(warp_image(frame.image, affine, (size, size), crop_config.border))
        affines.append(affine)

    with tqdm(total=source.expected_count or None, unit="frame", desc="detecting",
              disable=not progress) as bar:
        for frame in source:
            observation = tracker.update(frame.index, frame.timestamp_s, frame.image)
            observations.append(observation)
            squares.append(square_from_landmarks(observation.landmarks, crop_config))
            waiting.append(frame)
            if len(waiting) > radius:
                crop_oldest()
            bar.update()
        while waiting:
            crop_oldest()
    if not observations:
        raise NoFaceError(f"no frame could be read from {source_spec!r}")
    if not any(o.found for o in observations):
        if 0 < tracker.most_faces <= face:
            many = f"{tracker.most_faces} face" + ("s were" if tracker.most_faces > 1 else " was")
            raise NoFaceError(f"face {face} (counted from 0, largest first) was asked for, but "
                              f"at most {many} found in one frame of {source_spec!r}; --face "
                              f"must be 0..{tracker.most_faces - 1}")
        raise NoFaceError(f"no face found in any of the {len(observations)} frames of "
                          f"{source_spec!r}; check the input shows a face upright (not turned "
                          f"on its side), evenly lit and large enough (about 80 px or more "
                          f"across)")
    return TrackedCrops(observations=observations, crops=np.stack(crops),
                        affines=np.stack(affines), fps=float(source.fps))
