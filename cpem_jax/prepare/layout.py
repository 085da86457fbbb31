"""Where `cpem-jax prepare` writes one video, and how each file is written.

The output folder DATA is one CPEM source (`cpem_jax.data.cpem_folder`); per video
(person P, video V, frames named by their index in the source, `000042`):

    DATA/data/P/V/000042.jpg              224x224 face crop, JPEG quality 95
    DATA/face_mask/P/V/000042.png         skin mask, 0 or 255, same field of view (lossless PNG)
    DATA/landmarks/P/V/000042.txt         68 lines "x y", the front end's 68 points, crop pixels
    DATA/landmarks2d/P/V/000042.txt       68 lines "x y", dlib's 68 points on the crop
    DATA/front_face_flag/P/V.csv          person_id,video_id,frame_name,front_face_flag,yaw_deg
    DATA/teacher/P/V.npz, V.json          the identity-locked fit (`cpem_jax.export` schema)
    DATA/teacher/P/V.frames.csv           row,frame_index,face_found,frame_name of each row
    DATA/done/P/V.json                    written last: counts, settings, timings

Landmark files use the convention of the CPEM data (checked on the shared demo set): x then y,
the centre of pixel i at coordinate i, so a file value is the project's coordinate minus 0.5
(`cpem_folder.read_landmarks` adds it back).

Nothing is shared between videos, so shards of a job array write disjoint files into one DATA.
A video counts as finished only when its `done/P/V.json` exists; the marker is written last,
atomically (a temporary file renamed into place). Before a video is (re)written, everything a
previous, interrupted attempt left of it is removed, so a half-written video is redone whole.
Its flag rows are written after its frame files, so a training run reading DATA meanwhile sees
either none of an unfinished video's frames or complete ones (`cpem_folder` skips frames
without a flag row, with a warning).
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import shutil
from typing import Dict, Optional, Sequence

import cv2
import numpy as np

from cpem_jax.data import cpem_folder


TEACHER_DIR = "teacher"
DONE_DIR = "done"
CROP_EXTENSION = ".jpg"
MASK_EXTENSION = ".png"
JPEG_QUALITY = 95
FRAME_NAME_DIGITS = 6
YAW_COLUMN = "yaw_deg"


def frame_name(frame_index: int) -> str:
    """Frame file stem: the frame's index in its source, zero-padded (000042)."""
    return f"{int(frame_index):0{FRAME_NAME_DIGITS}d}"


@dataclasses.dataclass(frozen=True)
class VideoPaths:
    """The files and folders of one video in an output folder (module docstring)."""
    root: str
    person_id: str
    video_id: str

    def _dir(self, top: str) -> str:
        return os.path.join(self.root, top, self.person_id, self.video_id)

    def _file(self, top: str, suffix: str) -> str:
        return os.path.join(self.root, top, self.person_id, self.video_id + suffix)

    @property
    def crops(self) -> str:
        return self._dir(cpem_folder.IMAGE_DIR)

    @property
    def masks(self) -> str:
        return self._dir(cpem_folder.MASK_DIR)

    @property
    def landmarks(self) -> str:
        return self._dir(cpem_folder.LANDMARKS_DIR)

    @property
    def landmarks2d(self) -> str:
        return self._dir(cpem_folder.LANDMARKS2D_DIR)

    @property
    def flags(self) -> str:
        return self._file(cpem_folder.FLAG_DIR, ".csv")

    @property
    def teacher_stem(self) -> str:
        return self._file(TEACHER_DIR, "")

    @property
    def teacher_frames(self) -> str:
        return self._file(TEACHER_DIR, ".frames.csv")

    @property
    def done(self) -> str:
        return self._file(DONE_DIR, ".json")

    def folders(self) -> Sequence[str]:
        return (self.crops, self.masks, self.landmarks, self.landmarks2d)

    def files(self) -> Sequence[str]:
        stem = self.teacher_stem
        return (self.flags, stem + ".npz", stem + ".json", self.teacher_frames, self.done)

    def clear(self) -> None:
        """Removes everything of this video (an earlier attempt's leftovers), marker first."""
        stale = glob.glob(glob.escape(self.flags) + ".tmp*") + glob.glob(
            glob.escape(self.done) + ".tmp*")  # Temporary files of an interrupted write.
        for path in (self.done,) + tuple(self.files()) + tuple(stale):
            if os.path.lexists(path):
                os.remove(path)
        for folder in self.folders():
            if os.path.lexists(folder):
                shutil.rmtree(folder)

    def make_folders(self) -> None:
        for folder in self.folders():
            os.makedirs(folder, exist_ok=True)
        for path in (self.flags, self.teacher_frames, self.done):
            os.makedirs(os.path.dirname(path), exist_ok=True)


def read_done(paths: VideoPaths) -> Optional[dict]:
    """The finished video's marker, or None when it is absent or unreadable (then the video is
    redone)."""
    try:
        with open(paths.done, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def write_done(paths: VideoPaths, marker: dict) -> None:
    """Writes the marker atomically: a temporary file in the same folder, renamed into place."""
    tmp = paths.done + f".tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(marker, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, paths.done)


def landmark_text(landmarks: np.ndarray) -> str:
    """[68, 2] project pixels (centres at +0.5) -> the file's 68 "x y" lines (centres at i)."""
    values = np.asarray(landmarks, np.float64) - cpem_folder.FILE_TO_PROJECT_PIXEL_OFFSET
    if values.shape != (68, 2) or not np.all(np.isfinite(values)):
        raise ValueError(f"landmarks must be finite [68, 2], got {values.shape}")
    return "".join(f"{x:.3f} {y:.3f}\n" for x, y in values)


def write_frame(paths: VideoPaths, name: str, crop: np.ndarray, mask: np.ndarray,
                landmarks: np.ndarray, landmarks2d: np.ndarray) -> None:
    """Writes one frame's four files.

    Args:
      name: frame stem (`frame_name`).
      crop: [S, S, 3] uint8 RGB.
      mask: [S, S] float in [0, 1] (stored as 0..255).
      landmarks, landmarks2d: [68, 2] crop pixels, project convention.
    Raises:
      OSError naming the file that could not be written.
    """
    image_path = os.path.join(paths.crops, name + CROP_EXTENSION)
    if not cv2.imwrite(image_path, cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"cannot write {image_path}")
    mask_path = os.path.join(paths.masks, name + MASK_EXTENSION)
    mask8 = np.clip(np.round(np.asarray(mask, np.float32) * 255.0), 0, 255).astype(np.uint8)
    if not cv2.imwrite(mask_path, mask8):
        raise OSError(f"cannot write {mask_path}")
    for folder, points in ((paths.landmarks, landmarks), (paths.landmarks2d, landmarks2d)):
        with open(os.path.join(folder, name + cpem_folder.LANDMARK_EXTENSION), "w",
                  encoding="ascii") as f:
            f.write(landmark_text(points))


def write_flags(paths: VideoPaths, names: Sequence[str], flags: np.ndarray,
                yaw_deg: np.ndarray) -> None:
    """The video's flag rows: `cpem_folder.CSV_COLUMNS` and the yaw they come from, written
    atomically (a temporary file renamed into place).

    Args:
      names: [M] frame stems; flags: [M] bool; yaw_deg: [M] degrees (an extra column
        `yaw_deg`, which readers of the four columns ignore; it lets the flags be re-derived
        with another threshold without preparing again).
    """
    tmp = paths.flags + f".tmp{os.getpid()}"  # Not *.csv: a reader never sees half a file.
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(cpem_folder.CSV_COLUMNS + (YAW_COLUMN,))
        for name, flag, yaw in zip(names, flags, yaw_deg):
            writer.writerow([paths.person_id, paths.video_id, name, int(bool(flag)),
                             f"{float(yaw):.2f}"])
    os.replace(tmp, paths.flags)


def write_teacher_frames(paths: VideoPaths, frame_index: np.ndarray, face_found: np.ndarray,
                         names: Dict[int, str]) -> None:
    """Which frame file each row of the teacher file belongs to.

    Args:
      frame_index: [N] the teacher file's rows (every frame read from the source).
      face_found: [N] bool.
      names: frame index -> frame stem, for the frames written (empty name otherwise).
    """
    with open(paths.teacher_frames, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("row", "frame_index", "face_found", "frame_name"))
        for row, (index, found) in enumerate(zip(frame_index, face_found)):
            writer.writerow([row, int(index), int(bool(found)), names.get(int(index), "")])
