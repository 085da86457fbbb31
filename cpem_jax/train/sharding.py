"""Data parallelism over a device mesh: the batch on 'data', the state replicated.

Works unchanged on one CPU, several (fake) CPU devices, GPUs, and several hosts after
`jax.distributed.initialize()` (each host feeds its own slice of the global batch).
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cpem_jax.train.errors import TrainingSetupError

DATA_AXIS = "data"


def data_mesh() -> Mesh:
    """A 1-D mesh over all devices of all hosts."""
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (clip) axis split over 'data'."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_divides(batch_clips: int, mesh: Mesh) -> None:
    """TrainingSetupError unless the global batch splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_clips % n:
        raise TrainingSetupError(f"data.batch_clips={batch_clips} does not divide over {n} "
                                 f"devices; set --config.data.batch_clips to a multiple of {n}")


def shard_batch(batch, mesh: Mesh):
    """Host numpy batch (this host's part) -> global arrays sharded on 'data'."""
    sharding = batch_sharded(mesh)
    if jax.process_count() == 1:
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), batch)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, x), batch)
