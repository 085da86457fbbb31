"""Training: one sharded train step on 2 fake CPU devices, checkpoint round trip, configs."""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a subprocess: the fake device count must be set before JAX starts.
TWO_DEVICE_STEP = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
    import jax, jax.numpy as jnp, numpy as np
    from cpem_jax.face_model import ict
    from cpem_jax.geometry.camera import default_camera
    from cpem_jax.networks.pe_net import PENet, init_pe_net
    from cpem_jax.render.face_renderer import render_face
    from cpem_jax.train import sharding
    from cpem_jax.train.state import TrainState, make_optimizer
    from cpem_jax.train.step import make_train_step
    assert len(jax.devices()) == 2, jax.devices()
    model = ict.load_ict({fake_ict!r}, progress=False, n_albedo_modes=2)
    size, clips, frames = 32, 2, 2
    net = PENet(layout=model.layout(), backbone="resnet18", width_scale=0.125)
    state = TrainState.create(net.apply, init_pe_net(net, jax.random.PRNGKey(0), size),
                              make_optimizer(1e-3))
    rng = np.random.default_rng(0)
    batch = {{"image": rng.uniform(0, 1, (clips, frames, size, size, 3)).astype(np.float32),
             "skin_mask": np.ones((clips, frames, size, size), np.float32),
             "landmarks": rng.uniform(8, 24, (clips, frames, 68, 2)).astype(np.float32),
             "front_flag": np.ones((clips, frames), bool)}}
    mesh = sharding.data_mesh()
    sharded = sharding.shard_batch(batch, mesh)
    assert sharded["image"].sharding.spec[0] == "data"
    weights = {{"pho": 1.9, "per": 0.0, "lm": 80.0, "reg": 1e-4, "sp": 0.1, "idc": 1000.0,
               "exp": 10.0}}
    step = make_train_step(default_camera(size), weights, 10, 0.5, render_face)
    traces = []
    def counted(*a):
        traces.append(1)
        return step(*a)
    jitted = jax.jit(counted, donate_argnums=(0,))
    state = jax.device_put(state, sharding.replicated(mesh))
    before = jax.device_get(state.params)
    state, metrics = jitted(state, sharded, model)
    state, metrics = jitted(state, sharded, model)
    metrics = jax.device_get(metrics)
    assert len(traces) == 1, "the train step was traced again"
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert int(state.step) == 2
    after = jax.device_get(state.params)
    changed = jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()), before, after)
    assert max(jax.tree_util.tree_leaves(changed)) > 0
    print("OK", {{k: round(float(v), 5) for k, v in metrics.items()}})
""")


def test_one_train_step_on_two_fake_cpu_devices(fake_ict_dir):
    script = TWO_DEVICE_STEP.format(repo=REPO, tests=os.path.join(REPO, "tests"),
                                    fake_ict=str(fake_ict_dir))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_checkpoint_save_restore_round_trip(tmp_path, fake_model):
    from cpem_jax.networks.pe_net import PENet, init_pe_net
    from cpem_jax.train import checkpoint
    from cpem_jax.train.state import TrainState, make_optimizer
    net = PENet(layout=fake_model.layout(), backbone="resnet18", width_scale=0.125)
    state = TrainState.create(net.apply, init_pe_net(net, jax.random.PRNGKey(1), 32),
                              make_optimizer(1e-3))
    grads = jax.tree_util.tree_map(jnp.ones_like, state.params)
    state = state.apply_gradients(grads, state.batch_stats)
    manager = checkpoint.make_manager(str(tmp_path), save_every=1, keep=2)
    assert checkpoint.save(manager, state, force=True)
    manager.wait_until_finished()
    fresh = TrainState.create(net.apply, init_pe_net(net, jax.random.PRNGKey(2), 32),
                              make_optimizer(1e-3))
    restored = checkpoint.restore_latest(
        checkpoint.make_manager(str(tmp_path), save_every=1, keep=2), fresh)
    assert int(restored.step) == 1
    for a, b in zip(jax.tree_util.tree_leaves(state.params),
                    jax.tree_util.tree_leaves(restored.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree_util.tree_leaves(state.opt_state),
                    jax.tree_util.tree_leaves(restored.opt_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # No checkpoint: nothing to resume.
    empty = checkpoint.make_manager(str(tmp_path / "empty"), save_every=1, keep=1)
    assert checkpoint.restore_latest(empty, fresh) is None


@pytest.mark.parametrize("name, arg", [("default", None), ("cpu", None), ("ablation", "vanilla"),
                                       ("ablation", "idc"), ("ablation", "both"),
                                       ("ablation", "both-cpu")])
def test_every_config_loads(name, arg):
    sys.path.insert(0, REPO)
    import importlib
    module = importlib.import_module(f"configs.{name}")
    config = module.get_config(arg) if arg else module.get_config()
    assert config.total_steps > 0 and config.data.frames >= 2
    assert set(config.loss.keys()) >= {"pho", "per", "lm", "reg", "sp", "idc", "exp"}
    if arg and arg.startswith("vanilla"):
        assert config.loss.idc == 0 and config.loss.exp == 0
    if arg and arg.startswith("idc"):
        assert config.loss.idc > 0 and config.loss.exp == 0


def test_unknown_ablation_is_a_clear_error():
    sys.path.insert(0, REPO)
    from configs import ablation
    with pytest.raises(ValueError, match="unknown ablation"):
        ablation.get_config("everything")
