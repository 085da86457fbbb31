"""Jitted Adam loops for fitting: the whole iteration loop runs inside one XLA program."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from cpem_jax.fit.params import FrameParams, SharedParams, project_frames


def frame_step_sizes(expression: float = 0.03, rotation: float = 0.01,
                     translation: float = 0.3, lighting: float = 0.02) -> FrameParams:
    """Adam step sizes per group (Adam steps are about this large in each unit)."""
    return FrameParams(expression=jnp.float32(expression), rotation=jnp.float32(rotation),
                       translation=jnp.float32(translation), lighting=jnp.float32(lighting))


def shared_step_sizes(identity: float = 0.05, albedo: float = 0.05) -> SharedParams:
    return SharedParams(identity=jnp.float32(identity), albedo=jnp.float32(albedo))


def _scaled_adam_update(grads, opt_state, params, sizes, tx, factor):
    updates, opt_state = tx.update(grads, opt_state, params)
    updates = jax.tree_util.tree_map(lambda u, s: -u * s * factor, updates, sizes)  # Descent.
    return optax.apply_updates(params, updates), opt_state


def cosine_factor(i, iterations: int, final: float = 0.05):
    """Step-size multiplier: 1 at the first iteration, `final` at the last (cosine)."""
    progress = i / max(iterations - 1, 1)
    return final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def run_adam(loss_fn: Callable, params, sizes, iterations: int, project: Callable = None):
    """Minimises loss_fn(params) by `iterations` Adam steps of per-leaf size `sizes`, the steps
    shrinking along a cosine to 5% so that the last ones settle instead of oscillating.

    Call inside jit (iterations static). `project` maps params back to the feasible set after
    every step. Returns the final params.
    """
    tx = optax.scale_by_adam()
    grad_fn = jax.grad(loss_fn)

    def body(i, carry):
        p, state = carry
        p, state = _scaled_adam_update(grad_fn(p), state, p, sizes, tx,
                                       cosine_factor(i, iterations))
        return (project(p) if project else p), state

    params, _ = jax.lax.fori_loop(0, iterations, body, (params, tx.init(params)))
    return params


def project_joint(params):
    """(shared, frames) -> with frame expressions clipped to [0, 1]."""
    shared, frames = params
    return shared, project_frames(frames)
