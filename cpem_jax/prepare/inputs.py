"""What `cpem-jax prepare` reads: inputs expanded to videos with person and video ids, and shards.

Every argument is one of:
  * a video file: one video of one person; person id = video id = the file's stem;
  * an image file: a one-frame video of its own person; person id = video id = the stem;
  * a folder whose files are images (and no videos): one video in natural file order (frame i is
    the i-th image, as `cpem_jax.io.open_frames` reads it); person id = video id = the folder's
    name;
  * any other folder (one holding videos or sub-folders): every video, every folder of images
    and every loose image below it, each as above but with ids from the path relative to the
    given folder: `PERSON/VIDEO.mp4` -> person PERSON, video VIDEO; deeper paths join their
    remaining parts with '_' (`id00025/O_ICgJ0s-_o/00001.mp4` -> person id00025, video
    O_ICgJ0s-_o_00001, the VoxCeleb2 layout); a video directly in the folder is its own person.
    Links to folders below it are not followed (no cycles); linked files are read.

Ids keep letters, digits, '.', '_' and '-' (anything else becomes '_'), so they are safe folder
names and CSV fields. Two inputs that would get the same (person, video) are an error for all but
the first in path order (reported like any bad input), never a silent overwrite.

Sharding (`--shard K/N`): an item belongs to shard `crc32("person/video") mod N`. The rule
depends on the item alone, so every shard of a cluster job array computes the same partition
from the same arguments, shards are disjoint and together cover every input, and an input added
between two shard runs moves no other input to another shard.
"""
from __future__ import annotations

import dataclasses
import os
import re
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

from cpem_jax.io.images import is_image_path, natural_sort_key

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".3gp", ".ts")
KINDS = ("video", "image", "image_folder")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclasses.dataclass(frozen=True)
class InputItem:
    """One video to prepare.

    Attributes:
      source: the path as given or found (a video, an image or a folder of images).
      kind: "video", "image", "image_folder", or "missing" / "empty" for an argument that is
        not usable (then `problem` says why).
      person_id, video_id: the output ids (folder names under data/ and the other folders).
      problem: None, or one line saying why this input cannot be prepared.
    """
    source: str
    kind: str
    person_id: str
    video_id: str
    problem: Optional[str] = None

    @property
    def key(self) -> str:
        """"person/video", the item's name in logs, markers and the shard hash."""
        return f"{self.person_id}/{self.video_id}"


def safe_id(name: str) -> str:
    """A name as an id: runs of characters other than letters, digits, '.', '_', '-' become '_';
    a leading '.' becomes '_' (no hidden folders); empty -> '_'."""
    out = _UNSAFE.sub("_", name).strip()
    if out.startswith("."):
        out = "_" + out[1:]
    return out or "_"


def is_video_path(path: str) -> bool:
    """True when the name ends with one of VIDEO_EXTENSIONS (case-insensitive)."""
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _stem(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    return name if os.path.isdir(path) else os.path.splitext(name)[0]


def _is_image_folder(folder: str, names: Sequence[str]) -> bool:
    """A folder is one image sequence when it holds image files and no video files."""
    files = [n for n in names if os.path.isfile(os.path.join(folder, n))]
    return any(is_image_path(n) for n in files) and not any(is_video_path(n) for n in files)


def _item(path: str, kind: str, rel_parts: Optional[Sequence[str]] = None) -> InputItem:
    """An item with ids from `rel_parts` (path parts below a walked folder, extension dropped)
    or, for an argument given directly, from the name."""
    parts = [safe_id(p) for p in (rel_parts or [_stem(path)])]
    person, video = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], "_".join(parts[1:]))
    return InputItem(source=path, kind=kind, person_id=person, video_id=video)


def _walk(root: str) -> List[InputItem]:
    """Items below a folder that is not itself an image sequence (module docstring)."""
    items: List[InputItem] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort(key=natural_sort_key)
        rel = os.path.relpath(folder, root)
        rel_parts = [] if rel == "." else rel.split(os.sep)
        if rel_parts and _is_image_folder(folder, files):
            items.append(_item(folder, "image_folder", rel_parts))
            dirs[:] = []  # Its sub-folders are not separate inputs.
            continue
        for name in sorted(files, key=natural_sort_key):
            path = os.path.join(folder, name)
            stem = os.path.splitext(name)[0]
            if is_video_path(name):
                items.append(_item(path, "video", rel_parts + [stem]))
            elif is_image_path(name):
                items.append(_item(path, "image", rel_parts + [stem]))
    return items


def expand_inputs(paths: Sequence[str]) -> List[InputItem]:
    """Turns command-line inputs into items (module docstring), sorted by (person, video).

    Arguments that do not exist, and folders with nothing to prepare, become items with a
    `problem` (ids from their name), so they are reported by the shard they fall in. Inputs
    reached twice (the same real path) are kept once.
    """
    items: List[InputItem] = []
    for path in paths:
        if not os.path.exists(path):
            items.append(dataclasses.replace(_item(path, "missing"),
                                             problem="does not exist"))
        elif os.path.isdir(path):
            names = os.listdir(path)
            if _is_image_folder(path, names):
                items.append(_item(path, "image_folder"))
                continue
            found = _walk(path)
            if not found:
                items.append(dataclasses.replace(
                    _item(path, "empty"), problem="holds no video or image file (videos: "
                    f"{', '.join(VIDEO_EXTENSIONS)}; images: .jpg, .png, ...)"))
            items.extend(found)
        else:
            items.append(_item(path, "image" if is_image_path(path) else "video"))
    return _deduplicate(items)


def _deduplicate(items: List[InputItem]) -> List[InputItem]:
    by_real: Dict[str, InputItem] = {}
    for item in items:
        by_real.setdefault(os.path.realpath(item.source) if item.problem is None
                           else f"\0{item.source}", item)
    out: List[InputItem] = []
    owner: Dict[Tuple[str, str], InputItem] = {}
    for item in sorted(by_real.values(), key=lambda i: (natural_sort_key(i.key), i.source)):
        first = owner.setdefault((item.person_id, item.video_id), item)
        if first is not item and item.problem is None:
            item = dataclasses.replace(item, problem=(
                f"gets the ids {item.key} that {first.source} already has; rename one of them "
                f"or pass their parent folder so the path tells them apart"))
        out.append(item)
    return out


def parse_shard(text: str) -> Tuple[int, int]:
    """"K/N" -> (K, N) with 0 <= K < N. Raises ValueError with the expected form."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
        raise ValueError(f"--shard must be K/N with 0 <= K < N (e.g. 0/4 ... 3/4; with Slurm "
                         f"--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_of(item: InputItem, count: int) -> int:
    """The shard (0 .. count - 1) an item belongs to: crc32 of its "person/video" mod count."""
    return zlib.crc32(item.key.encode("utf-8")) % count


def select_shard(items: Sequence[InputItem], shard: Tuple[int, int]) -> List[InputItem]:
    """The items of shard (K, N), in their given order."""
    k, n = shard
    return [item for item in items if shard_of(item, n) == k]
