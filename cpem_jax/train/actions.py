"""The training loop's periodic actions: metric windows, evaluation and image overlays.

The loop dispatches one jitted step after the other without waiting for the device; only these
actions read values back to the host. `MetricWindow` holds each step's metrics (device arrays)
and reads the whole window back in one transfer every `log_every` steps: that is where a
non-finite loss stops the run (`NonFiniteLossError` names the first bad step of the window, its
terms and its clips).
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from cpem_jax.networks.pe_net import fold_frames
from cpem_jax.train import sharding
from cpem_jax.train.errors import NonFiniteLossError
from cpem_jax.train.metrics import MetricWriter
from cpem_jax.viz.overlay import overlay_strip
from cpem_jax.train.step import non_finite_terms

# eval_fn(state, batch, face_model) -> (total, (terms, batch_stats, coefficients, rendered)),
# i.e. `step.forward_losses` in inference mode, jitted.
EvalFn = Callable


def is_due(step: int, every: int, last_step: Optional[int] = None) -> bool:
    """True when `step` (steps done, counted from 1) is a multiple of `every` (> 0) or equals
    `last_step`."""
    return (every > 0 and step % every == 0) or (last_step is not None and step == last_step)


class ScalarSink:
    """Scalars to TensorBoard and one JSON line per call to WORKDIR/metrics.jsonl; images to
    TensorBoard. Only the chief process writes (the others hold a disabled sink)."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self._writer = MetricWriter(os.path.join(workdir, "tensorboard"), enabled=enabled)
        self._history = os.path.join(workdir, "metrics.jsonl")

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        self._writer.scalars(step, values)
        with open(self._history, "a") as f:
            f.write(json.dumps({"step": step, **{k: float(v) for k, v in values.items()}}) + "\n")

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        """image [H, W, 3] uint8."""
        if self.enabled:
            self._writer.image(step, name, image)

    def close(self) -> None:
        self._writer.close()


class MetricWindow:
    """The train metrics of the steps since the last flush, kept on the device until `flush`.

    Args:
      sink: where the window means go.
      batch_clips: global clips per step (for clips/s).
      start_step: the step the window starts after (0, or the resumed step).
      clock: seconds (injectable for tests).
    """

    def __init__(self, sink: ScalarSink, batch_clips: int, start_step: int,
                 clock: Callable[[], float] = time.perf_counter):
        self._sink = sink
        self._batch_clips = batch_clips
        self._clock = clock
        self._pending: List[Tuple[int, Mapping[str, jax.Array], Sequence[str]]] = []
        self._last_step = start_step
        self._last_time = clock()

    def restart_clock(self) -> None:
        """Starts the throughput clock now (e.g. after the first evaluation)."""
        self._last_time = self._clock()

    def record(self, step: int, metrics: Mapping[str, jax.Array],
               clip_keys: Sequence[str] = ()) -> None:
        """Keeps one step's metrics ({name: [] device scalar}) and its clip keys; no transfer."""
        self._pending.append((step, metrics, tuple(str(k) for k in clip_keys)))

    def flush(self, step: int) -> Dict[str, float]:
        """Reads the window back (one device-to-host transfer, which waits for its steps), stops on
        a non-finite value, and logs at `step` the mean of every metric over the window plus
        train/steps_per_second and train/clips_per_second (wall time since the last flush).

        Returns:
          The logged values ({} when no step was recorded since the last flush).
        Raises:
          NonFiniteLossError naming the first step of the window with a NaN or infinite metric.
        """
        if not self._pending:
            return {}
        steps = [s for s, _, _ in self._pending]
        host = jax.device_get([m for _, m, _ in self._pending])
        now = self._clock()
        clip_keys = [k for _, _, k in self._pending]
        self._pending = []
        names = sorted(host[0])
        table = np.asarray([[float(h[k]) for k in names] for h in host], np.float64)
        finite = np.isfinite(table).all(axis=1)
        if not finite.all():
            first = int(np.argmin(finite))
            bad = non_finite_terms(host[first])
            raise NonFiniteLossError(
                f"step {steps[first]}: non-finite "
                f"{', '.join(f'{k}={v}' for k, v in bad.items())}; the last checkpoint is "
                f"intact; lower --config.optim.learning_rate or check the data of clips "
                f"{list(clip_keys[first])}")
        values = dict(zip(names, table.mean(axis=0).tolist()))
        elapsed = max(now - self._last_time, 1e-9)
        done = step - self._last_step
        values["train/steps_per_second"] = done / elapsed
        values["train/clips_per_second"] = done * self._batch_clips / elapsed
        self._last_step, self._last_time = step, now
        self._sink.scalars(step, values)
        return values


def evaluate(eval_fn: EvalFn, state, batches: Sequence[Mapping[str, np.ndarray]], face_model,
             mesh) -> Dict[str, float]:
    """Mean of every loss term over the fixed evaluation batches (inference mode).

    Returns:
      {"eval/<term>": mean} (the terms of `forward_losses`, "total" included).
    """
    terms = [eval_fn(state, sharding.shard_batch(batch, mesh), face_model)[1][0]
             for batch in batches]
    host = jax.device_get(terms)  # One wait for all batches.
    return {f"eval/{k}": float(np.mean([t[k] for t in host])) for k in host[0]}


def _global(x: jax.Array) -> np.ndarray:
    """The whole array on every host (a plain copy on one host)."""
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def log_overlays(sink: ScalarSink, step: int, eval_fn: EvalFn, state, batch, face_model) -> None:
    """Renders `batch` (device arrays, image [B, T, S, S, 3]) with `state` and logs the strip
    input | render over input | landmarks (target green, predicted red) of its first frames.

    Every process runs the render (it is one computation over the mesh); the chief writes.
    """
    _, (_, _, _, rendered) = eval_fn(state, batch, face_model)
    strip = overlay_strip(_global(fold_frames(batch["image"])), _global(rendered.image),
                          _global(fold_frames(batch["landmarks"])), _global(rendered.landmarks))
    sink.image(step, "overlay/input_render_landmarks", strip)

