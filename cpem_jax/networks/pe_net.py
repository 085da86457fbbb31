"""PE-Net: image in, named face coefficients out.

`PENet` = ImageNet normalisation -> backbone (ResNet-50 as in the paper, or ResNet-18 /
MobileNet-V2 as light backbones) -> one Dense head per coefficient group (`heads.py`).

Variables: `{'params': ..., 'batch_stats': ...}`; the backbone lives under the `backbone` scope and
the heads under `heads`. Training applies with `train=True, mutable=['batch_stats']`; inference
with `train=False`. Multi-frame clips [B, T, H, W, 3] are folded to [B*T, H, W, 3] before the
network (`fold_frames`) and the coefficients unfolded after (`unfold_frames`).

Example:
    net = PENet(layout=face_model.layout(), backbone="resnet50")
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))
    coeffs = net.apply(variables, images)            # Coefficients, leading [N]
"""
from __future__ import annotations

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from cpem_jax.face_model.model import CoeffLayout, Coefficients
from cpem_jax.networks.heads import (DEFAULT_EXPRESSION_BIAS_INIT, DEFAULT_LIGHTING_DC_OFFSET,
                                     CoefficientHeads)
from cpem_jax.networks.mobilenet import MobileNetV2
from cpem_jax.networks.resnet import ResNet

# torchvision's ImageNet statistics (RGB, images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES = ("resnet50", "resnet18", "mobilenet_v2")
PAPER_INPUT_SIZE = 224


def make_backbone(name: str, width_scale: float = 1.0) -> nn.Module:
    """A backbone by name; `width_scale` < 1 shrinks channels (tiny networks for tests/CPU).

    Returns a module mapping normalised images [N, H, W, 3] -> features [N, C].
    """
    if name == "resnet50":
        return ResNet(depth=50, width=max(1, int(round(64 * width_scale))), name="backbone")
    if name == "resnet18":
        return ResNet(depth=18, width=max(1, int(round(64 * width_scale))), name="backbone")
    if name == "mobilenet_v2":
        return MobileNetV2(width_multiplier=width_scale, name="backbone")
    raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")


def normalize_images(images: jnp.ndarray) -> jnp.ndarray:
    """images [N, H, W, 3] float in [0, 1] -> ImageNet-normalised [N, H, W, 3] float32."""
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    return (images.astype(jnp.float32) - mean) / std


class PENet(nn.Module):
    """The pose-and-expression network.

    Attributes:
      layout: coefficient group sizes (`FaceModel.layout()`).
      backbone: one of BACKBONES ("resnet50" is the paper's).
      width_scale: channel multiplier of the backbone (1.0 = standard, required for ImageNet
        weights; small values for tests).
      head_init_scale, expression_bias_init, lighting_dc_offset, translation_offset: see
        `CoefficientHeads`.

    Call: images [N, H, W, 3] float32 in [0, 1] (the paper uses H = W = 224), train flag ->
    Coefficients with leading [N] (expression in [0, 1], lighting [N, 3, 9]).
    """
    layout: CoeffLayout
    backbone: str = "resnet50"
    width_scale: float = 1.0
    head_init_scale: float = 0.0
    expression_bias_init: float = DEFAULT_EXPRESSION_BIAS_INIT
    lighting_dc_offset: float = DEFAULT_LIGHTING_DC_OFFSET
    translation_offset: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @nn.compact
    def __call__(self, images: jnp.ndarray, train: bool = False) -> Coefficients:
        if images.ndim != 4 or images.shape[-1] != 3:
            hint = (" (a multi-frame batch [B, T, H, W, 3] must be folded first with "
                    "cpem_jax.networks.fold_frames)" if images.ndim == 5 else "")
            raise ValueError(f"PENet expects images [N, H, W, 3] in [0, 1], got shape "
                             f"{images.shape}{hint}")
        features = make_backbone(self.backbone, self.width_scale)(normalize_images(images), train)
        return CoefficientHeads(self.layout, head_init_scale=self.head_init_scale,
                                expression_bias_init=self.expression_bias_init,
                                lighting_dc_offset=self.lighting_dc_offset,
                                translation_offset=self.translation_offset,
                                name="heads")(features)


def pe_net_from_config(model_config, layout: CoeffLayout) -> PENet:
    """The PENet a config's `model` section describes (backbone, width_scale)."""
    return PENet(layout=layout, backbone=str(model_config.backbone),
                 width_scale=float(model_config.width_scale))


def fold_frames(clips: jnp.ndarray) -> jnp.ndarray:
    """clips [B, T, ...] -> [B*T, ...] (frames of a clip stay adjacent)."""
    if clips.ndim < 2:
        raise ValueError(f"fold_frames expects [B, T, ...], got shape {clips.shape}")
    return clips.reshape((clips.shape[0] * clips.shape[1],) + clips.shape[2:])


def unfold_frames(tree, batch: int, frames: int):
    """Inverse of `fold_frames` on every leaf of a pytree (e.g. Coefficients).

    Each leaf [B*T, ...] -> [B, T, ...].
    """
    def unfold(leaf):
        if leaf.shape[0] != batch * frames:
            raise ValueError(f"cannot unfold a leading axis of {leaf.shape[0]} into "
                             f"[{batch}, {frames}]")
        return leaf.reshape((batch, frames) + leaf.shape[1:])
    return jax.tree_util.tree_map(unfold, tree)


def init_pe_net(net: PENet, rng: jax.Array, image_size: int = PAPER_INPUT_SIZE,
                batch: int = 1) -> dict:
    """Initial variables {'params', 'batch_stats'} for images [batch, image_size, image_size, 3]."""
    dummy = jnp.zeros((batch, image_size, image_size, 3), jnp.float32)
    return net.init(rng, dummy, train=False)
