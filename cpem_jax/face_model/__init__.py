"""The morphable face model: the pytree, its loaders and the converted cache."""
from cpem_jax.face_model.model import (COEFF_GROUPS, CoeffLayout, Coefficients, FaceModel)
from cpem_jax.face_model.registry import load_face_model

__all__ = ["COEFF_GROUPS", "CoeffLayout", "Coefficients", "FaceModel", "load_face_model"]
