"""Perceptual loss: 1 - cosine similarity of face-recognition embeddings of input and render.

The embedding network is pluggable: any `embed_fn(images [N, H, W, 3] in [0, 1], landmarks
[N, 68, 2] pixels) -> embeddings [N, D]` (the paper uses a VGGFace2-trained recognition network;
the landmarks let it align the face crop). When no network is available (`embed_fn=None`) the term
is 0 and a log line says so once per process.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import jax
import jax.numpy as jnp

EmbedFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]

_LOG = logging.getLogger(__name__)
_DISABLED_LOGGED = False
COSINE_EPS = 1e-8


def _log_disabled_once() -> None:
    global _DISABLED_LOGGED
    if not _DISABLED_LOGGED:
        _LOG.warning("perceptual loss is OFF: no face-recognition embedding network was given "
                     "(embed_fn=None); the term is 0. Pass an embed_fn to enable it.")
        _DISABLED_LOGGED = True


def cosine_similarity(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """a, b [N, D] -> [N] cosine similarity (0 where either vector is zero, finite gradients)."""
    dot = jnp.sum(a * b, axis=-1)
    norms_sq = jnp.sum(a * a, axis=-1) * jnp.sum(b * b, axis=-1)
    positive = norms_sq > COSINE_EPS ** 2
    return jnp.where(positive, dot * jax.lax.rsqrt(jnp.where(positive, norms_sq, 1.0)), 0.0)


def perceptual_loss(image: jnp.ndarray, render: jnp.ndarray, landmarks: jnp.ndarray,
                    embed_fn: Optional[EmbedFn]) -> jnp.ndarray:
    """Mean over frames of 1 - cos(embed(image), embed(render)).

    Args:
      image: [N, H, W, 3] float32 in [0, 1], input frames (their embedding is a fixed target).
      render: [N, H, W, 3] float32 in [0, 1], renders (composited on the input image).
      landmarks: [N, 68, 2] float32 pixels, used by `embed_fn` to align both images.
      embed_fn: the embedding network, or None to switch the term off.

    Returns:
      scalar float32 (0 when embed_fn is None).
    """
    if embed_fn is None:
        _log_disabled_once()
        return jnp.zeros((), jnp.float32)
    if image.shape != render.shape:
        raise ValueError(f"image {image.shape} and render {render.shape} must have equal shape")
    target = jax.lax.stop_gradient(embed_fn(image, landmarks))
    predicted = embed_fn(render, landmarks)
    if target.ndim != 2 or target.shape[0] != image.shape[0]:
        raise ValueError(f"embed_fn must return embeddings [N, D] with N = {image.shape[0]}, "
                         f"got {target.shape}")
    return jnp.mean(1.0 - cosine_similarity(predicted, target))
