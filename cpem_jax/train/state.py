"""The training state: a pytree of arrays plus the static optimiser and network.

Creation follows the shape-first pattern: `abstract_state` traces the initialiser with
`jax.eval_shape` (no computation) and gives every leaf its sharding; `initial_state` then runs the
initialiser once under `jax.jit` with those `out_shardings`, so the arrays are born placed on the
mesh, and a resumed run restores into the abstract state without initialising at all.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Sharding

from cpem_jax.networks.pe_net import PENet, init_pe_net


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


def state_initializer(net: PENet, tx: optax.GradientTransformation, image_size: int
                      ) -> Callable[[jax.Array], TrainState]:
    """`init(rng) -> TrainState`: PE-Net variables for [1, image_size, image_size, 3] inputs and
    the optimiser state of its params (pure; trace it with eval_shape or jit it)."""
    def init(rng: jax.Array) -> TrainState:
        return TrainState.create(net.apply, init_pe_net(net, rng, image_size), tx)
    return init


def abstract_state(init: Callable[[jax.Array], TrainState], rng: jax.Array,
                   sharding: Sharding) -> TrainState:
    """The state `init(rng)` would return, as jax.ShapeDtypeStruct leaves placed with `sharding`
    (e.g. replicated over the data mesh); nothing is computed."""
    shapes = jax.eval_shape(init, rng)
    return jax.tree_util.tree_map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding), shapes)


def state_shardings(abstract: TrainState) -> TrainState:
    """The sharding of every leaf of an abstract state (a pytree prefix for out_shardings)."""
    return jax.tree_util.tree_map(lambda leaf: leaf.sharding, abstract)


def initial_state(init: Callable[[jax.Array], TrainState], rng: jax.Array,
                  abstract: TrainState,
                  replace_variables: Optional[Callable[[Mapping], Mapping]] = None
                  ) -> TrainState:
    """Runs `init(rng)` under jit with the shardings of `abstract` as out_shardings.

    Args:
      replace_variables: optional host-side edit of the fresh variables {'params',
        'batch_stats'} (e.g. loading a pretrained backbone); the edited variables are placed with
        the same shardings and the optimiser state is initialised from them.
    """
    shardings = state_shardings(abstract)
    state = jax.jit(init, out_shardings=shardings)(rng)
    if replace_variables is None:
        return state
    variables = replace_variables(jax.device_get(
        {"params": state.params, "batch_stats": state.batch_stats}))
    create = lambda v: TrainState.create(state.apply_fn, v, state.tx)
    return jax.jit(create, out_shardings=shardings)(variables)
