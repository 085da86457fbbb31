"""Read files of a model distribution from a .zip archive or an extracted folder alike."""
from __future__ import annotations

import os
import zipfile
from typing import List


class ModelSourceError(FileNotFoundError):
    """A face-model source (archive or folder) that is missing or lacks a needed file."""


class ModelSource:
    """Files under a root folder, in a zip archive or on disk.

    `ModelSource(path, marker)` finds the folder that contains `marker` (a relative path such as
    "FaceXModel/vertex_indices.json"), whatever the archive's top-level folder is called.
    """

    def __init__(self, path: str, marker: str, fix_hint: str):
        self.path = os.fspath(path)
        self.fix_hint = fix_hint
        if not os.path.exists(self.path):
            raise ModelSourceError(f"face-model source {self.path!r} does not exist. {fix_hint}")
        self._zip = None
        if os.path.isdir(self.path):
            self._prefix = self._find_dir_prefix(marker)
        else:
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ModelSourceError(
                    f"{self.path!r} is not a readable zip archive ({err}). {fix_hint}") from None
            self._prefix = self._find_zip_prefix(marker)

    def _find_dir_prefix(self, marker: str) -> str:
        for root, _, _ in os.walk(self.path):
            if os.path.isfile(os.path.join(root, marker)):
                return os.path.relpath(root, self.path)
        raise ModelSourceError(f"no {marker!r} found under {self.path!r}. {self.fix_hint}")

    def _find_zip_prefix(self, marker: str) -> str:
        for name in self._zip.namelist():
            if name.endswith(marker) and (name == marker or name[-len(marker) - 1] == "/"):
                return name[: -len(marker)].rstrip("/") or "."
        raise ModelSourceError(f"no {marker!r} in archive {self.path!r}. {self.fix_hint}")

    def _member(self, relpath: str) -> str:
        return relpath if self._prefix == "." else f"{self._prefix}/{relpath}"

    def exists(self, relpath: str) -> bool:
        if self._zip is not None:
            try:
                self._zip.getinfo(self._member(relpath))
                return True
            except KeyError:
                return False
        return os.path.isfile(os.path.join(self.path, self._member(relpath)))

    def read(self, relpath: str) -> bytes:
        """The bytes of one file; a clear error names the file and the fix when it is absent."""
        if not self.exists(relpath):
            raise ModelSourceError(f"{relpath!r} is missing from {self.path!r}. {self.fix_hint}")
        if self._zip is not None:
            try:
                return self._zip.read(self._member(relpath))
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise ModelSourceError(
                    f"{relpath!r} in {self.path!r} is corrupt ({err}). {self.fix_hint}") from None
        with open(os.path.join(self.path, self._member(relpath)), "rb") as f:
            return f.read()

    def list(self, reldir: str) -> List[str]:
        """File names directly inside a relative folder."""
        if self._zip is not None:
            base = self._member(reldir).rstrip("/") + "/"
            return sorted(n[len(base):] for n in self._zip.namelist()
                          if n.startswith(base) and "/" not in n[len(base):] and n != base)
        folder = os.path.join(self.path, self._member(reldir))
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
