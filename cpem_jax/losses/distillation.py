"""Distillation toward a teacher: the per-video fit's expression and head pose.

The self-supervised CPEM terms alone teach a small network slowly (on this project's CPU runs
the landmark error was still ~20 % after 600 steps). The identity-locked fit of each training
video (`cpem-jax prepare`, `cpem_jax.data.teacher`) gives per-frame targets on the very crops the
network sees; two terms pull the network toward them, on the frames that have a teacher row:

  distill_exp   mean over units of (beta - beta_teacher)^2               [0, 1] units squared
  distill_pose  mean over angles of (angle - angle_teacher)^2 (radians^2)
                + mean over axes of ((t - t_teacher) / 10 cm)^2

Both are averages over valid frames only (0 when a batch has none). Their weights and schedule
(`distill_weight`: full strength, then a linear fade so the self-supervised terms have the last
word) come from the training config.
"""
from __future__ import annotations

from typing import Dict

import jax.numpy as jnp

from cpem_jax.face_model.model import Coefficients

DISTILL_TERMS = ("distill_exp", "distill_pose")
TRANSLATION_SCALE_CM = 10.0


def _masked_mean(per_frame: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
    return jnp.sum(per_frame * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def distillation_terms(coeffs: Coefficients, expression: jnp.ndarray, rotation: jnp.ndarray,
                       translation: jnp.ndarray, valid: jnp.ndarray,
                       translation_scale_cm: float = TRANSLATION_SCALE_CM
                       ) -> Dict[str, jnp.ndarray]:
    """The two terms (module docstring) for N frames.

    Args:
      coeffs: the network's Coefficients, leading [N].
      expression: [N, K] teacher expression weights; rotation [N, 3] radians; translation
        [N, 3] cm; valid: [N] float (1 where the frame has a teacher row).
      translation_scale_cm: the translation error's unit in distill_pose (a larger unit
        weighs it less against the rotation).
    """
    valid = valid.astype(jnp.float32)
    exp_err = jnp.mean(jnp.square(coeffs.expression - expression), axis=-1)
    rot_err = jnp.mean(jnp.square(coeffs.rotation - rotation), axis=-1)
    t_err = jnp.mean(jnp.square((coeffs.translation - translation) / translation_scale_cm),
                     axis=-1)
    return {"distill_exp": _masked_mean(exp_err, valid),
            "distill_pose": _masked_mean(rot_err + t_err, valid)}


def distill_weight(step, total_steps: int, weight: float, fade_start_fraction: float,
                   final_fraction: float) -> jnp.ndarray:
    """The weight at `step`: `weight` until fade_start_fraction * total_steps, then linear down
    to final_fraction * weight at the last step. `step` may be traced."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    start = fade_start_fraction * total_steps
    span = jnp.maximum(total_steps - start, 1.0)
    progress = jnp.clip((jnp.asarray(step, jnp.float32) - start) / span, 0.0, 1.0)
    return jnp.float32(weight) * (1.0 - (1.0 - final_fraction) * progress)
