"""Expression error: MAE per unit and in the paper's ten FEAFA categories.

The ten categories (after the FEAFA evaluation of the CPEM paper, AAAI 2022) are defined by
unit-name stems; a stem matches a unit named exactly like it or with a side suffix, in ICT style
(`eyeBlink_L`) or ARKit style (`eyeBlinkLeft`), so the same table works for either vocabulary:

  EyeClose = eyeBlink; BrowLower = browDown; BrowRaise = browInnerUp, browOuterUp;
  MouthOpen = jawOpen; LipSuck = mouthRollUpper, mouthRollLower;
  LipR/D = mouthUpperUp, mouthLowerDown; Kiss = mouthPucker; NoseWrinkle = noseSneer;
  LipCornerPull = mouthSmile; LipCornerStretch = mouthStretch.

A category's MAE is the mean absolute error over every (frame, unit-or-AU) entry of that
category whose ground truth is active (above the threshold, 0.8 in the paper); "Avg" is the mean
of the ten category MAEs (categories with no active entry are NaN and left out of the mean).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

CATEGORIES: Tuple[str, ...] = (
    "EyeClose", "BrowLower", "BrowRaise", "MouthOpen", "LipSuck", "LipR/D", "Kiss",
    "NoseWrinkle", "LipCornerPull", "LipCornerStretch")

# category -> unit-name stems (sides matched by `match_units`).
CATEGORY_UNITS: Dict[str, Tuple[str, ...]] = {
    "EyeClose": ("eyeBlink",),
    "BrowLower": ("browDown",),
    "BrowRaise": ("browInnerUp", "browOuterUp"),
    "MouthOpen": ("jawOpen",),
    "LipSuck": ("mouthRollUpper", "mouthRollLower"),
    "LipR/D": ("mouthUpperUp", "mouthLowerDown"),
    "Kiss": ("mouthPucker",),
    "NoseWrinkle": ("noseSneer",),
    "LipCornerPull": ("mouthSmile",),
    "LipCornerStretch": ("mouthStretch",),
}

# The CPEM paper's FEAFA table (AAAI 2022), columns in CATEGORIES order then "Avg".
PAPER_FEAFA_MAE: Dict[str, Tuple[float, ...]] = {
    "CPEM paper: vanilla (no L_idc, no L_exp)":
        (0.336, 0.273, 0.492, 0.325, 0.829, 0.334, 0.573, 0.896, 0.467, 0.430, 0.495),
    "CPEM paper: + L_idc":
        (0.137, 0.371, 0.077, 0.158, 0.385, 0.231, 0.236, 0.484, 0.319, 0.293, 0.269),
    "CPEM paper: + L_idc + L_exp":
        (0.127, 0.341, 0.108, 0.104, 0.445, 0.241, 0.201, 0.379, 0.227, 0.271, 0.244),
}

ACTIVE_THRESHOLD = 0.8
_SIDE_SUFFIXES = ("", "_L", "_R", "Left", "Right")


def match_units(stem: str, unit_names: Sequence[str]) -> List[int]:
    """Indices of the units named `stem`, `stem_L`/`stem_R` or `stemLeft`/`stemRight`."""
    wanted = {stem + s for s in _SIDE_SUFFIXES}
    return [i for i, name in enumerate(unit_names) if name in wanted]


def category_unit_indices(unit_names: Sequence[str],
                          categories: Sequence[str] = CATEGORIES) -> Dict[str, List[int]]:
    """category -> the unit indices it averages; raises when a category matches no unit."""
    out, missing = {}, []
    for cat in categories:
        if cat not in CATEGORY_UNITS:
            raise KeyError(f"unknown category {cat!r}; known: {', '.join(CATEGORIES)}")
        idx = sorted({i for stem in CATEGORY_UNITS[cat] for i in match_units(stem, unit_names)})
        if not idx:
            missing.append(f"{cat} ({'/'.join(CATEGORY_UNITS[cat])})")
        out[cat] = idx
    if missing:
        raise ValueError(f"no expression unit matches categories {', '.join(missing)}; the unit "
                         f"names must be ICT (eyeBlink_L) or ARKit (eyeBlinkLeft) names, got "
                         f"{list(unit_names)[:8]}...")
    return out


def category_weights(weights: np.ndarray, unit_names: Sequence[str]) -> np.ndarray:
    """Unit weights [..., K] -> the ten category weights [..., 10] (mean of each category's units).

    Order: CATEGORIES. Works from unit names (ICT or ARKit), see `match_units`.
    """
    weights = np.asarray(weights, np.float64)
    if weights.shape[-1] != len(unit_names):
        raise ValueError(f"weights have {weights.shape[-1]} units, unit_names {len(unit_names)}")
    idx = category_unit_indices(unit_names)
    return np.stack([weights[..., idx[c]].mean(axis=-1) for c in CATEGORIES], axis=-1)


def masked_mae(predicted: np.ndarray, target: np.ndarray,
               valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-column MAE: predicted, target [N, K] (valid [N, K] bool, default all) -> [K].

    Columns with no valid entry are NaN.
    """
    predicted = np.asarray(predicted, np.float64)
    target = np.asarray(target, np.float64)
    if predicted.shape != target.shape or predicted.ndim != 2:
        raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be equal "
                         f"[N, K] arrays")
    valid = np.ones(target.shape, bool) if valid is None else np.asarray(valid, bool)
    err = np.where(valid, np.abs(predicted - target), 0.0)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, err.sum(axis=0) / np.maximum(count, 1), np.nan)


def grouped_mae(predicted: np.ndarray, target: np.ndarray, valid: np.ndarray,
                groups: Sequence[Optional[str]],
                categories: Sequence[str] = CATEGORIES) -> Dict[str, dict]:
    """MAE per category, pooling every valid (frame, column) entry of the category's columns.

    Args:
      predicted, target: [N, A] (per frame, per labelled column: an AU or a unit).
      valid: [N, A] bool, the entries that count (e.g. target > 0.8).
      groups: A category name (or None: not in any category) for each column.
    Returns:
      {category: {"mae": float (NaN when no entry), "count": int}, ..., "Avg": {"mae": mean of
      the finite category MAEs, "count": total entries}}.
    """
    predicted = np.asarray(predicted, np.float64)
    target = np.asarray(target, np.float64)
    valid = np.asarray(valid, bool)
    if len(groups) != target.shape[-1]:
        raise ValueError(f"{len(groups)} groups for {target.shape[-1]} columns")
    err = np.abs(predicted - target)
    out = {}
    for cat in categories:
        cols = np.array([g == cat for g in groups])
        mask = valid & cols[None, :]
        n = int(mask.sum())
        out[cat] = {"mae": float(err[mask].mean()) if n else float("nan"), "count": n}
    maes = [out[c]["mae"] for c in categories if np.isfinite(out[c]["mae"])]
    out["Avg"] = {"mae": float(np.mean(maes)) if maes else float("nan"),
                  "count": int(sum(out[c]["count"] for c in categories))}
    return out


def unit_category_mae(predicted: np.ndarray, target: np.ndarray, unit_names: Sequence[str],
                      threshold: float = ACTIVE_THRESHOLD) -> Dict[str, dict]:
    """Ten-category MAE when the ground truth is itself in our units (e.g. synthetic renders).

    predicted, target [N, K] unit weights in [0, 1]; an entry counts when target > threshold.
    Returns the `grouped_mae` dict (ten categories + "Avg").
    """
    idx = category_unit_indices(unit_names)
    groups: List[Optional[str]] = [None] * len(unit_names)
    for cat, cols in idx.items():
        for i in cols:
            groups[i] = cat
    target = np.asarray(target, np.float64)
    return grouped_mae(predicted, target, target > threshold, groups)


def per_unit_report(predicted: np.ndarray, target: np.ndarray, unit_names: Sequence[str],
                    threshold: Optional[float] = None) -> Mapping[str, dict]:
    """{unit: {"mae", "count"}} over all frames, or only where target > threshold when given."""
    target = np.asarray(target, np.float64)
    valid = np.ones(target.shape, bool) if threshold is None else target > threshold
    mae = masked_mae(predicted, target, valid)
    return {name: {"mae": float(m), "count": int(c)}
            for name, m, c in zip(unit_names, mae, valid.sum(axis=0))}
