"""The network estimator: a training workdir's parameters restored (no optimiser), predictions."""
import json
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import cpu  # noqa: E402  (configs/ lives beside the package)

SIZE = 32


def _trained_workdir(tmp_path, fake_model):
    """A workdir as training leaves it: config.json and an orbax checkpoint of step 1."""
    from cpem_jax.face_model import cache
    from cpem_jax.networks.pe_net import init_pe_net, pe_net_from_config
    from cpem_jax.train import checkpoint
    from cpem_jax.train.state import TrainState, make_optimizer
    model_path = str(tmp_path / "model.npz")
    cache.save_model(fake_model, model_path)
    config = cpu.get_config()
    config.model.width_scale, config.model.image_size = 0.125, SIZE
    config.face_model = model_path
    net = pe_net_from_config(config.model, fake_model.layout())
    state = TrainState.create(net.apply, init_pe_net(net, jax.random.PRNGKey(1), SIZE),
                              make_optimizer(1e-3))
    grads = jax.tree_util.tree_map(jnp.ones_like, state.params)
    state = state.apply_gradients(grads, state.batch_stats)
    workdir = tmp_path / "run"
    manager = checkpoint.make_manager(str(workdir), save_every=1, keep=1)
    checkpoint.save(manager, state, force=True)
    manager.wait_until_finished()
    (workdir / "config.json").write_text(config.to_json_best_effort())
    return workdir, net, state


def test_predictor_restores_the_trained_parameters_only(tmp_path, fake_model):
    from cpem_jax.estimation.network import NetPredictor
    workdir, net, state = _trained_workdir(tmp_path, fake_model)
    predictor = NetPredictor.from_workdir(str(workdir))
    assert predictor.step == 1 and predictor.image_size == SIZE
    assert predictor.model.expression_names == fake_model.expression_names
    crops = np.random.default_rng(0).integers(0, 255, (3, SIZE, SIZE, 3), dtype=np.uint8)
    expected = net.apply({"params": state.params, "batch_stats": state.batch_stats},
                         jnp.asarray(crops, jnp.float32) / 255.0, train=False)
    got = predictor(crops)
    for a, b in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(got)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert float(predictor.camera.focal) == pytest.approx(1015.0 / 224.0 * SIZE)
    with pytest.raises(ValueError, match=r"crops must be \[N, 32, 32, 3\]"):
        predictor(crops[:, :16])


def test_predictor_errors_name_the_fix(tmp_path, fake_model):
    from cpem_jax.estimation.network import CheckpointError, NetPredictor
    with pytest.raises(CheckpointError, match="no config.json"):
        NetPredictor.from_workdir(str(tmp_path))
    workdir, _, _ = _trained_workdir(tmp_path, fake_model)
    for step_dir in (workdir / "checkpoints").iterdir():
        if step_dir.is_dir():
            shutil.rmtree(step_dir)
    with pytest.raises(CheckpointError, match="no checkpoint under"):
        NetPredictor.from_workdir(str(workdir))
    assert json.loads((workdir / "config.json").read_text())["model"]["image_size"] == SIZE
