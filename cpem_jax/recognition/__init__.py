"""Face-recognition embeddings for the perceptual loss: dlib's ResNet v1 in Flax.

Public API (see `embedding.py`): `load_face_embedder`, `embed`, `embed_chips`,
`perceptual_distance`, `landmarks5_from_68`, `extract_face_chips`; `perceptual_embed_fn` is the
training losses' default embedding network.
"""
from cpem_jax.recognition.alignment import extract_face_chips, landmarks5_from_68
from cpem_jax.recognition.embedding import (
    descriptor_chips, embed, embed_chips, load_face_embedder, perceptual_distance)
from cpem_jax.recognition.network import DlibFaceResNet
from cpem_jax.recognition.perceptual import perceptual_embed_fn

__all__ = [
    "DlibFaceResNet", "descriptor_chips", "embed", "embed_chips", "extract_face_chips",
    "landmarks5_from_68", "load_face_embedder", "perceptual_distance", "perceptual_embed_fn",
]
