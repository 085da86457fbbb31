"""Temporal stability of per-frame estimates."""
from __future__ import annotations

import numpy as np


def mean_abs_change(values: np.ndarray, valid: np.ndarray) -> float:
    """Mean |x_t - x_{t-1}| over consecutive frames that are both valid, all channels.

    values [N, C], valid [N] bool -> float (NaN when no pair of consecutive valid frames).
    """
    values = np.asarray(values, np.float64)
    valid = np.asarray(valid, bool)
    pairs = valid[1:] & valid[:-1]
    if not pairs.any():
        return float("nan")
    return float(np.abs(np.diff(values, axis=0))[pairs].mean())
