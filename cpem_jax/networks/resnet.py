"""ImageNet-style ResNets (ResNet-18/34/50/101) in Flax Linen, laid out like torchvision.

The module and parameter names mirror torchvision's state-dict names so that ImageNet weights a
user brings can be converted by name (see `torchvision_convert.py`):

    torchvision                      Flax path
    conv1.weight                     conv1/kernel
    bn1.{weight,bias}                bn1/{scale,bias}
    bn1.{running_mean,running_var}   batch_stats: bn1/{mean,var}
    layer2.0.conv1.weight            layer2_0/conv1/kernel
    layer2.0.downsample.0.weight     layer2_0/downsample_0/kernel     (1x1 projection conv)
    layer2.0.downsample.1.*          layer2_0/downsample_1/*          (its batch norm)

Semantics follow torchvision: 7x7/2 stem with padding 3, 3x3/2 max pool with padding 1, stride on
the 3x3 conv of a bottleneck ("ResNet v1.5"), batch norm eps 1e-5 and running-average momentum 0.1
(Flax momentum 0.9). The network ends at global average pooling (the classifier is replaced by
the coefficient heads, `heads.py`).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Flax convention; torchvision's momentum=0.1 means the same running average.

# Blocks per stage of the standard depths.
STAGE_SIZES = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
}
BOTTLENECK_DEPTHS = (50, 101)


def _conv(features: int, kernel: int, stride: int, name: str) -> nn.Conv:
    """A bias-free conv with torchvision's symmetric padding (kernel // 2 on each side)."""
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), use_bias=False,
                   kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                   name=name)


def _batch_norm(train: bool, name: str, zero_scale: bool = False) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                        scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
                        name=name)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). x [N, H, W, C] -> [N, H/stride, W/stride, features]."""
    features: int
    stride: int = 1
    zero_init_residual: bool = False

    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        out = _conv(self.features, 3, self.stride, "conv1")(x)
        out = nn.relu(_batch_norm(train, "bn1")(out))
        out = _conv(self.features, 3, 1, "conv2")(out)
        out = _batch_norm(train, "bn2", self.zero_init_residual)(out)
        return nn.relu(out + _shortcut(x, self.features, self.stride, train))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 x4 (ResNet-50/101).

    x [N, H, W, C] -> [N, H/stride, W/stride, 4 * features].
    """
    features: int
    stride: int = 1
    zero_init_residual: bool = False

    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        out = _conv(self.features, 1, 1, "conv1")(x)
        out = nn.relu(_batch_norm(train, "bn1")(out))
        out = _conv(self.features, 3, self.stride, "conv2")(out)
        out = nn.relu(_batch_norm(train, "bn2")(out))
        out = _conv(self.features * self.expansion, 1, 1, "conv3")(out)
        out = _batch_norm(train, "bn3", self.zero_init_residual)(out)
        return nn.relu(out + _shortcut(x, self.features * self.expansion, self.stride, train))


def _shortcut(x: jnp.ndarray, features: int, stride: int, train: bool) -> jnp.ndarray:
    """Identity, or a strided 1x1 conv + batch norm when the shape changes ('downsample').

    Called inside a block's compact `__call__`, so the submodules are named under that block.
    """
    if stride == 1 and x.shape[-1] == features:
        return x
    proj = _conv(features, 1, stride, "downsample_0")(x)
    return _batch_norm(train, "downsample_1")(proj)


class ResNet(nn.Module):
    """ResNet feature extractor.

    Attributes:
      depth: 18, 34, 50 or 101 (selects block type and stage sizes unless `stage_sizes` is given).
      width: channels of the stem and of the first stage (64 for the standard networks; smaller
        values give tiny networks for tests).
      stage_sizes: optional blocks per stage, overriding the standard ones (4 stages).
      zero_init_residual: start each residual branch's last batch-norm scale at zero.

    Call: images [N, H, W, 3] float32 (already normalised) -> features [N, C] float32 where
    C = 8 * width * expansion (512 for ResNet-18, 2048 for ResNet-50).
    """
    depth: int = 50
    width: int = 64
    stage_sizes: Tuple[int, ...] | None = None
    zero_init_residual: bool = False

    def _stages(self) -> Sequence[int]:
        if self.stage_sizes is not None:
            if len(self.stage_sizes) != 4:
                raise ValueError(f"stage_sizes must have 4 entries, got {self.stage_sizes}")
            return self.stage_sizes
        if self.depth not in STAGE_SIZES:
            raise ValueError(f"ResNet depth {self.depth} is not supported; use one of "
                             f"{sorted(STAGE_SIZES)}")
        return STAGE_SIZES[self.depth]

    @property
    def block_class(self):
        return Bottleneck if self.depth in BOTTLENECK_DEPTHS else BasicBlock

    @property
    def num_features(self) -> int:
        return 8 * self.width * self.block_class.expansion

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"ResNet expects images [N, H, W, 3], got shape {x.shape}")
        x = _conv(self.width, 7, 2, "conv1")(x)
        x = nn.relu(_batch_norm(train, "bn1")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        block = self.block_class
        for stage, n_blocks in enumerate(self._stages()):
            features = self.width * 2 ** stage
            for index in range(n_blocks):
                stride = 2 if (stage > 0 and index == 0) else 1
                x = block(features, stride, self.zero_init_residual,
                          name=f"layer{stage + 1}_{index}")(x, train)
        return jnp.mean(x, axis=(1, 2))


def resnet50(**kwargs) -> ResNet:
    """The paper's backbone: ResNet-50, 2048 features."""
    return ResNet(depth=50, **kwargs)


def resnet18(**kwargs) -> ResNet:
    """The light backbone: ResNet-18, 512 features."""
    return ResNet(depth=18, **kwargs)
