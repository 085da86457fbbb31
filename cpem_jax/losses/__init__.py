"""The CPEM losses as pure functions (each returns a scalar; `total.py` weights and sums them)."""
from cpem_jax.losses.expression_exclusive import exp_loss_weight, expression_exclusive_loss
from cpem_jax.losses.identity_consistency import identity_consistency_loss
from cpem_jax.losses.landmark import landmark_loss, landmark_weights
from cpem_jax.losses.perceptual import cosine_similarity, perceptual_loss
from cpem_jax.losses.photometric import photometric_loss
from cpem_jax.losses.regularization import coefficient_regularization, expression_sparsity
from cpem_jax.losses.total import (DEFAULT_LOSS_WEIGHTS, LOSS_NAMES, combine_losses, cpem_losses,
                                   resolve_weights)

__all__ = [
    "DEFAULT_LOSS_WEIGHTS", "LOSS_NAMES", "coefficient_regularization", "combine_losses",
    "cosine_similarity", "cpem_losses", "exp_loss_weight", "expression_exclusive_loss",
    "expression_sparsity", "identity_consistency_loss", "landmark_loss", "landmark_weights",
    "perceptual_loss", "photometric_loss", "resolve_weights",
]
