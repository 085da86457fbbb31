"""The training state: a pytree of arrays plus the static optimiser and network."""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything a train step reads and writes.

    Attributes:
      step: [] int32 number of steps taken.
      params: network parameters.
      batch_stats: BatchNorm running statistics.
      opt_state: optax state.
      apply_fn, tx: the network's apply and the optimiser (static).
    """
    step: jnp.ndarray
    params: Any
    batch_stats: Any
    opt_state: Any
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, apply_fn, variables, tx) -> "TrainState":
        params = variables["params"]
        return cls(step=jnp.zeros((), jnp.int32), params=params,
                   batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
                   apply_fn=apply_fn, tx=tx)

    def apply_gradients(self, grads, batch_stats) -> "TrainState":
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)


def make_optimizer(learning_rate: float, grad_clip_norm: float = 0.0
                   ) -> optax.GradientTransformation:
    """Adam (the paper's), optionally after global-norm clipping; learning rate is logged."""
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
    if grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(grad_clip_norm), adam)
    return adam


def current_learning_rate(opt_state) -> jnp.ndarray:
    """The learning rate inside an `inject_hyperparams` state (possibly chained)."""
    for leaf_state in jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda s: hasattr(s, "hyperparams")):
        if hasattr(leaf_state, "hyperparams"):
            return leaf_state.hyperparams["learning_rate"]
    raise ValueError("optimizer state has no injected learning rate")
