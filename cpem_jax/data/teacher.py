"""Teacher targets for distillation: the identity-locked fit of each prepared video.

`cpem-jax prepare` writes, next to a video's crops, the fit of that video (`teacher/P/V.npz` in
the coefficient schema of `cpem_jax.export.coefficients`, and `teacher/P/V.frames.csv` naming
the frame file of each row). The fit ran on the very crops that were written, so its expression
weights and head pose are targets for the network on those files.

    teachers = load_teachers(index, unit_names)     # {clip_id: ClipTeacher}
    row = teachers[clip.clip_id].lookup(frame_id)   # (expression [K], rotation [3],
                                                    #  translation [3], valid)

The clip's geometric augmentation moves the pose targets with the image (`augment_targets`,
for the crop camera: principal point at the centre, looking down -z). An image rotation by theta
about the centre (u right, v down) is the camera-space rotation Rz(-theta), so with
R = Rz(roll) Ry(yaw) Rx(pitch) the roll becomes roll - theta and the translation turns with it; a
scale s about the centre puts the model origin at 1/s of its depth; a shift (du, dv) pixels moves
it by (du, -dv) * depth / focal. Scale and shift are exact for the model origin and first-order
for the rest of the face (its depth spread is small against the camera distance). Mirroring (a
flipped clip) follows: left and right units swap (`_L` <-> `_R`, `Left` <-> `Right`), the head
gets (pitch, -yaw, -roll) and translation (-x, y, z).

A synthetic split (`cpem-jax synth`) has exact targets: its `ground_truth.npz` (beside `data/`)
is read as the teacher of every frame it lists.

Frames without a teacher row (a clip from a source without teacher files, or a frame where the
fit found no face) get zeros and valid = False, so a batch can mix sources.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
from typing import Dict, Sequence, Tuple

import numpy as np

from cpem_jax.data.cpem_folder import CpemIndex, Frame

TEACHER_DIR = "teacher"
GROUND_TRUTH_FILE = "ground_truth.npz"  # A synthetic split's exact targets.

logger = logging.getLogger(__name__)


class TeacherError(ValueError):
    """A teacher file that cannot be used; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class ClipTeacher:
    """Teacher rows of one clip, addressed by frame id (`CpemIndex.frames`)."""
    rows: Dict[int, int]          # frame id -> row of the arrays below
    expression: np.ndarray        # [R, K] float32 in [0, 1], in the requested unit order
    rotation: np.ndarray          # [R, 3] float32 radians (pitch, yaw, roll)
    translation: np.ndarray       # [R, 3] float32 cm

    def lookup(self, frame_id: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        row = self.rows.get(int(frame_id))
        if row is None:
            k = self.expression.shape[1]
            return (np.zeros(k, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32),
                    False)
        return self.expression[row], self.rotation[row], self.translation[row], True


def source_dir_of(frame: Frame) -> str:
    """The CPEM source folder holding a frame (its image is SOURCE/data/P/V/name.ext)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(frame.image_path))))


def teacher_paths(source_dir: str, person_id: str, video_id: str) -> Tuple[str, str]:
    """(coefficient file .npz, row-to-frame table .frames.csv) of one video."""
    stem = os.path.join(source_dir, TEACHER_DIR, person_id, video_id)
    return stem + ".npz", stem + ".frames.csv"


def mirror_permutation(unit_names: Sequence[str]) -> np.ndarray:
    """[K] indices: mirrored[k] = weights[perm[k]] (left and right units swapped)."""
    position = {name: k for k, name in enumerate(unit_names)}
    perm = []
    for name in unit_names:
        other = _mirror_name(name)
        perm.append(position.get(other, position[name]))
    return np.asarray(perm, np.int64)


def _mirror_name(name: str) -> str:
    for a, b in (("_L", "_R"), ("Left", "Right")):
        if name.endswith(a):
            return name[:-len(a)] + b
        if name.endswith(b):
            return name[:-len(b)] + a
    return name


def mirror_targets(expression: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                   perm: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The targets of the mirrored image (module docstring); leading shapes are kept."""
    sign_rot = np.array([1.0, -1.0, -1.0], np.float32)
    sign_t = np.array([-1.0, 1.0, 1.0], np.float32)
    return expression[..., perm], rotation * sign_rot, translation * sign_t


def augment_targets(rotation: np.ndarray, translation: np.ndarray, scale: float,
                    rotation_deg: float, shift, size: int, focal_per_pixel: float,
                    distance_cm: float):
    """The pose targets [..., 3] of an image rotated by `rotation_deg` and scaled by `scale`
    about its centre, then shifted by `shift` = (du, dv) pixels (`data.augment.geometry_matrix`
    without its flip; mirror after with `mirror_targets`). Returns (rotation, translation)."""
    theta = np.deg2rad(rotation_deg)
    c, s_ = np.cos(theta), np.sin(theta)
    rotation = np.array(rotation, np.float64, copy=True)
    t = np.asarray(translation, np.float64)
    rotation[..., 2] -= theta
    x = c * t[..., 0] + s_ * t[..., 1]
    y = -s_ * t[..., 0] + c * t[..., 1]
    depth = (distance_cm - t[..., 2]) / scale
    focal = focal_per_pixel * size
    x = x + shift[0] * depth / focal
    y = y - shift[1] * depth / focal
    out = np.stack([x, y, distance_cm - depth], axis=-1)
    return rotation.astype(np.float32), out.astype(np.float32)


def _read_rows(csv_path: str) -> Dict[str, int]:
    """frame_name -> row of the teacher file, for rows with a face and a written frame."""
    out: Dict[str, int] = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for record in csv.DictReader(f):
            name = (record.get("frame_name") or "").strip()
            if name and record.get("face_found", "0").strip() in ("1", "true", "True"):
                out[name] = int(record["row"])
    return out


def _unit_order(names: Sequence[str], unit_names: Sequence[str], what: str, fix: str
                ) -> np.ndarray:
    """Column of each of `unit_names` in a file's `names`; TeacherError when one is absent."""
    missing = [n for n in unit_names if n not in names]
    if missing:
        raise TeacherError(f"{what} lacks the model's units {missing[:4]}; {fix}")
    return np.array([list(names).index(n) for n in unit_names])


def _load_video(npz_path: str, csv_path: str, unit_names: Sequence[str]):
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            names = [str(n) for n in data["unit_names"]]
            expression = np.asarray(data["expression"], np.float32)
            rotation = np.asarray(data["rotation"], np.float32)
            translation = np.asarray(data["translation"], np.float32)
        rows = _read_rows(csv_path)
    except (OSError, KeyError, ValueError) as err:
        raise TeacherError(f"teacher file {npz_path} is unreadable ({err}); rerun "
                           f"`cpem-jax prepare` on that video") from err
    order = _unit_order(names, unit_names, f"teacher file {npz_path}",
                        "it was fitted with another face model: prepare again with this one")
    finite = (np.isfinite(expression).all(1) & np.isfinite(rotation).all(1)
              & np.isfinite(translation).all(1))
    rows = {name: r for name, r in rows.items() if r < len(expression) and finite[r]}
    return rows, expression[:, order], rotation, translation


def _load_ground_truth(path: str, unit_names: Sequence[str]):
    """{(person, video): (frame_name -> row)} and the arrays of a synthetic split."""
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["unit_names"]]
            keys = list(zip(*(data[k].astype(str) for k in ("person_id", "video_id",
                                                             "frame_name"))))
            arrays = [np.asarray(data[k], np.float32)
                      for k in ("expression", "rotation", "translation")]
    except (OSError, KeyError, ValueError) as err:
        raise TeacherError(f"ground-truth file {path} is unreadable ({err}); render the split "
                           f"again with `cpem-jax synth`") from err
    arrays[0] = arrays[0][:, _unit_order(names, unit_names, f"ground-truth file {path}",
                                         "render it again with this face model")]
    videos: Dict[Tuple[str, str], Dict[str, int]] = {}
    for row, (person, video, name) in enumerate(keys):
        videos.setdefault((person, video), {})[name] = row
    return videos, arrays


def load_teachers(index: CpemIndex, unit_names: Sequence[str]) -> Dict[int, ClipTeacher]:
    """{clip_id: ClipTeacher} for every clip whose video has a teacher file (or whose source
    is a synthetic split with its ground truth).

    Raises:
      TeacherError naming the file when a teacher file exists but cannot be used.
    """
    out: Dict[int, ClipTeacher] = {}
    ground_truth: Dict[str, object] = {}
    for clip in index.clips:
        source_dir = source_dir_of(index.frames[clip.frame_ids[0]])
        npz_path, csv_path = teacher_paths(source_dir, clip.person_id, clip.video_id)
        gt_path = os.path.join(source_dir, GROUND_TRUTH_FILE)
        if os.path.isfile(npz_path) and os.path.isfile(csv_path):
            by_name, expression, rotation, translation = _load_video(npz_path, csv_path,
                                                                     unit_names)
        elif os.path.isfile(gt_path):
            if gt_path not in ground_truth:
                ground_truth[gt_path] = _load_ground_truth(gt_path, unit_names)
            videos, (expression, rotation, translation) = ground_truth[gt_path]
            by_name = videos.get((clip.person_id, clip.video_id), {})
        else:
            continue
        rows = {fid: by_name[index.frames[fid].frame_name] for fid in clip.frame_ids
                if index.frames[fid].frame_name in by_name}
        out[clip.clip_id] = ClipTeacher(rows, expression, rotation, translation)
    covered = sum(len(t.rows) for t in out.values())
    logger.info("teacher targets for %d of %d frames (%d of %d clips)", covered,
                sum(len(c) for c in index.clips), len(out), len(index.clips))
    return out


def exclude_people(index: CpemIndex, people: Sequence[str]) -> CpemIndex:
    """The index without the clips of `people` (person ids, e.g. a held-out video's person).

    Raises:
      ValueError naming the unknown ids (a typo would otherwise hold out nothing).
    """
    wanted = {p.strip() for p in people if p.strip()}
    if not wanted:
        return index
    known = {c.person_id for c in index.clips}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"no person {unknown} in the data (people: {sorted(known)[:8]} ...)")
    clips = [c for c in index.clips if c.person_id not in wanted]
    return dataclasses.replace(index, clips=clips)
