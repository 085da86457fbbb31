"""Choosing the T frames of a training sample from one clip, and which clips can supply them.

Frame sampling modes:
  "random":     T distinct frames drawn uniformly from the clip, returned in clip order.
  "sequential": a window of T consecutive frames (in clip order) starting at a random position.

Clips shorter than T ("short_clips"):
  "skip" (default): left out of sampling and logged once by key. The paper's sample is T frames of
    one person; repeating a frame would give the identity-consistency loss an easier, duplicated
    view, so we prefer fewer clips over repeated frames.
  "repeat": kept; every frame is used once and the remainder drawn again from the clip
    (with replacement), so a 2-frame clip gives e.g. frames (a, b, a, b) or (a, b, b, a) for T=4.
"""
from __future__ import annotations

import logging
from typing import List, Sequence

import numpy as np

from cpem_jax.data.cpem_folder import Clip

logger = logging.getLogger(__name__)

FRAME_SAMPLING_MODES = ("random", "sequential")
SHORT_CLIP_MODES = ("skip", "repeat")


def eligible_clips(clips: Sequence[Clip], num_frames: int, short_clips: str = "skip") -> List[Clip]:
    """The clips that can supply `num_frames` frames under the `short_clips` policy."""
    if short_clips not in SHORT_CLIP_MODES:
        raise ValueError(f"short_clips={short_clips!r}; use one of {SHORT_CLIP_MODES}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if short_clips == "repeat":
        return list(clips)
    kept = [c for c in clips if len(c) >= num_frames]
    dropped = [f"{c.key} ({len(c)} frames)" for c in clips if len(c) < num_frames]
    if dropped:
        logger.warning("CPEM data: %d clip(s) shorter than T=%d left out (short_clips='skip'): %s",
                       len(dropped), num_frames, ", ".join(dropped))
    if not kept:
        raise ValueError(f"no clip has at least T={num_frames} frames; lower num_frames or set "
                         f"short_clips='repeat'")
    return kept


def sample_positions(clip_length: int, num_frames: int, mode: str,
                     rng: np.random.Generator) -> np.ndarray:
    """Positions within a clip of length L for one sample.

    Returns:
      [T] int64 positions in [0, L), non-decreasing for "sequential"; distinct when L >= T.
    """
    if mode not in FRAME_SAMPLING_MODES:
        raise ValueError(f"frame_sampling={mode!r}; use one of {FRAME_SAMPLING_MODES}")
    if clip_length < 1:
        raise ValueError("cannot sample from an empty clip")
    if clip_length < num_frames:
        extra = rng.choice(clip_length, num_frames - clip_length, replace=True)
        positions = np.concatenate([np.arange(clip_length), extra])
        return np.sort(positions) if mode == "sequential" else rng.permutation(positions)
    if mode == "sequential":
        start = rng.integers(0, clip_length - num_frames + 1)
        return np.arange(start, start + num_frames)
    return np.sort(rng.choice(clip_length, num_frames, replace=False))


def sample_frame_ids(clip: Clip, num_frames: int, mode: str,
                     rng: np.random.Generator) -> np.ndarray:
    """[T] int32 ids into `CpemIndex.frames`, all from `clip`."""
    positions = sample_positions(len(clip), num_frames, mode, rng)
    return np.asarray(clip.frame_ids, np.int32)[positions]
