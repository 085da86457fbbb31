"""Landmark error metrics."""
from __future__ import annotations

import numpy as np


def box_size(boxes: np.ndarray) -> np.ndarray:
    """boxes [N, 4] (x0, y0, x1, y1) -> sqrt(width * height) [N], the NME normaliser."""
    boxes = np.asarray(boxes, np.float64)
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
                   * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def nme(predicted: np.ndarray, target: np.ndarray, normaliser: np.ndarray) -> np.ndarray:
    """Per-frame normalised mean error: mean point distance / normaliser.

    Args:
      predicted, target: [N, P, 2] pixels.
      normaliser: [N] pixels (e.g. `box_size` of the face box).
    Returns:
      [N] float64 (NaN where either set or the normaliser is not finite or positive).
    """
    err = np.linalg.norm(np.asarray(predicted, np.float64) - np.asarray(target, np.float64),
                         axis=-1).mean(axis=-1)
    normaliser = np.asarray(normaliser, np.float64)
    ok = np.isfinite(err) & np.isfinite(normaliser) & (normaliser > 0)
    return np.where(ok, err / np.where(ok, normaliser, 1.0), np.nan)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """[N, 68, 2] -> the tight boxes [N, 4] of the landmarks (the 'face box' of AFLW2000-3D)."""
    lm = np.asarray(landmarks, np.float64)
    return np.concatenate([lm.min(axis=1), lm.max(axis=1)], axis=-1)


YAW_BIN_EDGES_DEG = (0.0, 30.0, 60.0, 90.0)


def yaw_bin_labels(edges=YAW_BIN_EDGES_DEG) -> list:
    """Bin names such as "[0,30]", "(30,60]", "(60,90]" for the given edges in degrees."""
    return [("[" if i == 0 else "(") + f"{edges[i]:g},{edges[i + 1]:g}]"
            for i in range(len(edges) - 1)]


def yaw_bin_index(yaw_deg: np.ndarray, edges=YAW_BIN_EDGES_DEG) -> np.ndarray:
    """|yaw| in degrees [N] -> bin index [N] int: [e0, e1], (e1, e2], ...; beyond the last edge
    goes to the last bin (AFLW2000-3D has a few |yaw| > 90), NaN yaw -> -1."""
    a = np.abs(np.asarray(yaw_deg, np.float64))
    idx = np.searchsorted(np.asarray(edges[1:-1], np.float64), a, side="left")
    return np.where(np.isfinite(a), idx, -1)


def nme_by_yaw_bins(nme_values: np.ndarray, yaw_deg: np.ndarray,
                    edges=YAW_BIN_EDGES_DEG) -> dict:
    """NME per |yaw| bin and the mean of the bin means (the AFLW2000-3D "balanced" mean).

    nme_values [N] (NaN entries are left out), yaw_deg [N] degrees ->
    {"bins": {label: {"nme": float, "count": int}}, "mean_of_bins": float, "overall": float,
     "count": int}. NME values are fractions (multiply by 100 for %).
    """
    nme_values = np.asarray(nme_values, np.float64)
    idx = yaw_bin_index(yaw_deg, edges)
    ok = np.isfinite(nme_values) & (idx >= 0)
    bins = {}
    for b, label in enumerate(yaw_bin_labels(edges)):
        sel = ok & (idx == b)
        bins[label] = {"nme": float(nme_values[sel].mean()) if sel.any() else float("nan"),
                       "count": int(sel.sum())}
    means = [v["nme"] for v in bins.values() if np.isfinite(v["nme"])]
    return {"bins": bins, "mean_of_bins": float(np.mean(means)) if means else float("nan"),
            "overall": float(nme_values[ok].mean()) if ok.any() else float("nan"),
            "count": int(ok.sum())}


def bin_mean_intervals(nme_values: np.ndarray, yaw_deg: np.ndarray, draws: int = 2000,
                       level: float = 0.95, seed: int = 0, edges=YAW_BIN_EDGES_DEG) -> dict:
    """Bootstrap intervals of the bin means and of their mean (what `nme_by_yaw_bins` reports).

    Each draw resamples the scored images of every bin with replacement, within the bin, so a
    draw keeps the bins' sizes; the interval is the central `level` of the draws' means. On a
    sample of a benchmark (100 of AFLW2000-3D's 2,000 images, 11 of them beyond 60 degrees)
    this is how far the figure could move on other images drawn the same way.

    nme_values [N] (NaN left out, as in `nme_by_yaw_bins`), yaw_deg [N] degrees ->
    {"bins": {label: [low, high] or None for an empty bin}, "mean_of_bins": [low, high] or None,
     "draws": int, "level": float, "seed": int}, in the units of `nme_values`.
    """
    if draws < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"draws must be >= 1 and level in (0, 1), got {draws} and {level}")
    nme_values = np.asarray(nme_values, np.float64)
    idx = yaw_bin_index(yaw_deg, edges)
    ok = np.isfinite(nme_values) & (idx >= 0)
    rng = np.random.default_rng(seed)
    tails = [50.0 * (1.0 - level), 50.0 * (1.0 + level)]
    bins, drawn = {}, []
    for b, label in enumerate(yaw_bin_labels(edges)):
        values = nme_values[ok & (idx == b)]
        if values.size == 0:
            bins[label] = None
            continue
        means = values[rng.integers(0, values.size, (draws, values.size))].mean(axis=1)
        bins[label] = [float(v) for v in np.percentile(means, tails)]
        drawn.append(means)
    mean_of_bins = ([float(v) for v in np.percentile(np.mean(drawn, axis=0), tails)]
                    if drawn else None)
    return {"bins": bins, "mean_of_bins": mean_of_bins, "draws": int(draws),
            "level": float(level), "seed": int(seed)}
