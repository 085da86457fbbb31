"""Checkpoints through orbax's CheckpointManager: periodic saves and automatic resume."""
from __future__ import annotations

import logging
import os
from typing import Optional

import jax
import orbax.checkpoint as ocp

from cpem_jax.train.state import TrainState


def make_manager(workdir: str, save_every: int, keep: int) -> ocp.CheckpointManager:
    """A manager for `workdir/checkpoints` that saves every `save_every` steps, keeps `keep`."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=save_every,
                                           create=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                 options=options)


def _saveable(state: TrainState) -> dict:
    return {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
            "opt_state": state.opt_state}


def save(manager: ocp.CheckpointManager, state: TrainState, force: bool = False,
         step: Optional[int] = None) -> bool:
    """Saves at the state's step when the interval says so (or `force`); True if it saved.

    Args:
      step: the state's step when the caller knows it on the host; passing it spares a
        device-to-host wait for `state.step` (the training loop passes it).
    """
    if step is None:
        step = int(jax.device_get(state.step))
    if step in manager.all_steps():
        return False  # Already saved (e.g. the interval hit the last step).
    return manager.save(step, args=ocp.args.StandardSave(_saveable(state)), force=force)


def restore_latest(manager: ocp.CheckpointManager, state: TrainState) -> Optional[TrainState]:
    """The latest saved state, shaped and sharded like `state`, or None when there is none.

    `state` may be concrete or abstract (jax.ShapeDtypeStruct leaves with shardings, from
    `state.abstract_state`): the arrays are read straight into those shardings.
    """
    step = manager.latest_step()
    if step is None:
        return None
    target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _saveable(state))
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
    logging.info("restored the checkpoint of step %d", step)
    return state.replace(**restored)
