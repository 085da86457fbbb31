"""The training loop end to end on a tiny network: run, resume, NaN stop, data-root errors.

Data: synthetic clips of the fabricated face model (conftest's fake ICT), 32x32, written once per
module; the network is a ResNet-18 at 1/8 width; the perceptual term is off.
"""
import json
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE, CLIPS, FRAMES = 32, 2, 2


@pytest.fixture(scope="module")
def fake_model_npz(fake_model, tmp_path_factory):
    """The fabricated face model as a converted .npz (what config.face_model accepts)."""
    from cpem_jax.face_model import cache
    return cache.save_model(fake_model, str(tmp_path_factory.mktemp("model") / "fake.npz"))


@pytest.fixture(scope="module")
def synthetic_root(fake_model, tmp_path_factory):
    """Four synthetic clips of three 32x32 frames in the CPEM layout."""
    from cpem_jax.synthetic.generator import SynthConfig, generate_split
    root = tmp_path_factory.mktemp("synthetic") / "train"
    generate_split(fake_model, str(root), SynthConfig(n_clips=4, n_frames=3, image_size=SIZE,
                                                      split="train"), progress=False)
    return str(root)


def tiny_config(data_root: str, face_model: str, total_steps: int):
    sys.path.insert(0, REPO)
    from configs import default
    c = default.get_config()
    c.face_model = face_model
    c.model.backbone, c.model.width_scale, c.model.image_size = "resnet18", 0.125, SIZE
    c.data.root, c.data.batch_clips, c.data.frames = data_root, CLIPS, FRAMES
    c.data.workers, c.data.augment = 0, False
    c.loss.perceptual_network = "none"
    c.total_steps = total_steps
    c.log_every, c.eval_every, c.eval_batches = 2, 3, 1
    c.image_every, c.checkpoint_every, c.checkpoints_to_keep = 100, 2, 5
    return c


def read_history(workdir) -> list:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_three_steps_then_resume_continues_the_step(synthetic_root, fake_model_npz, tmp_path,
                                                    caplog):
    from cpem_jax.train.loop import train_and_evaluate
    workdir = str(tmp_path / "run")
    state = train_and_evaluate(tiny_config(synthetic_root, fake_model_npz, 3), workdir)
    assert int(state.step) == 3
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
    history = read_history(workdir)
    train_steps = [h["step"] for h in history if "loss/total" in h]
    assert train_steps == [2, 3]  # log_every=2 and the last step.
    assert [h["step"] for h in history if "eval/total" in h] == [0, 3]
    first = next(h for h in history if h["step"] == 2 and "loss/total" in h)
    assert first["train/steps_per_second"] > 0
    assert np.isclose(first["train/clips_per_second"], CLIPS * first["train/steps_per_second"])
    params_at_3 = jax.device_get(state.params)

    caplog.set_level(logging.INFO)
    state = train_and_evaluate(tiny_config(synthetic_root, fake_model_npz, 5), workdir)
    assert "resuming training at step 3 of 5" in caplog.text
    assert int(state.step) == 5
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3", "4", "5"]
    history = read_history(workdir)
    assert [h["step"] for h in history if "loss/total" in h] == [2, 3, 4, 5]
    assert [h["step"] for h in history if "eval/total" in h] == [0, 3, 5]
    # The optimiser state came back with the parameters: Adam's count went on from 3.
    counts = [int(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state)
              if "count" in jax.tree_util.keystr(path)]
    assert counts and all(c == 5 for c in counts), counts
    moved = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                                   state.params, params_at_3)
    assert max(jax.tree_util.tree_leaves(moved)) > 0


def test_injected_nan_stops_the_run_naming_step_and_term(synthetic_root, fake_model_npz,
                                                         tmp_path, monkeypatch):
    from cpem_jax.train import loop
    from cpem_jax.train.errors import NonFiniteLossError
    real = loop.make_train_step

    def poisoned(*args, **kwargs):
        step = real(*args, **kwargs)

        def train_step(state, batch, face_model):
            new_state, metrics = step(state, batch, face_model)
            metrics = dict(metrics)  # L_lm is NaN in the third step (state.step 2 -> 3).
            metrics["loss/lm"] = jnp.where(state.step == 2, jnp.nan, metrics["loss/lm"])
            return new_state, metrics
        return train_step

    monkeypatch.setattr(loop, "make_train_step", poisoned)
    workdir = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as err:
        loop.train_and_evaluate(tiny_config(synthetic_root, fake_model_npz, 4), str(workdir))
    message = str(err.value)
    assert message.startswith("step 3: non-finite loss/lm=nan"), message
    assert "loss/pho" not in message  # Only the bad term is named.
    assert "['train/" in message  # The clips of that step ("source/person/video").
    # Checked before the step-4 save: the only checkpoint is the healthy one of step 2.
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2"]
    assert [h["step"] for h in read_history(workdir) if "loss/total" in h] == [2]


@pytest.mark.parametrize("root", ["", "missing", "empty", "no_frames"])
def test_missing_or_empty_data_root_writes_nothing(root, fake_model_npz, tmp_path):
    from cpem_jax.train.errors import TrainingDataError
    from cpem_jax.train.loop import train_and_evaluate
    if root:
        path = tmp_path / root
        if root == "empty":
            path.mkdir()
        if root == "no_frames":  # A source folder whose data/ holds no frame.
            (path / "data" / "person" / "video").mkdir(parents=True)
        root = str(path)
    workdir = tmp_path / "run"
    with pytest.raises(TrainingDataError, match=r"--config\.data\.root") as err:
        train_and_evaluate(tiny_config(root, fake_model_npz, 3), str(workdir))
    assert "\n" not in str(err.value)
    assert not workdir.exists()


def test_main_prints_one_line_and_exits_2_without_data(tmp_path):
    workdir = tmp_path / "run"
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "cpem_jax.main", f"--config={REPO}/configs/cpu.py",
         f"--workdir={workdir}", f"--config.data.root={empty}"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("cpem_jax.main: error: ")]
    assert errors == lines[-1:], out.stderr[-2000:]
    assert "--config.data.root" in errors[0] and str(empty) in errors[0]
    assert not workdir.exists()


def test_metric_window_means_throughput_and_first_bad_step():
    from cpem_jax.train.actions import MetricWindow, is_due
    from cpem_jax.train.errors import NonFiniteLossError

    class Sink:
        logged = []

        def scalars(self, step, values):
            self.logged.append((step, dict(values)))

    times = iter([10.0, 14.0, 20.0])
    window = MetricWindow(Sink(), batch_clips=4, start_step=6, clock=lambda: next(times))
    for step, value in ((7, 1.0), (8, 3.0)):
        window.record(step, {"loss/lm": jnp.float32(value)}, [f"clip{step}"])
    values = window.flush(8)
    assert values["loss/lm"] == 2.0
    assert values["train/steps_per_second"] == 0.5  # 2 steps in 4 s.
    assert values["train/clips_per_second"] == 2.0
    assert Sink.logged == [(8, values)]
    assert window.flush(9) == {}
    for step, value in ((9, 1.0), (10, np.inf), (11, np.nan)):
        window.record(step, {"loss/lm": jnp.float32(value), "loss/pho": jnp.float32(1.0)},
                      [f"clip{step}"])
    with pytest.raises(NonFiniteLossError, match=r"^step 10: non-finite loss/lm=inf;.*clip10"):
        window.flush(11)
    assert [is_due(s, 5, 12) for s in (4, 5, 10, 11, 12)] == [False, True, True, False, True]
    assert not is_due(3, 0) and is_due(3, 0, 3)


def test_sharded_init_matches_its_abstract_state(fake_model):
    from cpem_jax.networks.pe_net import PENet
    from cpem_jax.train import sharding
    from cpem_jax.train.state import (abstract_state, initial_state, make_optimizer,
                                      state_initializer)
    net = PENet(layout=fake_model.layout(), backbone="resnet18", width_scale=0.125)
    init = state_initializer(net, make_optimizer(1e-3), SIZE)
    mesh = sharding.data_mesh()
    abstract = abstract_state(init, jax.random.PRNGKey(0), sharding.replicated(mesh))
    assert all(isinstance(x, jax.ShapeDtypeStruct)
               for x in jax.tree_util.tree_leaves(abstract))
    state = initial_state(init, jax.random.PRNGKey(0), abstract)
    assert (jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(abstract))
    for a, x in zip(jax.tree_util.tree_leaves(abstract), jax.tree_util.tree_leaves(state)):
        assert (a.shape, a.dtype) == (x.shape, x.dtype)
        assert x.sharding.is_equivalent_to(sharding.replicated(mesh), x.ndim)
    # A host edit of the variables (as a pretrained backbone load does) lands in the state.
    edited = initial_state(init, jax.random.PRNGKey(0), abstract, replace_variables=lambda v: {
        "params": jax.tree_util.tree_map(np.zeros_like, v["params"]),
        "batch_stats": v["batch_stats"]})
    assert all(float(np.abs(x).max()) == 0 for x in jax.tree_util.tree_leaves(edited.params))
    assert int(edited.step) == 0
