"""Sparse, realistic expression weights for synthetic clips.

A frame's expression is one or two *presets* (smile, jaw open, blink, brow raise, pucker,
frown, ...) at a random intensity, each preset a few units with a weight range. A clip varies
smoothly: presets are drawn at key frames (every `frames_per_key` frames and the last) and the
weights are interpolated between them with a cosine ease, so a T-frame clip looks like a short
video. After interpolation every contradictory pair of the model (`FaceModel.contradictory_pairs`) is resolved by zeroing the
smaller weight (a tie zeroes the second unit), so no frame ever has both units of a pair on.

Presets name units in ICT/ARKit style (`mouthSmile_L`); units a model lacks are ignored, and a
preset none of whose units exist is never drawn.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

# preset -> {unit: (low, high)}: each unit's weight at full preset intensity is drawn in [low, high].
PRESETS: Dict[str, Dict[str, Tuple[float, float]]] = {
    "smile": {"mouthSmile_L": (0.7, 1.0), "mouthSmile_R": (0.7, 1.0),
              "cheekSquint_L": (0.2, 0.6), "cheekSquint_R": (0.2, 0.6),
              "eyeSquint_L": (0.0, 0.3), "eyeSquint_R": (0.0, 0.3)},
    "smile_left": {"mouthSmile_L": (0.7, 1.0), "cheekSquint_L": (0.2, 0.5)},
    "open_smile": {"mouthSmile_L": (0.6, 1.0), "mouthSmile_R": (0.6, 1.0),
                   "jawOpen": (0.3, 0.7), "mouthUpperUp_L": (0.1, 0.4),
                   "mouthUpperUp_R": (0.1, 0.4)},
    "jaw_open": {"jawOpen": (0.6, 1.0), "mouthLowerDown_L": (0.0, 0.3),
                 "mouthLowerDown_R": (0.0, 0.3)},
    "blink": {"eyeBlink_L": (0.8, 1.0), "eyeBlink_R": (0.8, 1.0)},
    "wink_right": {"eyeBlink_R": (0.8, 1.0), "cheekSquint_R": (0.0, 0.4)},
    "brow_raise": {"browInnerUp_L": (0.6, 1.0), "browInnerUp_R": (0.6, 1.0),
                   "browOuterUp_L": (0.5, 1.0), "browOuterUp_R": (0.5, 1.0),
                   "eyeWide_L": (0.0, 0.4), "eyeWide_R": (0.0, 0.4)},
    "surprise": {"jawOpen": (0.4, 0.9), "browInnerUp_L": (0.6, 1.0), "browInnerUp_R": (0.6, 1.0),
                 "browOuterUp_L": (0.6, 1.0), "browOuterUp_R": (0.6, 1.0),
                 "eyeWide_L": (0.5, 1.0), "eyeWide_R": (0.5, 1.0)},
    "frown": {"browDown_L": (0.6, 1.0), "browDown_R": (0.6, 1.0),
              "mouthFrown_L": (0.3, 0.8), "mouthFrown_R": (0.3, 0.8)},
    "sad": {"browInnerUp_L": (0.5, 0.9), "browInnerUp_R": (0.5, 0.9),
            "mouthFrown_L": (0.5, 1.0), "mouthFrown_R": (0.5, 1.0),
            "mouthShrugLower": (0.0, 0.5)},
    "pucker": {"mouthPucker": (0.7, 1.0)},
    "funnel": {"mouthFunnel": (0.6, 1.0), "jawOpen": (0.0, 0.3)},
    "sneer": {"noseSneer_L": (0.6, 1.0), "noseSneer_R": (0.6, 1.0),
              "mouthUpperUp_L": (0.2, 0.7), "mouthUpperUp_R": (0.2, 0.7)},
    "lip_suck": {"mouthRollUpper": (0.6, 1.0), "mouthRollLower": (0.6, 1.0)},
    "stretch": {"mouthStretch_L": (0.6, 1.0), "mouthStretch_R": (0.6, 1.0),
                "jawOpen": (0.0, 0.3)},
    "lip_raise_depress": {"mouthUpperUp_L": (0.5, 1.0), "mouthUpperUp_R": (0.5, 1.0),
                          "mouthLowerDown_L": (0.5, 1.0), "mouthLowerDown_R": (0.5, 1.0)},
    "press": {"mouthPress_L": (0.5, 1.0), "mouthPress_R": (0.5, 1.0)},
    "mouth_left": {"mouthLeft": (0.5, 1.0)},
    "jaw_right": {"jawRight": (0.4, 0.9), "jawOpen": (0.0, 0.3)},
    "cheek_puff": {"cheekPuff_L": (0.6, 1.0), "cheekPuff_R": (0.6, 1.0)},
    "look_left": {"eyeLookOut_R": (0.4, 1.0), "eyeLookIn_L": (0.4, 1.0)},
    "look_up": {"eyeLookUp_L": (0.4, 1.0), "eyeLookUp_R": (0.4, 1.0)},
}


def available_presets(unit_names: Sequence[str],
                      presets: Mapping[str, Mapping[str, Tuple[float, float]]] = PRESETS
                      ) -> Dict[str, List[Tuple[int, float, float]]]:
    """preset -> [(unit index, low, high)] for the units the model has; empty presets dropped."""
    position = {n: i for i, n in enumerate(unit_names)}
    out = {}
    for name, units in presets.items():
        entries = [(position[u], lo, hi) for u, (lo, hi) in units.items() if u in position]
        if entries:
            out[name] = entries
    if not out:
        raise ValueError(f"no expression preset matches the model's units "
                         f"({list(unit_names)[:6]}...); presets use ICT/ARKit unit names")
    return out


def sample_keyframe(presets: Mapping[str, List[Tuple[int, float, float]]], n_units: int,
                    rng: np.random.Generator, max_presets: int = 2,
                    neutral_probability: float = 0.1) -> np.ndarray:
    """One key expression [K] float32 in [0, 1]: 0 (neutral) to `max_presets` presets.

    Each drawn preset gets an intensity (1, or in [0.6, 1] half of the time) that scales its
    units' weights; units shared by two presets take the larger weight.
    """
    weights = np.zeros(n_units, np.float32)
    if rng.random() < neutral_probability:
        return weights
    names = sorted(presets)
    count = int(rng.integers(1, max_presets + 1))
    chosen = rng.choice(len(names), size=min(count, len(names)), replace=False)
    for c in np.sort(chosen):
        intensity = rng.uniform(0.6, 1.0) if rng.random() < 0.5 else 1.0
        for unit, lo, hi in presets[names[c]]:
            weights[unit] = max(weights[unit], intensity * rng.uniform(lo, hi))
    return weights


def key_positions(n_frames: int, frames_per_key: int) -> np.ndarray:
    """Frame numbers of the key expressions: 0, k, 2k, ... and the last frame -> [n_keys] int."""
    keys = list(range(0, n_frames, max(1, frames_per_key)))
    if keys[-1] != n_frames - 1:
        keys.append(n_frames - 1)
    return np.asarray(keys, int)


def ease_weights(n_frames: int, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Cosine interpolation between key frames.

    Args:
      n_frames: T.
      keys: [n_keys] increasing frame numbers of the keys (first 0, last T - 1).
    Returns:
      (left key index [T] int, blend [T] float in [0, 1]): frame t is
      (1 - blend) * key[left] + blend * key[left + 1]; a key frame gets its key exactly.
    """
    t = np.arange(n_frames)
    if len(keys) < 2:
        return np.zeros(n_frames, int), np.zeros(n_frames)
    left = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, len(keys) - 2)
    frac = (t - keys[left]) / (keys[left + 1] - keys[left])
    return left, 0.5 - 0.5 * np.cos(np.pi * frac)


def resolve_contradictions(weights: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Zeroes the smaller unit of every contradictory pair that is both on.

    Args:
      weights: [..., K] expression weights.
      pairs: [P, 2] int unit indices.
    Returns:
      [..., K] copy; for each pair (i, j) at most one of w_i, w_j is non-zero (a tie zeroes j).
      Pairs are applied in order, so chains (a/b, b/c) end with no pair both on.
    """
    out = np.array(weights, copy=True)
    for i, j in np.asarray(pairs, int).reshape(-1, 2):
        both = (out[..., i] > 0) & (out[..., j] > 0)
        i_wins = out[..., i] >= out[..., j]
        out[..., j] = np.where(both & i_wins, 0.0, out[..., j])
        out[..., i] = np.where(both & ~i_wins, 0.0, out[..., i])
    return out


def sample_clip_expressions(unit_names: Sequence[str], pairs: np.ndarray, n_frames: int,
                            rng: np.random.Generator, frames_per_key: int = 2,
                            max_presets: int = 2) -> np.ndarray:
    """Smooth expression weights of one clip.

    Args:
      unit_names: the model's K unit names.
      pairs: [P, 2] contradictory unit pairs.
      n_frames: T.
      rng: the clip's generator.
      frames_per_key: a key expression every this many frames (and at the last frame); the
        frames between keys are eased.
      max_presets: presets per key expression.
    Returns:
      [T, K] float32 in [0, 1], no contradictory pair both non-zero in any frame.
    """
    presets = available_presets(unit_names)
    positions = key_positions(n_frames, frames_per_key)
    n_keys = len(positions)
    keys = np.stack([sample_keyframe(presets, len(unit_names), rng, max_presets)
                     for _ in range(n_keys)])
    left, blend = ease_weights(n_frames, positions)
    right = np.minimum(left + 1, n_keys - 1)
    frames = keys[left] * (1.0 - blend[:, None]) + keys[right] * blend[:, None]
    return np.clip(resolve_contradictions(frames, pairs), 0.0, 1.0).astype(np.float32)
