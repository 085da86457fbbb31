"""Training errors a user can act on; `cpem_jax.main` prints each as one line (exit status 2)."""
from __future__ import annotations


class TrainingSetupError(ValueError):
    """A setting or an input that has to be fixed before training can start; the message says how.

    Raised before anything is written to the workdir.
    """


class TrainingDataError(TrainingSetupError):
    """`config.data.root` is unset, does not exist, or holds no usable CPEM clip."""


class NonFiniteLossError(FloatingPointError):
    """A loss term went NaN or infinite; the message names the step and the term."""
