"""The ground-truth file of a synthetic split: `<split>/ground_truth.npz`.

Rows are frames, in generation order (clip by clip, frame 0 first), keyed by the CPEM path of the
frame without extension, `frame_key` = "person/video/frame" (the frame file is
`<split>/data/<person>/<video>/<frame>.jpg`). Arrays (N frames):
  frame_key, person_id, video_id, frame_name [N] str
  clip_index [N] int32 (0..C-1, clip order), frame_index [N] int32 (t within the clip)
  identity [N, K_id], albedo [N, K_alb] float32 (equal within a clip)
  expression [N, K] float32 in [0, 1], unit order `unit_names`
  rotation [N, 3] float32 radians (pitch, yaw, roll; R = Rz Ry Rx), translation [N, 3] float32 cm
  lighting [N, 3, 9] float32 SH (R, G, B), camera space
  landmarks [N, 68, 2] float32 exact projected landmarks, pixels of the image, project convention
    (u right, v down, pixel centres at i + 0.5); the files in landmarks/ are these plus noise
  blur_px [N], noise [N] float32 the applied degradation; identity_seed [N] int64 (per clip)
Scalars: unit_names [K] str, face_model, split, seed, image_size, focal_px, distance_cm,
schema_version.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Tuple

import numpy as np

FILE_NAME = "ground_truth.npz"
SCHEMA_VERSION = "1.0"
_STR_ARRAYS = ("frame_key", "person_id", "video_id", "frame_name")
_ARRAYS = ("clip_index", "frame_index", "identity", "albedo", "expression", "rotation",
           "translation", "lighting", "landmarks", "blur_px", "noise", "identity_seed")
_SCALARS = ("face_model", "split", "seed", "image_size", "focal_px", "distance_cm")


@dataclasses.dataclass
class GroundTruth:
    """The ground truth of one split (see the module docstring for shapes and units)."""
    frame_key: np.ndarray
    person_id: np.ndarray
    video_id: np.ndarray
    frame_name: np.ndarray
    clip_index: np.ndarray
    frame_index: np.ndarray
    identity: np.ndarray
    albedo: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    lighting: np.ndarray
    landmarks: np.ndarray
    blur_px: np.ndarray
    noise: np.ndarray
    identity_seed: np.ndarray
    unit_names: Tuple[str, ...]
    face_model: str
    split: str
    seed: int
    image_size: int
    focal_px: float
    distance_cm: float

    def __post_init__(self):
        n = len(self.frame_key)
        for name in _STR_ARRAYS + _ARRAYS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"GroundTruth.{name} has {len(getattr(self, name))} rows, "
                                 f"frame_key {n}")
        if self.expression.shape[1:] != (len(self.unit_names),):
            raise ValueError(f"expression is {self.expression.shape}, unit_names has "
                             f"{len(self.unit_names)} names")

    def __len__(self) -> int:
        return len(self.frame_key)

    @property
    def n_clips(self) -> int:
        return int(self.clip_index.max()) + 1 if len(self) else 0

    def clip_rows(self) -> List[np.ndarray]:
        """Per clip (clip order), the row indices of its frames in frame order."""
        return [np.flatnonzero(self.clip_index == c)[np.argsort(
            self.frame_index[self.clip_index == c], kind="stable")] for c in range(self.n_clips)]

    def clip_key(self, clip: int) -> str:
        row = int(np.flatnonzero(self.clip_index == clip)[0])
        return f"{self.person_id[row]}/{self.video_id[row]}"

    def save(self, split_dir: str) -> str:
        os.makedirs(split_dir, exist_ok=True)
        path = os.path.join(split_dir, FILE_NAME)
        arrays: Dict[str, np.ndarray] = {k: np.asarray(getattr(self, k), np.str_)
                                         for k in _STR_ARRAYS}
        arrays.update({k: np.asarray(getattr(self, k)) for k in _ARRAYS})
        arrays.update({k: np.asarray(getattr(self, k)) for k in _SCALARS})
        np.savez_compressed(path, unit_names=np.asarray(self.unit_names, np.str_),
                            schema_version=np.asarray(SCHEMA_VERSION), **arrays)
        return path


def ground_truth_path(split_dir: str) -> str:
    return os.path.join(split_dir, FILE_NAME)


def load_ground_truth(split_dir: str) -> GroundTruth:
    """Reads `<split_dir>/ground_truth.npz`; a clear error when it is missing or malformed."""
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(f"synthetic data folder {split_dir!r} does not exist; generate "
                                f"one with `cpem-jax synth --out DIR --split test`")
    path = ground_truth_path(split_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{split_dir!r} has no {FILE_NAME}: pass a split folder written "
                                f"by `cpem-jax synth` (e.g. DIR/test), not a real data set")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in _STR_ARRAYS + _ARRAYS + _SCALARS + ("unit_names",)
                   if k not in data]
        if missing:
            raise ValueError(f"{path!r} is not a synthetic ground-truth file (lacks {missing})")
        kwargs = {k: data[k].astype(str) for k in _STR_ARRAYS}
        kwargs.update({k: data[k] for k in _ARRAYS})
        return GroundTruth(
            **kwargs, unit_names=tuple(str(u) for u in data["unit_names"]),
            face_model=str(data["face_model"]), split=str(data["split"]),
            seed=int(data["seed"]), image_size=int(data["image_size"]),
            focal_px=float(data["focal_px"]), distance_cm=float(data["distance_cm"]))
