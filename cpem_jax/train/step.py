"""The pure train step: network -> coefficients -> the shared objective + L_idc -> Adam update."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cpem_jax.face_model.model import FaceModel
from cpem_jax.geometry.camera import Camera
from cpem_jax.losses import exp_loss_weight, identity_consistency_loss, perceptual_loss
from cpem_jax.losses.distillation import (DISTILL_TERMS, TRANSLATION_SCALE_CM, distill_weight,
                                          distillation_terms)
from cpem_jax.losses.objective import (TRAINING_WEIGHTS, Targets, combine_losses,
                                       reconstruction_terms)
from cpem_jax.losses.perceptual import EmbedFn
from cpem_jax.networks.pe_net import fold_frames
from cpem_jax.train.state import TrainState, current_learning_rate

# Batch keys that go to the device (identifiers stay on the host); the teacher keys only when
# the batch has them (training with distillation).
ARRAY_KEYS = ("image", "skin_mask", "landmarks", "front_flag")
TEACHER_KEYS = ("teacher_expression", "teacher_rotation", "teacher_translation",
                "teacher_valid")


def device_keys(batch: Mapping) -> tuple:
    """ARRAY_KEYS, plus TEACHER_KEYS when the batch carries teacher targets."""
    return ARRAY_KEYS + (TEACHER_KEYS if TEACHER_KEYS[0] in batch else ())


def training_terms(model: FaceModel, coeffs, camera: Camera, targets: Targets, frames: int,
                   render_fn: Optional[Callable], embed_fn: Optional[EmbedFn],
                   perceptual_frames: int = 0):
    """The reconstruction terms of N = B*T frames plus L_idc over each clip of T frames.

    `perceptual_frames` (static) = k in 1..T-1 computes L_per on the first k frames of each clip
    only (the clips are random windows, so these are random frames: the same expectation at k/T
    of the cost of the face-recognition network, the most expensive part of a CPU step); 0 or
    >= T uses every frame, as the paper does.
    Returns (terms dict, FaceRender over the input).
    """
    n = coeffs.identity.shape[0]
    if frames <= 0 or n % frames:
        raise ValueError(f"batch of {n} frames is not a whole number of clips of {frames} frames")
    subset = 0 < perceptual_frames < frames
    terms, rendered = reconstruction_terms(model, coeffs, camera, targets, render_fn,
                                           None if subset else embed_fn)
    if subset:
        rows = np.flatnonzero(np.arange(n) % frames < perceptual_frames)
        pick = lambda x: x[rows]
        terms["per"] = perceptual_loss(pick(targets.image), pick(rendered.image),
                                       pick(targets.landmarks), embed_fn)
    elif "per" not in terms:  # No recognition network: the term is 0 (logged once).
        terms["per"] = perceptual_loss(targets.image, rendered.image, targets.landmarks, None)
    terms["idc"] = identity_consistency_loss(
        coeffs.identity.reshape((n // frames, frames) + coeffs.identity.shape[1:]))
    return terms, rendered


def forward_losses(params, batch_stats, apply_fn, batch: Mapping[str, jnp.ndarray],
                   face_model: FaceModel, camera: Camera, weights: Mapping[str, jnp.ndarray],
                   render_fn: Optional[Callable], embed_fn: Optional[EmbedFn],
                   train: bool = True, perceptual_frames: int = 0,
                   distill_translation_cm: float = TRANSLATION_SCALE_CM):
    """Losses of one batch of B clips x T frames.

    Args:
      batch: image [B, T, H, W, 3] in [0, 1], skin_mask [B, T, H, W], landmarks [B, T, 68, 2]
        pixels, front_flag [B, T] bool; optionally the TEACHER_KEYS (`data.pipeline`), which
        add the distillation terms.
      weights: loss weights by term name (defaults: TRAINING_WEIGHTS).
      perceptual_frames: see `training_terms`.
      distill_translation_cm: the translation unit of distill_pose (`distillation_terms`).
    Returns:
      (total, (terms dict, new batch_stats, coefficients [N], FaceRender over the input)).
    """
    frames = batch["image"].shape[1]
    images = fold_frames(batch["image"])
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
        coeffs, mutated = apply_fn(variables, images, train=True, mutable=["batch_stats"])
        new_stats = mutated["batch_stats"]
    else:
        coeffs, new_stats = apply_fn(variables, images, train=False), batch_stats
    targets = Targets(image=images, skin_mask=fold_frames(batch["skin_mask"]),
                      landmarks=fold_frames(batch["landmarks"]),
                      front_flag=fold_frames(batch["front_flag"]))
    terms, rendered = training_terms(face_model, coeffs, camera, targets, frames, render_fn,
                                     embed_fn, perceptual_frames)
    if TEACHER_KEYS[0] in batch:
        terms.update(distillation_terms(
            coeffs, *(fold_frames(batch[k]) for k in TEACHER_KEYS),
            translation_scale_cm=distill_translation_cm))
    total, terms = combine_losses(terms, weights, TRAINING_WEIGHTS)
    return total, (terms, new_stats, coeffs, rendered)


def make_train_step(camera: Camera, loss_weights: Mapping[str, float], total_steps: int,
                    exp_start_fraction: float, render_fn: Optional[Callable],
                    embed_fn: Optional[EmbedFn] = None, perceptual_frames: int = 0,
                    distill_fade: tuple = (1.0, 1.0),
                    distill_translation_cm: float = TRANSLATION_SCALE_CM) -> Callable:
    """Builds `train_step(state, batch, face_model) -> (state, metrics)` (pure; jit it).

    The L_exp weight follows the schedule (0 before exp_start_fraction of total_steps); the
    distillation weights follow `losses.distillation.distill_weight` with `distill_fade` =
    (fade_start_fraction, final_fraction); `perceptual_frames`: see `training_terms`.
    """
    static_weights = dict(loss_weights)

    def train_step(state: TrainState, batch: Dict[str, jnp.ndarray], face_model: FaceModel):
        weights = dict(static_weights)
        weights["exp"] = exp_loss_weight(state.step, total_steps, exp_start_fraction,
                                         static_weights.get("exp", TRAINING_WEIGHTS["exp"]))
        for name in DISTILL_TERMS:
            if name in static_weights:
                weights[name] = distill_weight(state.step, total_steps, static_weights[name],
                                               *distill_fade)

        def loss_fn(params):
            return forward_losses(params, state.batch_stats, state.apply_fn, batch, face_model,
                                  camera, weights, render_fn, embed_fn,
                                  perceptual_frames=perceptual_frames,
                                  distill_translation_cm=distill_translation_cm)

        (total, (terms, new_stats, _, _)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state.params)
        new_state = state.apply_gradients(grads, new_stats)
        metrics = {f"loss/{name}": value for name, value in terms.items()}
        metrics.update({
            "train/grad_norm": optax.global_norm(grads),
            "train/param_norm": optax.global_norm(state.params),
            "train/learning_rate": current_learning_rate(state.opt_state),
            "train/lambda_exp": weights["exp"],
        })
        if "distill_exp" in weights:
            metrics["train/lambda_distill_exp"] = weights["distill_exp"]
        return new_state, metrics

    return train_step


def non_finite_terms(metrics: Mapping[str, float]) -> Dict[str, float]:
    """The metrics that are NaN or infinite (host side)."""
    return {k: float(v) for k, v in metrics.items() if not jnp.isfinite(v)}
