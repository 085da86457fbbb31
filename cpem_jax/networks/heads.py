"""Coefficient heads: one Dense layer per named coefficient group.

The heads replace the classifier of the backbone. Each group of `CoeffLayout` gets its own Dense
layer named after the group (`head_identity`, `head_expression`, ...), so a group's size can change
without touching the others and no flat vector is ever sliced by hand.

Initialisation (so that an untrained network predicts a plausible neutral face):
  * every kernel starts at zero (or N(0, head_init_scale^2) when `head_init_scale > 0`) and every
    bias at zero, except the expression bias (below);
  * expression = sigmoid(logits + expression_bias); the bias starts at `expression_bias_init`
    (default -2.0, i.e. every unit starts at sigmoid(-2) ~ 0.12 instead of the 0.5 a zero logit
    gives, which would start all blendshapes half on);
  * lighting: the raw [27] output is reshaped to [3, 9] (channel R, G, B x 9 SH coefficients) and a
    FIXED, non-trainable offset `lighting_dc_offset` (default 0.8) is added to the first (DC,
    band-0) coefficient of each channel, so that a zero output means a uniform ambient light of
    0.8 instead of a black render. The offset is part of the network, not of the geometry: the
    lighting a network outputs is the lighting the renderer uses;
  * translation: a fixed offset `translation_offset` (cm, default (0, 0, 0)) is added likewise;
    set it to the camera's default face placement if zero translation is not a visible face;
  * rotation is the raw output in radians (zero = frontal).
"""
from __future__ import annotations

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from cpem_jax.face_model.model import (COEFF_GROUPS, SH_COEFFS_PER_CHANNEL, CoeffLayout,
                                       Coefficients)

DEFAULT_LIGHTING_DC_OFFSET = 0.8
DEFAULT_EXPRESSION_BIAS_INIT = -2.0


class CoefficientHeads(nn.Module):
    """features [N, C] -> Coefficients with leading [N].

    Attributes:
      layout: sizes of the coefficient groups.
      head_init_scale: std of the kernel initialisation (0 = zero-initialised kernels).
      expression_bias_init: initial bias of the expression logits.
      lighting_dc_offset: fixed offset on the DC SH coefficient of each colour channel.
      translation_offset: fixed offset (cm) on the translation [3].
    """
    layout: CoeffLayout
    head_init_scale: float = 0.0
    expression_bias_init: float = DEFAULT_EXPRESSION_BIAS_INIT
    lighting_dc_offset: float = DEFAULT_LIGHTING_DC_OFFSET
    translation_offset: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> Coefficients:
        if features.ndim != 2:
            raise ValueError(f"CoefficientHeads expects features [N, C], got {features.shape}")
        if self.layout.lighting != 3 * SH_COEFFS_PER_CHANNEL:
            raise ValueError(f"layout.lighting must be {3 * SH_COEFFS_PER_CHANNEL} (3 channels "
                             f"x {SH_COEFFS_PER_CHANNEL} SH coefficients), got "
                             f"{self.layout.lighting}")
        if self.head_init_scale > 0:
            kernel_init = nn.initializers.normal(self.head_init_scale)
        else:
            kernel_init = nn.initializers.zeros
        outputs = {}
        for group, size in self.layout.sizes().items():
            bias_init = nn.initializers.zeros
            if group == "expression":
                bias_init = nn.initializers.constant(self.expression_bias_init)
            outputs[group] = nn.Dense(size, kernel_init=kernel_init, bias_init=bias_init,
                                      name=f"head_{group}")(features)
        n = features.shape[0]
        outputs["expression"] = jax.nn.sigmoid(outputs["expression"])
        lighting = outputs["lighting"].reshape(n, 3, SH_COEFFS_PER_CHANNEL)
        outputs["lighting"] = lighting + lighting_offset(self.lighting_dc_offset)
        outputs["translation"] = outputs["translation"] + jnp.asarray(
            self.translation_offset, jnp.float32)
        return Coefficients(**{group: outputs[group] for group in COEFF_GROUPS})


def lighting_offset(dc: float) -> jnp.ndarray:
    """The fixed lighting offset [3, 9]: `dc` on the band-0 coefficient of R, G and B, else 0."""
    return jnp.zeros((3, SH_COEFFS_PER_CHANNEL), jnp.float32).at[:, 0].set(dc)
