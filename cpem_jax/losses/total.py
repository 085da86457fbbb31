"""The CPEM training objective: every loss term, weighted and summed.

L = 1.9 L_pho + 0.2 L_per + 0.1 L_lm + 1e-4 L_reg + 0.1 L_sp + 1000 L_idc + lambda_exp L_exp,
with lambda_exp = 10 in the last third of training and 0 before (`exp_loss_weight`). The paper
sums the reconstruction terms over the T frames of a clip; here every term is a mean over the B*T
frames, which scales all terms by the same 1/T and so keeps the paper's relative weights.

Weights come from a config-like mapping with the keys of `DEFAULT_LOSS_WEIGHTS`; missing keys take
the defaults, unknown keys are an error. A weight may be a traced scalar (e.g. the L_exp schedule).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import jax.numpy as jnp

from cpem_jax.face_model.model import Coefficients
from cpem_jax.losses.expression_exclusive import expression_exclusive_loss
from cpem_jax.losses.identity_consistency import identity_consistency_loss
from cpem_jax.losses.landmark import landmark_loss
from cpem_jax.losses.perceptual import EmbedFn, perceptual_loss
from cpem_jax.losses.photometric import photometric_loss
from cpem_jax.losses.regularization import coefficient_regularization, expression_sparsity

# Paper (method.md) weights, keyed by term name.
DEFAULT_LOSS_WEIGHTS: Dict[str, float] = {
    "pho": 1.9,     # photometric l2,1
    "per": 0.2,     # perceptual (face-recognition cosine)
    "lm": 0.1,      # weighted 68 landmarks (crop units, see landmark.py)
    "reg": 1e-4,    # identity / albedo l2 prior
    "sp": 0.1,      # expression l1 sparsity
    "idc": 1000.0,  # identity consistency across the T frames
    "exp": 10.0,    # expression exclusivity (scheduled: exp_loss_weight)
}
LOSS_NAMES = tuple(DEFAULT_LOSS_WEIGHTS)


def resolve_weights(weights: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """Defaults updated with `weights`; an unknown key raises naming the valid ones."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(LOSS_NAMES))
    if unknown:
        raise KeyError(f"unknown loss weight(s) {unknown}; valid names: {list(LOSS_NAMES)}")
    return {**DEFAULT_LOSS_WEIGHTS, **weights}


def combine_losses(terms: Mapping[str, jnp.ndarray],
                   weights: Optional[Mapping[str, float]] = None
                   ) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """(sum of weight * term, {name: unweighted term, ..., 'total': total}).

    Args:
      terms: name -> scalar loss; every name must be one of LOSS_NAMES.
      weights: name -> weight (defaults for missing names).
    """
    resolved = resolve_weights(weights)
    unknown = sorted(set(terms) - set(LOSS_NAMES))
    if unknown:
        raise KeyError(f"unknown loss term(s) {unknown}; valid names: {list(LOSS_NAMES)}")
    total = jnp.zeros((), jnp.float32)
    for name, value in terms.items():
        total = total + resolved[name] * value
    return total, {**terms, "total": total}


def cpem_losses(*, image: jnp.ndarray, render: jnp.ndarray, render_mask: jnp.ndarray,
                skin_mask: jnp.ndarray, landmarks_predicted: jnp.ndarray,
                landmarks_target: jnp.ndarray, front_face_flag: jnp.ndarray,
                coeffs: Coefficients, contradictory_pairs: jnp.ndarray, frames: int,
                weights: Optional[Mapping[str, float]] = None,
                embed_fn: Optional[EmbedFn] = None,
                image_size: float = 224.0) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """All CPEM terms for a folded batch of B clips x T frames (N = B * T, frames adjacent).

    Args:
      image: [N, H, W, 3] float32 in [0, 1], input frames.
      render: [N, H, W, 3] float32, renders of the predicted faces.
      render_mask: [N, H, W] float32 in [0, 1], render coverage.
      skin_mask: [N, H, W] float32 in [0, 1], skin in the input.
      landmarks_predicted: [N, 68, 2] float32, projected model landmarks, pixels.
      landmarks_target: [N, 68, 2] float32, detected landmarks, pixels.
      front_face_flag: [N] bool, near-frontal frames.
      coeffs: Coefficients with leading [N] (the network output).
      contradictory_pairs: [P, 2] int expression index pairs.
      frames: T, frames per clip (N must be a multiple of it).
      weights: loss weights (see DEFAULT_LOSS_WEIGHTS); pass
        `{'exp': exp_loss_weight(step, total_steps)}` to apply the L_exp schedule.
      embed_fn: face-recognition embedding network, or None (L_per off).
      image_size: crop size in pixels (the landmark loss unit).

    Returns:
      (total scalar, {term name: unweighted scalar, 'total': total}).
    """
    n = image.shape[0]
    if frames <= 0 or n % frames:
        raise ValueError(f"batch of {n} frames is not a whole number of clips of {frames} frames")
    identity_clips = coeffs.identity.reshape((n // frames, frames) + coeffs.identity.shape[1:])
    terms = {
        "pho": photometric_loss(image, render, render_mask, skin_mask),
        "per": perceptual_loss(image, render, landmarks_target, embed_fn),
        "lm": landmark_loss(landmarks_predicted, landmarks_target, front_face_flag, image_size),
        "reg": coefficient_regularization(coeffs.identity, coeffs.albedo),
        "sp": expression_sparsity(coeffs.expression),
        "idc": identity_consistency_loss(identity_clips),
        "exp": expression_exclusive_loss(coeffs.expression, contradictory_pairs),
    }
    return combine_losses(terms, weights)
