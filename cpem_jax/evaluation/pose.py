"""Head-pose error in degrees: geodesic angle between rotations, and per Euler axis.

Angles follow the project convention (cpem_jax/geometry/rotation.py): (pitch, yaw, roll) in
radians, R = Rz(roll) Ry(yaw) Rx(pitch). The geodesic error does not depend on the Euler
convention; the per-axis error only makes sense when both sides use the same convention.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from cpem_jax.geometry.rotation import euler_to_matrix

AXES = ("pitch", "yaw", "roll")


def euler_to_matrix_np(angles: np.ndarray) -> np.ndarray:
    """angles [..., 3] (pitch, yaw, roll) radians -> R [..., 3, 3] float64 = Rz Ry Rx (numpy),
    the project's convention (cpem_jax.geometry.rotation) evaluated in float64."""
    return euler_to_matrix(np.asarray(angles, np.float64), xp=np)


def geodesic_angle_deg(r_pred: np.ndarray, r_true: np.ndarray) -> np.ndarray:
    """Angle of the rotation between two rotation matrices: [..., 3, 3] x2 -> [...] degrees.

    arccos((trace(R_pred^T R_true) - 1) / 2), clipped for round-off; in [0, 180].
    """
    r_pred = np.asarray(r_pred, np.float64)
    r_true = np.asarray(r_true, np.float64)
    if r_pred.shape[-2:] != (3, 3) or r_true.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must be [..., 3, 3], got {r_pred.shape} and "
                         f"{r_true.shape}")
    trace = np.einsum("...ji,...ji->...", r_pred, r_true)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def wrapped_difference_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Absolute angle differences in degrees, wrapped to [0, 180]: inputs in radians, any shape."""
    d = np.degrees(np.asarray(pred, np.float64) - np.asarray(true, np.float64))
    return np.abs((d + 180.0) % 360.0 - 180.0)


def pose_errors(pred_euler: np.ndarray, true_euler: np.ndarray) -> Dict[str, float]:
    """Summary of pose errors over frames.

    Args:
      pred_euler, true_euler: [N, 3] (pitch, yaw, roll) radians; rows with a NaN are skipped.
    Returns:
      {"geodesic_mean_deg", "geodesic_median_deg", "pitch_mae_deg", "yaw_mae_deg",
       "roll_mae_deg", "count"}.
    """
    pred = np.asarray(pred_euler, np.float64).reshape(-1, 3)
    true = np.asarray(true_euler, np.float64).reshape(-1, 3)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must both be [N, 3]")
    ok = np.all(np.isfinite(pred), axis=1) & np.all(np.isfinite(true), axis=1)
    pred, true = pred[ok], true[ok]
    out = {"count": int(ok.sum())}
    if not ok.any():
        nan = float("nan")
        out.update({"geodesic_mean_deg": nan, "geodesic_median_deg": nan,
                    **{f"{a}_mae_deg": nan for a in AXES}})
        return out
    geo = geodesic_angle_deg(euler_to_matrix_np(pred), euler_to_matrix_np(true))
    per_axis = wrapped_difference_deg(pred, true).mean(axis=0)
    out.update({"geodesic_mean_deg": float(geo.mean()),
                "geodesic_median_deg": float(np.median(geo)),
                **{f"{a}_mae_deg": float(v) for a, v in zip(AXES, per_axis)}})
    return out
