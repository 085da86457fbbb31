"""Expression-exclusive loss: two contradictory units (eye blink vs eye wide) may not both fire.

For each contradictory pair (i, j) the smaller of beta_i, beta_j is pushed toward 0 with a squared
penalty and the larger is left untouched ("winner takes all"). Which one is smaller is decided
without gradient. On an exact tie the second unit of the pair (j) is the one penalised.
The loss sums over pairs and averages over frames.

Schedule: the paper switches the term on only for the last third of training (once expressions
are reasonable): `exp_loss_weight`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_EXP_WEIGHT = 10.0
DEFAULT_START_FRACTION = 2.0 / 3.0


def expression_exclusive_loss(expression: jnp.ndarray, pairs: jnp.ndarray) -> jnp.ndarray:
    """L_exp = mean over frames of sum over pairs of min(beta_i, beta_j)^2 (winner takes all).

    Args:
      expression: [..., K_exp] float32 expression weights in [0, 1].
      pairs: [P, 2] int contradictory unit indices (`FaceModel.contradictory_pairs`).

    Returns:
      scalar float32 (0 when P == 0). Gradient flows only into the smaller unit of each pair.
    """
    pairs = jnp.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[-1] != 2 or not jnp.issubdtype(pairs.dtype, jnp.integer):
        raise ValueError(f"pairs must be int [P, 2], got {pairs.dtype} {pairs.shape}")
    if pairs.shape[0] == 0:
        return jnp.zeros((), jnp.float32)
    first = jnp.take(expression, pairs[:, 0], axis=-1)                      # [..., P]
    second = jnp.take(expression, pairs[:, 1], axis=-1)                     # [..., P]
    first_loses = jax.lax.stop_gradient(first < second)
    loser = jnp.where(first_loses, first, second)
    return jnp.mean(jnp.sum(loser ** 2, axis=-1))


def exp_loss_weight(step, total_steps: int, start_fraction: float = DEFAULT_START_FRACTION,
                    weight: float = DEFAULT_EXP_WEIGHT) -> jnp.ndarray:
    """lambda_exp at `step`: 0 before start_fraction * total_steps, `weight` from then on.

    `step` may be a traced int (inside jit). Returns a scalar float32.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    start = start_fraction * total_steps
    return jnp.where(jnp.asarray(step) >= start, jnp.float32(weight), jnp.float32(0.0))
