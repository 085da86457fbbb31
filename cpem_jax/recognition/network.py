"""dlib's face-recognition ResNet as a Flax Linen module.

The network of dlib's `dnn_face_recognition_ex.cpp` (`anet_type`): a 7x7 stride-2 stem
convolution, an affine layer (frozen batch norm), ReLU and a 3x3 stride-2 max pool, then five
stages of residual blocks (32, 64, 128, 256, 256 filters), a global average pool and a 128-d
bias-free fully connected layer.

Each block is conv3x3 -> affine -> relu -> conv3x3 -> affine, added to the shortcut, then ReLU.
A downsampling block strides its first convolution by 2 with no padding and average-pools its
shortcut 2x2 / 2; the two branches may then differ in size (channels: 32 -> 64; space: 3x3 vs 4x4)
and dlib adds them by zero-filling the smaller one at the end of each axis, as `_add_zero_filled`
does here.

Pixel convention: dlib's input layer takes 0..255 RGB, subtracts a per-channel mean and divides
by 256; this module takes chips in [0, 1] and applies the same map to `255 * chip`.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

# (filters, blocks, first block downsamples), from the input up.
DLIB_STAGES: Tuple[Tuple[int, int, bool], ...] = (
    (32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
CHIP_SIZE = 150
EMBEDDING_DIM = 128
STEM_FILTERS = 32
STEM_KERNEL = 7
# dlib's input_rgb_image_sized: (pixel_0_255 - mean) / 256.
PIXEL_MEANS = (122.782, 117.001, 104.298)
PIXEL_SCALE = 256.0


class Affine(nn.Module):
    """Per-channel scale and shift: x [..., C] -> gamma * x + beta."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        gamma = self.param("scale", nn.initializers.ones, (c,))
        beta = self.param("bias", nn.initializers.zeros, (c,))
        return x * gamma + beta


def _add_zero_filled(a: jax.Array, b: jax.Array) -> jax.Array:
    """a [B, Ha, Wa, Ca] + b [B, Hb, Wb, Cb] -> [B, max H, max W, max C], missing entries as 0."""
    target = tuple(max(sa, sb) for sa, sb in zip(a.shape, b.shape))

    def fill(x):
        return jnp.pad(x, [(0, t - s) for s, t in zip(x.shape, target)])

    return fill(a) + fill(b)


class ResidualBlock(nn.Module):
    """dlib's `ares` / `ares_down` block: x [B, H, W, C] -> [B, H', W', filters]."""

    filters: int
    downsample: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.downsample and min(x.shape[1], x.shape[2]) < 3:
            raise ValueError(
                f"feature map {x.shape[1]}x{x.shape[2]} is too small to downsample: the chips "
                f"are too small; use {CHIP_SIZE}x{CHIP_SIZE} chips (at least about 103 pixels).")
        stride = 2 if self.downsample else 1
        # dlib's default padding: 0 for a strided conv, half the kernel otherwise.
        first_pad = 0 if self.downsample else 1
        y = nn.Conv(self.filters, (3, 3), strides=(stride, stride),
                    padding=((first_pad, first_pad), (first_pad, first_pad)), name="conv1")(x)
        y = nn.relu(Affine(name="affine1")(y))
        y = nn.Conv(self.filters, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
        y = Affine(name="affine2")(y)
        shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2)) if self.downsample else x
        return nn.relu(_add_zero_filled(y, shortcut))


class DlibFaceResNet(nn.Module):
    """chips [B, S, S, 3] float in [0, 1] (S = 150 for dlib's weights) -> descriptor [B, 128].

    The output is dlib's raw descriptor (not normalised; dlib compares them by Euclidean
    distance, 0.6 being its same-person threshold). With the default stages, chips smaller
    than about 103 pixels shrink to nothing before the last stage and raise a ValueError.
    """

    stages: Sequence[Tuple[int, int, bool]] = DLIB_STAGES
    embedding_dim: int = EMBEDDING_DIM

    @nn.compact
    def __call__(self, chips: jax.Array) -> jax.Array:
        if chips.ndim != 4 or chips.shape[-1] != 3:
            raise ValueError(
                f"chips must be [B, H, W, 3] RGB in [0, 1], got shape {chips.shape}; "
                "add a batch axis with chips[None] for a single chip.")
        means = jnp.asarray(PIXEL_MEANS, chips.dtype)
        x = (chips * 255.0 - means) / PIXEL_SCALE
        x = nn.Conv(STEM_FILTERS, (STEM_KERNEL, STEM_KERNEL), strides=(2, 2), padding="VALID",
                    name="stem_conv")(x)
        x = nn.relu(Affine(name="stem_affine")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
        for s, (filters, blocks, downsample) in enumerate(self.stages):
            for k in range(blocks):
                x = ResidualBlock(filters, downsample and k == 0, name=f"stage{s}_block{k}")(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.embedding_dim, use_bias=False, name="fc")(x)
