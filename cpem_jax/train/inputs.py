"""The training data: checking `config.data.root`, the batch iterator and the fixed eval batches.

`load_index` runs before the loop writes anything to the workdir, so a run without usable data
leaves no trace; its `TrainingDataError` is one line that names the flag to fix.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, Iterator, List, Optional

import jax
import ml_collections
import numpy as np

from cpem_jax.data import cpem_folder, pipeline, sampling
from cpem_jax.data import teacher as teacher_lib
from cpem_jax.train.errors import TrainingDataError
from cpem_jax.train.step import device_keys

ROOT_FLAG = "--config.data.root"
LAYOUT_HINT = (f"a CPEM-layout folder ({cpem_folder.IMAGE_DIR}/, {cpem_folder.MASK_DIR}/, "
               f"{cpem_folder.LANDMARKS_DIR}/, {cpem_folder.LANDMARKS2D_DIR}/, "
               f"{cpem_folder.FLAG_CSV}) or a folder of such sources, "
               f"e.g. ../shared/data/cpem-demo")


def load_index(config: ml_collections.ConfigDict) -> cpem_folder.CpemIndex:
    """Indexes `config.data.root` and checks that it can fill clips of `config.data.frames`.

    Returns:
      The CpemIndex (at least one clip with `config.data.frames` usable frames).
    Raises:
      TrainingDataError (one line naming the fix) when the root is unset, missing, holds no CPEM
      source, no usable frame, or no clip long enough.
    """
    root = str(config.data.root or "").strip()
    if not root:
        raise TrainingDataError(f"no training data: set {ROOT_FLAG} to {LAYOUT_HINT}")
    if not os.path.isdir(root):
        raise TrainingDataError(f"{ROOT_FLAG}={root!r} is not a folder; point it at "
                                f"{LAYOUT_HINT}")
    held_out = [p for p in str(config.data.get("exclude_people", "") or "").split(",") if p]
    try:
        index = teacher_lib.exclude_people(cpem_folder.build_index(root), held_out)
        sampling.eligible_clips(index.clips, int(config.data.frames))
    except (FileNotFoundError, ValueError) as err:
        raise TrainingDataError(f"no usable training data in {ROOT_FLAG}={root!r}: "
                                f"{_one_line(err)}") from err
    logging.info("data: %d frames in %d clips (%d files skipped%s)",
                 sum(len(c) for c in index.clips),
                 len(index.clips), len(index.skipped),
                 f"; held out: {', '.join(held_out)}" if held_out else "")
    return index


def load_teacher_targets(index: cpem_folder.CpemIndex, config: ml_collections.ConfigDict,
                         unit_names) -> Optional[Dict[int, teacher_lib.ClipTeacher]]:
    """The teacher rows of every clip when `config.data.teacher` is on, else None.

    Raises:
      TrainingDataError when distillation is asked for and no clip has a teacher file, or a
      teacher file is unusable.
    """
    if not config.data.get("teacher", False):
        return None
    try:
        teachers = teacher_lib.load_teachers(index, list(unit_names))
    except teacher_lib.TeacherError as err:
        raise TrainingDataError(_one_line(err)) from err
    if not teachers:
        raise TrainingDataError(
            f"--config.data.teacher is on but no video under {ROOT_FLAG}={config.data.root!r} "
            f"has a {teacher_lib.TEACHER_DIR}/ file; run `cpem-jax prepare` (with its teacher "
            f"fit) on the videos, or set --config.data.teacher=False")
    return teachers


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def make_pipeline_config(config: ml_collections.ConfigDict, seed: int
                         ) -> pipeline.PipelineConfig:
    """The pipeline settings of `config.data` for this process's shard of the global batch."""
    kwargs = dict(batch_size=config.data.batch_clips, num_frames=config.data.frames,
                  image_size=config.model.image_size, seed=seed,
                  worker_count=config.data.workers, shard_index=jax.process_index(),
                  clip_weighting=config.data.get("clip_weighting", "clip"),
                  focal_per_pixel=float(config.camera.focal_per_pixel),
                  distance_cm=float(config.camera.distance_cm),
                  shard_count=jax.process_count())
    if not config.data.augment:
        kwargs["augment"] = pipeline.augment_lib.AugmentConfig(enabled=False)
    return pipeline.PipelineConfig(**kwargs)


def train_batches(index: cpem_folder.CpemIndex, config: ml_collections.ConfigDict,
                  start_step: int, teachers=None, unit_names=None
                  ) -> Iterator[Dict[str, np.ndarray]]:
    """The endless training iterator (see `pipeline` for the batch dict; close() it when done).

    A resumed run draws a fresh data order (seeded by the start step) rather than replaying the
    batches it already saw.
    """
    return pipeline.make_iterator(index, make_pipeline_config(config, config.seed + start_step),
                                  teachers, unit_names)


def fixed_eval_batches(index: cpem_folder.CpemIndex, config: ml_collections.ConfigDict,
                       teachers=None, unit_names=None) -> List[Dict[str, np.ndarray]]:
    """`config.eval_batches` batches of the device keys without shuffling or augmentation: the
    same every time (image [B, T, S, S, 3], skin_mask [B, T, S, S], landmarks [B, T, 68, 2],
    front_flag [B, T], and the teacher targets when `teachers` is given)."""
    eval_config = dataclasses.replace(
        make_pipeline_config(config, seed=0), shuffle=False, worker_count=0,
        augment=pipeline.augment_lib.AugmentConfig(enabled=False))
    batches = pipeline.make_iterator(index, eval_config, teachers, unit_names)
    try:
        return [{k: b[k] for k in device_keys(b)}
                for b, _ in zip(batches, range(config.eval_batches))]
    finally:
        if hasattr(batches, "close"):
            batches.close()
