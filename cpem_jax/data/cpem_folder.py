"""Index and per-frame reader for the CPEM training-data folder layout.

Layout of one *source* (e.g. `voxceleb2/`, `300w_lp/`)::

    <source>/data/<person>/<video>/<frame>.jpg          face crop, RGB (stored BGR by OpenCV)
    <source>/face_mask/<person>/<video>/<frame>.jpg     skin mask, grey, same field of view
    <source>/landmarks/<person>/<video>/<frame>.txt     68 lines "x y" (3D face-alignment network)
    <source>/landmarks2d/<person>/<video>/<frame>.txt   68 lines "x y" (dlib)
    <source>/front_face_flag.csv    columns person_id,video_id,frame_name,front_face_flag (0/1)
    <source>/front_face_flag/**/*.csv   optional further flag files, same columns (e.g. one per
                                        video, as `cpem-jax prepare` writes them); their rows
                                        join those of front_face_flag.csv

A *clip* is every frame of one (source, person, video); 300W-LP stores each subject's synthesised
poses as one video (`001`). `build_index` accepts a source folder or a folder of sources.

Pixel frames (checked on the demo data): landmarks are in the pixel frame of the image file they
belong to (300W-LP images are 450x450 and their landmarks go up to ~400); the mask covers the same
field of view at its own resolution (224x224 for every source) and is aligned to the image after
resizing both to one size. The files use the index convention (the centre of pixel i is at i);
`read_landmarks` converts to the project convention (u right, v down, pixel centres at i + 0.5).

Images and masks are decoded by the project's image reader, `cpem_jax.io.images.read_image`
(EXIF orientation applied; a truncated file, e.g. a JPEG without its end marker, is refused).
Bad or missing files never stop indexing and are never dropped silently: each one is logged with
`logging.warning` naming the file and the reason, recorded in `CpemIndex.skipped`, and its frame is
left out. A file that breaks after indexing is skipped the same way when loaded
(`pipeline.ClipLoader`).
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import logging
import os
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from cpem_jax.data import ibug68
from cpem_jax.io import images as image_files
from cpem_jax.io.images import natural_sort_key

logger = logging.getLogger(__name__)

IMAGE_DIR = "data"
MASK_DIR = "face_mask"
LANDMARKS_DIR = "landmarks"
LANDMARKS2D_DIR = "landmarks2d"
FLAG_CSV = "front_face_flag.csv"
FLAG_DIR = "front_face_flag"  # Optional folder of further flag files (any depth, *.csv).
CSV_COLUMNS = ("person_id", "video_id", "frame_name", "front_face_flag")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LANDMARK_EXTENSION = ".txt"
# Landmark files put the centre of pixel i at coordinate i; the project puts it at i + 0.5.
FILE_TO_PROJECT_PIXEL_OFFSET = 0.5
CHECK_IMAGE_MODES = ("header", "decode")


class FrameReadError(IOError):
    """A frame file could not be read or parsed; `path` names the file, `reason` says why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Frame:
    """One indexed, validated frame. Paths are absolute; sizes are (height, width) in pixels."""
    source: str
    person_id: str
    video_id: str
    frame_name: str
    image_path: str
    mask_path: str
    landmarks_path: str
    landmarks2d_path: str
    front_flag: bool
    image_size: Tuple[int, int]
    mask_size: Tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Clip:
    """All frames of one (source, person, video); `frame_ids` index `CpemIndex.frames`, sorted
    by frame name in natural order (`_9` before `_10`)."""
    clip_id: int
    source: str
    person_id: str
    video_id: str
    frame_ids: Tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.source}/{self.person_id}/{self.video_id}"

    def __len__(self) -> int:
        return len(self.frame_ids)


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclasses.dataclass
class CpemIndex:
    """Frames grouped into clips, plus every file that was left out and why."""
    root: str
    frames: List[Frame]
    clips: List[Clip]
    skipped: List[SkippedFile]

    def counts(self) -> Dict[str, Dict[str, int]]:
        """{source: {"people": n, "clips": n, "frames": n}} over the usable frames."""
        out: Dict[str, Dict[str, int]] = {}
        for source in sorted({c.source for c in self.clips}):
            clips = [c for c in self.clips if c.source == source]
            out[source] = {"people": len({c.person_id for c in clips}), "clips": len(clips),
                           "frames": sum(len(c) for c in clips)}
        return out


def read_landmarks(path: str) -> np.ndarray:
    """Read a 68-line "x y" landmark file.

    Returns:
      [68, 2] float32, pixels of the image file, u right, v down, pixel centres at i + 0.5.
    Raises:
      FrameReadError naming the file when it is missing, has the wrong line count, or holds a
      non-numeric or non-finite value.
    """
    try:
        with open(path, "r", encoding="ascii") as f:
            rows = [line.split() for line in f.read().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise FrameReadError(path, f"cannot read landmark file ({err})") from err
    if len(rows) != ibug68.NUM_LANDMARKS or any(len(r) != 2 for r in rows):
        raise FrameReadError(path, f"expected {ibug68.NUM_LANDMARKS} lines of 'x y', found "
                                   f"{len(rows)} non-empty lines")
    try:
        lm = np.array(rows, dtype=np.float32)
    except ValueError as err:
        raise FrameReadError(path, f"non-numeric landmark value ({err})") from err
    if not np.all(np.isfinite(lm)):
        raise FrameReadError(path, "non-finite landmark value")
    return lm + FILE_TO_PROJECT_PIXEL_OFFSET


def _decode(path: str) -> np.ndarray:
    """An image file -> [H, W, 3] uint8 RGB through `cpem_jax.io.images.read_image` (EXIF
    orientation applied, truncated files refused); FrameReadError naming the file otherwise."""
    try:
        return image_files.read_image(path, min_size=1)
    except FileNotFoundError as err:
        raise FrameReadError(path, "missing image file") from err
    except image_files.FrameSourceError as err:
        raise FrameReadError(path, str(err).removeprefix(f"{path}: ")) from err


def read_image(path: str) -> np.ndarray:
    """Decode a colour image -> [H, W, 3] float32 RGB in [0, 1]; FrameReadError if unreadable
    or truncated."""
    return _decode(path).astype(np.float32) / 255.0


def read_mask(path: str) -> np.ndarray:
    """Decode a grey skin mask -> [h, w] float32 in [0, 1]; FrameReadError if unreadable or
    truncated."""
    return cv2.cvtColor(_decode(path), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


# EXIF orientations that turn the image a quarter: the upright image has width and height swapped.
_QUARTER_TURN_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


def _image_size(path: str, check: str) -> Tuple[int, int]:
    """(height, width) of an image file as `read_image` returns it (upright), reading only its
    header unless check == "decode" (which decodes it, refusing truncated files)."""
    if check == "decode":
        return _decode(path).shape[:2]
    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURN_ORIENTATIONS:
                width, height = height, width
    except Exception as err:  # PIL raises many types for corrupt files; all mean "unreadable".
        raise FrameReadError(path, f"unreadable image ({type(err).__name__}: {err})") from err
    return height, width


def _find_image(folder: str, stem: str) -> Optional[str]:
    for ext in IMAGE_EXTENSIONS:
        candidate = os.path.join(folder, stem + ext)
        if os.path.isfile(candidate):
            return candidate
    return None


def _flag_files(source_dir: str) -> List[str]:
    """front_face_flag.csv (when present), then every .csv under front_face_flag/, sorted."""
    files = [os.path.join(source_dir, FLAG_CSV)] if os.path.isfile(
        os.path.join(source_dir, FLAG_CSV)) else []
    for folder, dirs, names in os.walk(os.path.join(source_dir, FLAG_DIR)):
        dirs.sort()
        files.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".csv"))
    return files


def _read_flags(source_dir: str, skip) -> Optional[Dict[Tuple[str, str, str], bool]]:
    """The flag files (`_flag_files`) -> {(person, video, frame): flag}; None when there is
    none."""
    paths = _flag_files(source_dir)
    if not paths:
        skip(os.path.join(source_dir, FLAG_CSV), f"missing {FLAG_CSV} (and no {FLAG_DIR}/*.csv); "
                                                 f"every frame of this source is skipped")
        return None
    flags: Dict[Tuple[str, str, str], bool] = {}
    for path in paths:
        _read_flag_file(path, flags, skip)
    return flags


def _read_flag_file(path: str, flags: Dict[Tuple[str, str, str], bool], skip) -> None:
    """Adds the rows of one flag file to `flags`; a row already there is skipped as a duplicate."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: header lacks columns {missing}; expected "
                             f"{','.join(CSV_COLUMNS)}")
        for line_no, row in enumerate(reader, start=2):
            key = (row["person_id"], row["video_id"], row["frame_name"])
            value = (row["front_face_flag"] or "").strip()
            if value not in ("0", "1"):
                skip(f"{path}:{line_no}", f"front_face_flag {value!r} is not 0 or 1")
            elif key in flags:
                skip(f"{path}:{line_no}", f"duplicate row for {'/'.join(key)}")
            else:
                flags[key] = value == "1"


def _find_sources(root: str) -> List[str]:
    if os.path.isdir(os.path.join(root, IMAGE_DIR)):
        return [root]
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CPEM data folder {root!r} does not exist; pass the folder that "
                                f"holds {IMAGE_DIR}/ (or a folder of such sources)")
    return [os.path.join(root, d) for d in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, d, IMAGE_DIR))]


def _index_source(source_dir: str, check_images: str, skip) -> List[Frame]:
    source = os.path.basename(os.path.normpath(source_dir))
    flags = _read_flags(source_dir, skip)
    if flags is None:
        return []
    frames: List[Frame] = []
    seen = set()
    image_root = os.path.join(source_dir, IMAGE_DIR)
    for person in sorted(os.listdir(image_root)):
        person_dir = os.path.join(image_root, person)
        if not os.path.isdir(person_dir):
            skip(person_dir, f"not a <person> folder under {IMAGE_DIR}/")
            continue
        for video in sorted(os.listdir(person_dir)):
            video_dir = os.path.join(person_dir, video)
            if not os.path.isdir(video_dir):
                skip(video_dir, f"not a <video> folder under {IMAGE_DIR}/<person>/")
                continue
            for name in sorted(os.listdir(video_dir), key=natural_sort_key):
                stem, ext = os.path.splitext(name)
                image_path = os.path.join(video_dir, name)
                if ext.lower() not in IMAGE_EXTENSIONS:
                    skip(image_path, f"not an image ({', '.join(IMAGE_EXTENSIONS)})")
                    continue
                frame = _check_frame(source_dir, source, person, video, stem, image_path,
                                     flags, check_images, skip)
                seen.add((person, video, stem))
                if frame is not None:
                    frames.append(frame)
    for key in sorted(set(flags) - seen):
        skip(os.path.join(image_root, *key),
             f"listed in {FLAG_CSV} (or {FLAG_DIR}/) but no image in {IMAGE_DIR}/")
    return frames


def _check_frame(source_dir, source, person, video, stem, image_path, flags, check_images,
                 skip) -> Optional[Frame]:
    rel = os.path.join(person, video)
    if (person, video, stem) not in flags:
        skip(image_path, f"no row in {FLAG_CSV} or {FLAG_DIR}/*.csv")
        return None
    mask_path = _find_image(os.path.join(source_dir, MASK_DIR, rel), stem)
    if mask_path is None:
        skip(os.path.join(source_dir, MASK_DIR, rel, stem + ".*"), "missing skin mask")
        return None
    lm_paths = [os.path.join(source_dir, d, rel, stem + LANDMARK_EXTENSION)
                for d in (LANDMARKS_DIR, LANDMARKS2D_DIR)]
    try:
        for p in lm_paths:
            if not os.path.isfile(p):
                raise FrameReadError(p, "missing landmark file")
            read_landmarks(p)
        image_size = _image_size(image_path, check_images)
        mask_size = _image_size(mask_path, check_images)
    except FrameReadError as err:
        skip(err.path, err.reason)
        return None
    if image_size[0] != image_size[1] or mask_size[0] != mask_size[1]:
        skip(image_path, f"image {image_size} and mask {mask_size} must both be square crops")
        return None
    return Frame(source=source, person_id=person, video_id=video, frame_name=stem,
                 image_path=image_path, mask_path=mask_path, landmarks_path=lm_paths[0],
                 landmarks2d_path=lm_paths[1], front_flag=flags[(person, video, stem)],
                 image_size=image_size, mask_size=mask_size)


def build_index(root: str | os.PathLike, check_images: str = "header") -> CpemIndex:
    """Index a CPEM-layout folder.

    Args:
      root: a source folder (holding `data/`, `face_mask/`, ...) or a folder of sources.
      check_images: "header" reads only image headers (fast; a truncated file is caught when it is
        loaded, see `pipeline.ClipLoader`); "decode" decodes every image and mask once with the
        reader training uses, so truncated files are skipped here.

    Returns:
      CpemIndex with frames, clips (one per source/person/video, natural frame order) and skipped.
    Raises:
      FileNotFoundError when `root` holds no source; ValueError when no usable frame remains.
    """
    if check_images not in CHECK_IMAGE_MODES:
        raise ValueError(f"check_images={check_images!r}; use one of {CHECK_IMAGE_MODES}")
    root = os.path.abspath(os.fspath(root))
    sources = _find_sources(root)
    if not sources:
        raise FileNotFoundError(f"{root!r} holds no CPEM source: expected {IMAGE_DIR}/, "
                                f"{MASK_DIR}/, {LANDMARKS_DIR}/, {LANDMARKS2D_DIR}/ and {FLAG_CSV} "
                                f"in it or in its sub-folders")
    skipped: List[SkippedFile] = []

    def skip(path: str, reason: str) -> None:
        logger.warning("CPEM data: skipping %s: %s", path, reason)
        skipped.append(SkippedFile(path, reason))

    frames: List[Frame] = []
    for source_dir in sources:
        frames.extend(_index_source(source_dir, check_images, skip))
    if not frames:
        raise ValueError(f"no usable frame under {root!r} ({len(skipped)} files skipped; see the "
                         f"warnings above)")
    groups: Dict[Tuple[str, str, str], List[int]] = collections.defaultdict(list)
    for i, frame in enumerate(frames):
        groups[(frame.source, frame.person_id, frame.video_id)].append(i)
    clips = [Clip(clip_id=n, source=s, person_id=p, video_id=v, frame_ids=tuple(
                      sorted(ids, key=lambda i: natural_sort_key(frames[i].frame_name))))
             for n, ((s, p, v), ids) in enumerate(sorted(groups.items()))]
    return CpemIndex(root=root, frames=frames, clips=clips, skipped=skipped)


def load_frame(frame: Frame, combine: str = "paper") -> Dict[str, np.ndarray]:
    """Read one frame at its file resolution.

    Returns dict:
      image [H, W, 3] float32 RGB in [0, 1]; skin_mask [h, w] float32 in [0, 1] (its own size);
      landmarks [68, 2] float32, pixels of the image (project convention), merged by
      `ibug68.combine_landmarks(mode=combine)`; front_flag bool.
    Raises:
      FrameReadError naming the file that failed.
    """
    lm = ibug68.combine_landmarks(read_landmarks(frame.landmarks_path),
                                  read_landmarks(frame.landmarks2d_path), frame.front_flag, combine)
    return {"image": read_image(frame.image_path), "skin_mask": read_mask(frame.mask_path),
            "landmarks": lm, "front_flag": np.bool_(frame.front_flag)}


def default_shared_demo() -> str:
    """Path of the shared demo set: $CPEM_SHARED/data/cpem-demo (CPEM_SHARED defaults to the
    `shared` folder beside the repository root)."""
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared = os.environ.get("CPEM_SHARED", os.path.join(os.path.dirname(repo_root), "shared"))
    return os.path.join(shared, "data", "cpem-demo")
