"""The MediaPipe FaceLandmarker model bundle `face_landmarker.task`: finding, checking, download.

The bundle is a zip holding `face_detector.tflite` (a short-range BlazeFace detector) and
`face_landmarks_detector.tflite` (the 478-point mesh model with iris), plus the canonical mesh's
geometry metadata (`cpem_jax.detect.mediapipe_mesh.canonical_face_mesh`). `find_task` resolves
it (an explicit path, then $CPEM_FACE_LANDMARKER_TASK, then `task_search_paths()`) and checks
it (`check_task_file`: a zip with both models and, by default, the sha256 of Google's published
float16 bundle); `download_task` fetches that copy. Every problem is a `TaskFileError` whose
one-line message names the fix.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
import zipfile
from typing import List, Optional

from cpem_jax.io.checksum import file_sha256

TASK_ENV = "CPEM_FACE_LANDMARKER_TASK"
TASK_FILENAME = "face_landmarker.task"
TASK_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
            "float16/1/face_landmarker.task")
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


class TaskFileError(FileNotFoundError):
    """The face_landmarker.task model bundle is missing, unreadable or not the expected file."""


def _cache_dir() -> str:
    from cpem_jax.face_model.registry import cache_dir  # noqa: PLC0415 ($CPEM_CACHE)
    return cache_dir()


def _shared_dir() -> str:
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get("CPEM_SHARED") or os.path.join(os.path.dirname(repo_root), "shared")


def task_search_paths() -> List[str]:
    """Where the bundle is looked for, in order, when neither a path nor
    $CPEM_FACE_LANDMARKER_TASK is given: the project cache ($CPEM_CACHE, default
    ~/.cache/cpem_jax), then $CPEM_SHARED/assets (CPEM_SHARED defaults to ../shared beside the
    repository)."""
    return [os.path.join(_cache_dir(), TASK_FILENAME),
            os.path.join(_shared_dir(), "assets", TASK_FILENAME)]


def check_task_file(path: str, sha256: Optional[str] = TASK_SHA256) -> str:
    """Raises TaskFileError unless `path` is a readable bundle with the expected sha256.

    Args:
      path: the .task file.
      sha256: expected hex digest; None accepts any bundle that holds the two models.
    Returns:
      path.
    """
    if not os.path.isfile(path):
        raise TaskFileError(f"{path!r} does not exist; set {TASK_ENV} to a {TASK_FILENAME} or "
                            f"download it with `cpem-jax model fetch-landmarker`.")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise TaskFileError(f"{path}: sha256 {actual} is not the expected {sha256} (a "
                                f"different or damaged {TASK_FILENAME}); pass sha256=None to "
                                f"use it anyway.")
    try:
        names = set(zipfile.ZipFile(path).namelist())
    except zipfile.BadZipFile:
        raise TaskFileError(f"{path}: not a MediaPipe model bundle (not a zip archive).") \
            from None
    missing = {"face_detector.tflite", "face_landmarks_detector.tflite"} - names
    if missing:
        raise TaskFileError(f"{path}: the bundle lacks {sorted(missing)}; is it a "
                            f"FaceLandmarker {TASK_FILENAME}?")
    return path


def find_task(path: Optional[str] = None, sha256: Optional[str] = TASK_SHA256) -> str:
    """The model bundle: `path`, else $CPEM_FACE_LANDMARKER_TASK, else `task_search_paths()`.

    Args:
      path: an explicit .task file (the function argument of every constructor).
      sha256: expected digest of the file (None: any FaceLandmarker bundle).
    Raises:
      TaskFileError: the named file is missing or wrong, or no default location has one.
    """
    explicit = path or os.environ.get(TASK_ENV)
    if explicit:
        return check_task_file(os.fspath(explicit), sha256)
    for candidate in task_search_paths():
        if os.path.isfile(candidate):
            return check_task_file(candidate, sha256)
    raise TaskFileError(f"no {TASK_FILENAME} found (looked in {', '.join(task_search_paths())}); "
                        f"set {TASK_ENV} or pass --landmarker-task, or download it with "
                        f"`cpem-jax model fetch-landmarker` where there is internet.")


def download_task(destination: Optional[str] = None, url: str = TASK_URL,
                  sha256: Optional[str] = TASK_SHA256, timeout_s: float = 60.0) -> str:
    """Downloads the model bundle and checks its sha256; returns its path.

    Args:
      destination: file or folder (default: the project cache folder, the first place
        `find_task` looks).
      url: where to download from (default: Google's published float16 bundle).
      sha256: expected digest (None: not checked).
      timeout_s: network timeout in seconds.
    Raises:
      TaskFileError: the download failed (e.g. offline) or gave a file with another sha256.
        A failed download never leaves a partial file behind.
    """
    destination = os.fspath(destination or os.path.join(_cache_dir(), TASK_FILENAME))
    if os.path.isdir(destination):
        destination = os.path.join(destination, TASK_FILENAME)
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    partial = destination + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, \
                open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        if os.path.exists(partial):
            os.remove(partial)
        reason = getattr(err, "reason", err)
        raise TaskFileError(f"could not download {TASK_FILENAME} from {url} ({reason}); "
                            f"without internet, copy the file to {destination} by hand, or "
                            f"anywhere and set {TASK_ENV} to it.") from None
    if sha256 is not None and file_sha256(partial) != sha256.lower():
        actual = file_sha256(partial)
        os.remove(partial)
        raise TaskFileError(f"downloaded {url} has sha256 {actual}, not the expected {sha256}; "
                            f"the published file changed or the download was altered.")
    os.replace(partial, destination)
    return destination
