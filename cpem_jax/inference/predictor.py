"""A trained PE-Net, restored from a training workdir, as a frame-by-frame predictor.

    predictor = NetPredictor.from_workdir("runs/cpu")
    coeffs = predictor(crops)            # crops [N, S, S, 3] uint8 or float in [0, 1]

The workdir holds `config.json` (written by training) and `checkpoints/` (orbax); the latest
checkpoint is used. The face model comes from the config's `face_model` (or --face-model).
"""
from __future__ import annotations

import json
import os
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cpem_jax.face_model import load_face_model
from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.train import checkpoint
from cpem_jax.train.loop import make_camera, make_network
from cpem_jax.train.state import TrainState, make_optimizer
from cpem_jax.networks.pe_net import init_pe_net


class CheckpointError(FileNotFoundError):
    """A workdir without a usable trained network."""


class NetPredictor:
    """Restored network + the face model and camera it was trained with."""

    def __init__(self, config: ml_collections.ConfigDict, model: FaceModel, state: TrainState):
        self.config = config
        self.model = model
        self.camera = make_camera(config)
        self.image_size = int(config.model.image_size)
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        apply = state.apply_fn
        self._predict = jax.jit(lambda images: apply(variables, images, train=False))
        self.step = int(jax.device_get(state.step))

    @classmethod
    def from_workdir(cls, workdir: str, face_model: Optional[str] = None) -> "NetPredictor":
        config_path = os.path.join(workdir, "config.json")
        if not os.path.isfile(config_path):
            raise CheckpointError(f"{workdir!r} has no config.json: pass the --workdir of a "
                                  f"training run (python -m cpem_jax.main ... --workdir=DIR)")
        with open(config_path) as f:
            config = ml_collections.ConfigDict(json.load(f))
        model = load_face_model(face_model or config.face_model or None)
        net = make_network(config, model)
        variables = init_pe_net(net, jax.random.PRNGKey(0), int(config.model.image_size))
        state = TrainState.create(net.apply, variables, make_optimizer(
            config.optim.learning_rate, config.optim.grad_clip_norm))
        manager = checkpoint.make_manager(workdir, 1, 1)
        restored = checkpoint.restore_latest(manager, state)
        if restored is None:
            raise CheckpointError(f"no checkpoint under {os.path.join(workdir, 'checkpoints')!r};"
                                  f" train first or pass another --checkpoint")
        return cls(config, model, restored)

    def __call__(self, crops: np.ndarray) -> Coefficients:
        """crops [N, S, S, 3] uint8 or float in [0, 1], S = the training image size."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"crops must be [N, {self.image_size}, {self.image_size}, 3], got "
                             f"{crops.shape}")
        images = crops.astype(np.float32) / (255.0 if crops.dtype == np.uint8 else 1.0)
        return jax.device_get(self._predict(jnp.asarray(images)))
