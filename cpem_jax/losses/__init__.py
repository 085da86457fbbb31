"""The CPEM losses as pure functions (each returns a scalar) and the one reconstruction objective
(`objective.py`) that weights them for training and for fitting."""
from cpem_jax.losses.expression_exclusive import exp_loss_weight, expression_exclusive_loss
from cpem_jax.losses.identity_consistency import identity_consistency_loss
from cpem_jax.losses.landmark import landmark_loss, landmark_weights
from cpem_jax.losses.objective import (FITTING_WEIGHTS, TERM_NAMES, TRAINING_WEIGHTS, Targets,
                                       combine_losses, reconstruction_terms, resolve_weights)
from cpem_jax.losses.perceptual import cosine_similarity, perceptual_loss
from cpem_jax.losses.photometric import photometric_loss
from cpem_jax.losses.regularization import coefficient_regularization, expression_sparsity

__all__ = [
    "FITTING_WEIGHTS", "TERM_NAMES", "TRAINING_WEIGHTS", "Targets", "coefficient_regularization",
    "combine_losses", "cosine_similarity", "exp_loss_weight", "expression_exclusive_loss",
    "expression_sparsity", "identity_consistency_loss", "landmark_loss", "landmark_weights",
    "perceptual_loss", "photometric_loss", "reconstruction_terms", "resolve_weights",
]
