"""The pure train step: network -> coefficients -> render -> every CPEM loss -> Adam update."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from cpem_jax.face_model.model import FaceModel
from cpem_jax.geometry.camera import Camera
from cpem_jax.losses import cpem_losses, exp_loss_weight
from cpem_jax.losses.perceptual import EmbedFn
from cpem_jax.networks.pe_net import fold_frames
from cpem_jax.train.state import TrainState, current_learning_rate

# Batch keys that go to the device (identifiers stay on the host).
ARRAY_KEYS = ("image", "skin_mask", "landmarks", "front_flag")


def composite(render: jnp.ndarray, mask: jnp.ndarray, image: jnp.ndarray) -> jnp.ndarray:
    """render [N, H, W, 3] over image [N, H, W, 3] where mask [N, H, W] (soft) covers it."""
    return render * mask[..., None] + image * (1.0 - mask[..., None])


def forward_losses(params, batch_stats, apply_fn, batch: Mapping[str, jnp.ndarray],
                   face_model: FaceModel, camera: Camera, weights: Mapping[str, jnp.ndarray],
                   render_fn: Callable, embed_fn: Optional[EmbedFn], train: bool = True):
    """Losses of one batch of B clips x T frames.

    Args:
      batch: image [B, T, H, W, 3] in [0, 1], skin_mask [B, T, H, W], landmarks [B, T, 68, 2]
        pixels, front_flag [B, T] bool.
    Returns:
      (total, (terms dict, new batch_stats, coefficients [N], render output)).
    """
    frames = batch["image"].shape[1]
    images = fold_frames(batch["image"])
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
        coeffs, mutated = apply_fn(variables, images, train=True, mutable=["batch_stats"])
        new_stats = mutated["batch_stats"]
    else:
        coeffs, new_stats = apply_fn(variables, images, train=False), batch_stats
    rendered = render_fn(face_model, coeffs, camera)
    total, terms = cpem_losses(
        image=images, render=composite(rendered.image, rendered.mask, images),
        render_mask=rendered.mask, skin_mask=fold_frames(batch["skin_mask"]),
        landmarks_predicted=rendered.landmarks, landmarks_target=fold_frames(batch["landmarks"]),
        front_face_flag=fold_frames(batch["front_flag"]), coeffs=coeffs,
        contradictory_pairs=face_model.contradictory_pairs, frames=frames, weights=weights,
        embed_fn=embed_fn, image_size=float(images.shape[1]))
    return total, (terms, new_stats, coeffs, rendered)


def make_train_step(camera: Camera, loss_weights: Mapping[str, float], total_steps: int,
                    exp_start_fraction: float, render_fn: Callable,
                    embed_fn: Optional[EmbedFn] = None) -> Callable:
    """Builds `train_step(state, batch, face_model) -> (state, metrics)` (pure; jit it).

    The L_exp weight follows the schedule (0 before exp_start_fraction of total_steps).
    """
    static_weights = dict(loss_weights)

    def train_step(state: TrainState, batch: Dict[str, jnp.ndarray], face_model: FaceModel):
        weights = dict(static_weights)
        weights["exp"] = exp_loss_weight(state.step, total_steps, exp_start_fraction,
                                         static_weights.get("exp", 0.0))

        def loss_fn(params):
            return forward_losses(params, state.batch_stats, state.apply_fn, batch, face_model,
                                  camera, weights, render_fn, embed_fn)

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
        return new_state, metrics

    return train_step


def non_finite_terms(metrics: Mapping[str, float]) -> Dict[str, float]:
    """The metrics that are NaN or infinite (host side)."""
    return {k: float(v) for k, v in metrics.items() if not jnp.isfinite(v)}
