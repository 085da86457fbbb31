"""Identity consistency over a video (the paper's Fig. 5).

For each video, every frame's identity coefficients are compared with the first frame's (the
first frame with a face): the MAE over the K_id coefficients, and the per-vertex RMS distance
between the identity-only meshes (mean_shape + id_basis @ alpha), in millimetres. Curves are
averaged over videos per frame index (frame 0 is the reference, always 0).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

CM_TO_MM = 10.0  # ICT-FaceKit model units are centimetres.


def _reference_row(identity: np.ndarray) -> int:
    valid = np.all(np.isfinite(identity), axis=1)
    if not valid.any():
        raise ValueError("a video has no frame with finite identity coefficients (no face found)")
    return int(np.argmax(valid))


def coefficient_mae_to_first(identity: np.ndarray) -> np.ndarray:
    """identity [T, K] (NaN rows: no face) -> [T] mean |alpha_t - alpha_first| (NaN rows stay NaN).

    The reference is the first row with a face; rows before it are NaN.
    """
    identity = np.asarray(identity, np.float64)
    if identity.ndim != 2:
        raise ValueError(f"identity must be [T, K], got {identity.shape}")
    ref = _reference_row(identity)
    out = np.abs(identity - identity[ref]).mean(axis=1)
    out[:ref] = np.nan
    return out


def mesh_rms_to_first_mm(identity: np.ndarray, id_basis: np.ndarray,
                         unit_to_mm: float = CM_TO_MM, chunk: int = 64) -> np.ndarray:
    """Per-vertex RMS between each frame's identity-only mesh and the first frame's, in mm.

    Args:
      identity: [T, K] identity coefficients (NaN rows: no face).
      id_basis: [V, 3, K] identity basis in model units (the mean shape cancels out).
      unit_to_mm: millimetres per model unit (10 for ICT's centimetres).
      chunk: frames per batch (bounds memory at chunk * V * 3 floats).
    Returns:
      [T] float64 sqrt(mean_v ||S_t[v] - S_first[v]||^2) * unit_to_mm.
    """
    identity = np.asarray(identity, np.float64)
    basis = np.asarray(id_basis, np.float64)
    if basis.ndim != 3 or basis.shape[1] != 3 or basis.shape[2] != identity.shape[1]:
        raise ValueError(f"id_basis {basis.shape} must be [V, 3, {identity.shape[1]}] for "
                         f"identity {identity.shape}")
    ref = _reference_row(identity)
    diff = identity - identity[ref]
    out = np.empty(len(identity))
    for a in range(0, len(identity), chunk):
        d = np.einsum("vck,tk->tvc", basis, diff[a:a + chunk])
        out[a:a + chunk] = np.sqrt((d ** 2).sum(axis=-1).mean(axis=-1)) * unit_to_mm
    out[:ref] = np.nan
    return out


def _average_curves(curves: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
    """Per-frame-index mean over videos of varying length, ignoring NaN."""
    length = max(len(c) for c in curves)
    stack = np.full((len(curves), length), np.nan)
    for i, c in enumerate(curves):
        stack[i, :len(c)] = c
    count = np.isfinite(stack).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(count > 0, np.nansum(stack, axis=0) / np.maximum(count, 1), np.nan)
    return {"mean": mean, "count": count}


def identity_consistency(identities: Sequence[np.ndarray], id_basis=None,
                         unit_to_mm: float = CM_TO_MM) -> dict:
    """The Fig. 5 curve data for several videos.

    Args:
      identities: per video, [T_i, K] identity coefficients (NaN rows: no face).
      id_basis: optional [V, 3, K] basis (e.g. FaceModel.id_basis) for the mesh RMS in mm.
    Returns:
      {"frame_index": [T_max] list, "coefficient_mae": [T_max] list (mean over videos),
       "videos_per_frame": [T_max] list, "coefficient_mae_mean": float (over frames after the
       first, all videos pooled per frame index), "n_videos": int, and with id_basis
       "mesh_rms_mm": [T_max] list, "mesh_rms_mm_mean": float}.
    """
    if not identities:
        raise ValueError("identity_consistency needs at least one video")
    coeff = _average_curves([coefficient_mae_to_first(i) for i in identities])
    out = {"frame_index": list(range(len(coeff["mean"]))),
           "coefficient_mae": coeff["mean"].tolist(),
           "videos_per_frame": coeff["count"].tolist(),
           "coefficient_mae_mean": _after_first(coeff["mean"]),
           "n_videos": len(identities)}
    if id_basis is not None:
        rms = _average_curves([mesh_rms_to_first_mm(i, id_basis, unit_to_mm)
                               for i in identities])
        out["mesh_rms_mm"] = rms["mean"].tolist()
        out["mesh_rms_mm_mean"] = _after_first(rms["mean"])
    return out


def _after_first(curve: np.ndarray) -> float:
    tail = curve[1:]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if len(tail) else float("nan")


def identities_from_tracks(tracks: Sequence) -> list:
    """VideoEstimate objects -> their identity arrays [T, K] (float64) with no-face rows NaN."""
    return [np.asarray(track.per_frame("identity"), np.float64) for track in tracks]
