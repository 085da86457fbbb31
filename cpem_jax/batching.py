"""Fixed-size batches over N items, so that a jitted function compiles for one shape only.

    for rows, padded in padded_batches(n, 8):
        out = f(x[padded])[:len(rows)]

`rows` are the item indices of the batch and `padded` the same, lengthened to `batch` by
repeating the last index (the repeated results are dropped by the caller).
"""
from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np


def padded_batches(n: int, batch: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yields (rows [k] int64, padded [batch] int64) for consecutive batches of range(n)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    for begin in range(0, n, batch):
        rows = np.arange(begin, min(begin + batch, n))
        yield rows, pad_to(rows, batch)


def pad_to(array: np.ndarray, n: int) -> np.ndarray:
    """array [k, ...] (1 <= k <= n) -> [n, ...] with the last entry repeated."""
    array = np.asarray(array)
    if len(array) == n:
        return array
    if not 0 < len(array) < n:
        raise ValueError(f"cannot pad {len(array)} entries to {n}")
    return np.concatenate([array, np.repeat(array[-1:], n - len(array), axis=0)])
