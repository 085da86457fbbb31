"""The training input pipeline: batches of B clips x T frames from a `CpemIndex`, built on grain.

    index = cpem_folder.build_index("/path/to/cpem-data")
    batches = make_iterator(index, PipelineConfig(batch_size=8, num_frames=4, image_size=224))
    batch = next(batches)

Each batch is a dict of numpy arrays:
  image       [B, T, S, S, 3] float32 RGB in [0, 1]
  skin_mask   [B, T, S, S]    float32, {0, 1} (or soft in [0, 1] when mask_threshold is None)
  landmarks   [B, T, 68, 2]   float32 pixels of the S x S image, u right, v down, pixel centres at
                              i + 0.5; merged per `landmark_combine` (`ibug68.combine_landmarks`)
  front_flag  [B, T]          bool, near-frontal frame (from front_face_flag.csv)
  clip_id     [B]             int32, index into `index.clips`
  clip_key    [B]             str "source/person/video"
  frame_id    [B, T]          int32, index into `index.frames`
  flipped     [B]             bool, the clip was mirrored by augmentation (landmarks relabelled)

With teacher targets (`teachers`, from `cpem_jax.data.teacher.load_teachers`) the batch also has
  teacher_expression  [B, T, K] float32, the fit's expression weights (mirrored with the clip)
  teacher_rotation    [B, T, 3] float32 radians; teacher_translation [B, T, 3] float32 cm,
                      moved with the clip's augmentation (`teacher.augment_targets`)
  teacher_valid       [B, T]    float32, 1 where the frame has a teacher row, else 0

All T frames of a sample come from one clip (same person and video). Order: clips are shuffled
with `seed` (a new permutation every epoch) and augmentation draws from grain's per-element
generator derived from `seed`, so batch k is the same for a given seed whatever `worker_count`.
No model code runs here; loading, resizing and augmentation are numpy/OpenCV in `ClipLoader`.

With `worker_count > 0` grain starts worker processes with the "spawn" method, which re-imports
the main module: call `make_iterator` from code guarded by `if __name__ == "__main__":` (absl's
`app.run(main)` is), and `close()` the iterator when done.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, Iterator, List, Optional

import grain
import numpy as np

from cpem_jax.data import augment as augment_lib
from cpem_jax.data import ibug68, sampling
from cpem_jax.data import teacher as teacher_lib
from cpem_jax.data.cpem_folder import Clip, CpemIndex, Frame, FrameReadError, load_frame
from cpem_jax.geometry.camera import DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Pipeline settings; see the module docstring for the output."""
    batch_size: int = 8                  # B clips per batch (paper: 8)
    num_frames: int = 4                  # T frames per clip (paper: 4)
    image_size: int = 224                # S, output side in pixels
    frame_sampling: str = "random"       # sampling.FRAME_SAMPLING_MODES
    short_clips: str = "skip"            # sampling.SHORT_CLIP_MODES
    landmark_combine: str = "paper"      # ibug68.COMBINE_MODES
    clip_weighting: str = "clip"         # CLIP_WEIGHTING: "clip" = each clip once per epoch
                                         # (the paper's VoxCeleb2 clips are short); "window" =
                                         # once per T-frame window it holds, so a long video
                                         # weighs by its length
    mask_threshold: Optional[float] = 0.5
    focal_per_pixel: float = DEFAULT_FOCAL_PER_PIXEL  # the crop camera, for teacher pose targets
    distance_cm: float = DEFAULT_DISTANCE_CM
    seed: int = 0
    shuffle: bool = True
    num_epochs: Optional[int] = None     # None repeats forever
    worker_count: int = 0                # grain worker processes; 0 loads in this process
    worker_buffer_size: int = 2          # batches buffered per worker process
    read_threads: int = 4                # threads per process reading elements
    shard_index: int = 0                 # e.g. jax.process_index(), passed in by the caller
    shard_count: int = 1                 # e.g. jax.process_count()
    augment: augment_lib.AugmentConfig = augment_lib.AugmentConfig()

    def __post_init__(self):
        for name in ("batch_size", "num_frames", "image_size", "shard_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"PipelineConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.shard_index < self.shard_count:
            raise ValueError(f"shard_index {self.shard_index} not in [0, {self.shard_count})")
        if self.worker_count < 0 or self.read_threads < 0:
            raise ValueError("worker_count and read_threads must be >= 0")
        if self.frame_sampling not in sampling.FRAME_SAMPLING_MODES:
            raise ValueError(f"frame_sampling={self.frame_sampling!r}; use one of "
                             f"{sampling.FRAME_SAMPLING_MODES}")
        if self.landmark_combine not in ibug68.COMBINE_MODES:
            raise ValueError(f"landmark_combine={self.landmark_combine!r}; use one of "
                             f"{ibug68.COMBINE_MODES}")
        if self.clip_weighting not in CLIP_WEIGHTING:
            raise ValueError(f"clip_weighting={self.clip_weighting!r}; use one of "
                             f"{CLIP_WEIGHTING}")
        if self.mask_threshold is not None and not 0.0 <= self.mask_threshold <= 1.0:
            raise ValueError(f"mask_threshold must be in [0, 1] or None, got {self.mask_threshold}")


CLIP_WEIGHTING = ("clip", "window")


class ClipLoader(grain.transforms.RandomMap):
    """clip_id -> one sample of T frames (unbatched arrays of the batch dict, without B)."""

    def __init__(self, frames: List[Frame], clips: List[Clip], config: PipelineConfig,
                 teachers: Optional[Dict[int, "teacher_lib.ClipTeacher"]] = None,
                 mirror: Optional[np.ndarray] = None):
        self._frames = frames
        self._clips = {c.clip_id: c for c in clips}
        self._config = config
        self._teachers = teachers
        self._mirror = mirror       # [K] unit permutation of a flipped clip
        self._failed: set = set()   # frame ids that failed to load in this process

    def random_map(self, clip_id, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        cfg = self._config
        clip = self._clips[int(clip_id)]
        frame_ids = sampling.sample_frame_ids(clip, cfg.num_frames, cfg.frame_sampling, rng)
        images, masks, landmarks, flags = [], [], [], []
        for t in range(cfg.num_frames):
            frame_ids[t], arrays = self._load_with_fallback(clip, int(frame_ids[t]), rng)
            image, mask, lm = augment_lib.resize_frame(
                arrays["image"], arrays["skin_mask"], arrays["landmarks"], cfg.image_size)
            images.append(image)
            masks.append(mask)
            landmarks.append(lm)
            flags.append(arrays["front_flag"])
        aug = augment_lib.sample_augmentation(cfg.augment, cfg.image_size, rng)
        image, mask, lm = augment_lib.apply_geometry(
            np.stack(images), np.stack(masks), np.stack(landmarks), aug)
        image = augment_lib.apply_color(image, aug)
        if cfg.mask_threshold is not None:
            mask = mask >= cfg.mask_threshold
        sample = {
            "image": image.astype(np.float32),
            "skin_mask": mask.astype(np.float32),
            "landmarks": lm.astype(np.float32),
            "front_flag": np.array(flags, bool),
            "clip_id": np.int32(clip.clip_id),
            "clip_key": np.str_(clip.key),
            "frame_id": frame_ids.astype(np.int32),
            "flipped": np.bool_(aug.flip),
        }
        if self._teachers is not None:
            sample.update(self._teacher_targets(clip, frame_ids, aug))
        return sample

    def _teacher_targets(self, clip: Clip, frame_ids: np.ndarray, aug
                         ) -> Dict[str, np.ndarray]:
        table = self._teachers.get(clip.clip_id)
        k = len(self._mirror)
        if table is None:
            rows = [(np.zeros(k, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32),
                     False)] * len(frame_ids)
        else:
            rows = [table.lookup(int(f)) for f in frame_ids]
        expression, rotation, translation = (np.stack([r[i] for r in rows]) for i in range(3))
        cfg = self._config
        rotation, translation = teacher_lib.augment_targets(
            rotation, translation, aug.scale, aug.rotation_deg, aug.shift, cfg.image_size,
            cfg.focal_per_pixel, cfg.distance_cm)
        if aug.flip:
            expression, rotation, translation = teacher_lib.mirror_targets(
                expression, rotation, translation, self._mirror)
        return {"teacher_expression": expression.astype(np.float32),
                "teacher_rotation": rotation.astype(np.float32),
                "teacher_translation": translation.astype(np.float32),
                "teacher_valid": np.array([r[3] for r in rows], np.float32)}

    def _load_with_fallback(self, clip: Clip, frame_id: int, rng: np.random.Generator):
        """Load a frame; if its files fail (e.g. a truncated JPEG the header check passed), warn
        with the file name and use another frame of the same clip instead."""
        while True:
            if frame_id not in self._failed:
                try:
                    return frame_id, load_frame(self._frames[frame_id],
                                                self._config.landmark_combine)
                except FrameReadError as err:
                    logger.warning("CPEM data: skipping %s at load time: %s (clip %s)",
                                   err.path, err.reason, clip.key)
                    self._failed.add(frame_id)
            healthy = [f for f in clip.frame_ids if f not in self._failed]
            if not healthy:
                raise RuntimeError(f"every frame of clip {clip.key} failed to load; fix or remove "
                                   f"its files (see the warnings above)")
            frame_id = int(rng.choice(healthy))


def make_dataset(index: CpemIndex, config: PipelineConfig,
                 teachers: Optional[Dict[int, "teacher_lib.ClipTeacher"]] = None,
                 unit_names: Optional[List[str]] = None) -> grain.MapDataset:
    """Random-access dataset of batches (`ds[k]` is batch k; deterministic for a given seed).

    `teachers` (with the `unit_names` of their expression columns) adds the teacher targets.
    """
    mirror = None
    if teachers is not None:
        if not unit_names:
            raise ValueError("teacher targets need the unit_names of their expression columns")
        mirror = teacher_lib.mirror_permutation(unit_names)
    clips = sampling.eligible_clips(index.clips, config.num_frames, config.short_clips)
    if config.clip_weighting == "window":
        ids = [c.clip_id for c in clips for _ in range(max(1, len(c) // config.num_frames))]
    else:
        ids = [c.clip_id for c in clips]
    ds = grain.MapDataset.source(ids)
    if config.shard_count > 1:
        ds = ds[config.shard_index::config.shard_count]
    if config.num_epochs is not None and len(ds) * config.num_epochs < config.batch_size:
        raise ValueError(f"{len(ds)} usable clips x {config.num_epochs} epochs cannot fill one "
                         f"batch of {config.batch_size}; lower batch_size or set num_epochs=None")
    if config.shuffle:
        ds = ds.shuffle(seed=config.seed)
    ds = ds.repeat(config.num_epochs)
    ds = ds.random_map(ClipLoader(index.frames, clips, config, teachers, mirror),
                       seed=config.seed)
    return ds.batch(config.batch_size, drop_remainder=True)


def _ensure_flags_parsed() -> None:
    """grain's worker processes read an absl flag; outside an absl app the flags are unparsed and
    grain raises UnparsedFlagAccessError (google/grain#1355). Mark them parsed (keeps defaults)."""
    from absl import flags
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def make_iterator(index: CpemIndex, config: PipelineConfig,
                  teachers: Optional[Dict[int, "teacher_lib.ClipTeacher"]] = None,
                  unit_names: Optional[List[str]] = None) -> Iterator[Dict[str, np.ndarray]]:
    """Iterator of batches, loaded by `config.worker_count` background processes (0: in this
    process with `read_threads` threads). The iterator supports grain's get_state/set_state;
    call its `close()` when done so the worker processes and their buffers are released.
    `teachers`, `unit_names`: see `make_dataset`."""
    ds = make_dataset(index, config, teachers, unit_names).to_iter_dataset(
        grain.ReadOptions(num_threads=config.read_threads,
                          prefetch_buffer_size=max(config.read_threads, 1)))
    if config.worker_count > 0:
        _ensure_flags_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=config.worker_count, per_worker_buffer_size=config.worker_buffer_size))
        # Batches arrive as views of grain's shared-memory blocks; copying them into ordinary
        # arrays here frees each block as soon as its batch is handed over.
        ds = ds.map(_own_arrays)
    return iter(ds)


def _own_arrays(batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in batch.items()}
