"""The output folder of a `cpem-jax retarget` run: checked before any work, and written so that a
file with a final name is always whole.

`check_output_folder` refuses a folder the outputs cannot go to (a file, below a file, not
writable) with one line naming the fix. `OutputFiles` writes every output under a temporary name
in the folder (`partial_path`: `.<name>.partial<ext>`) and renames it when complete; a summary.json
left by an earlier run is removed first (`remove_stale`) and the new one is written last, listing
only what is complete (`sizes`). Used by the offline run (`retarget.pipeline`), the live run
(`retarget.live`) and the Ctrl-C path (`retarget.run_state`).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from typing import Any, Dict, Iterator, List, Sequence

SUMMARY = "summary.json"
PARTIAL = ".partial"


class OutputFolderError(ValueError):
    """The output folder cannot hold the outputs (a file, below a file, not writable)."""


def check_output_folder(path: str) -> None:
    """Makes sure the outputs can be written to folder `path` before any work: it is not an
    existing file, lies below no file, and accepts a new file (the folder is created).

    Raises:
      OutputFolderError: one line naming the problem and the fix.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputFolderError(f"-o {path!r} is an existing file, not a folder; pass a folder "
                                "path (it is created when missing)")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputFolderError(f"-o {path!r} lies below {parent!r}, which is a file, not a "
                                "folder; pass a folder path elsewhere")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cpem-write-check"):
            pass
    except OSError as error:
        raise OutputFolderError(f"cannot write into the output folder {path!r} "
                                f"({error.strerror or error}); pass a folder you may write to "
                                "with -o") from None


def partial_path(path: str) -> str:
    """out/face.glb -> out/.face.partial.glb: where an output is written until it is complete
    (the extension is kept, as some writers choose the format from it)."""
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}{PARTIAL}{ext}")


class OutputFiles:
    """The files of one output folder: written under `partial_path` names, renamed when complete.

    Thread-safe: the Ctrl-C handler (`RunState.finish_interrupted`) runs in another thread and
    takes `lock`, so the set of complete files does not change while it reports them.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.complete: Dict[str, List[str]] = {}
        self.lock = threading.Lock()
        self._pending: set = set()

    def remove_stale(self) -> None:
        """Removes a summary.json and partial files an earlier run left (before any work)."""
        for name in os.listdir(self.folder):
            if name == SUMMARY or (name.startswith(".") and PARTIAL in name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.folder, name))

    @contextlib.contextmanager
    def writing(self, name: str, finals: Sequence[str]) -> Iterator[List[str]]:
        """Yields the temporary paths of `finals` (paths in the folder); when the block ends
        without an error they are renamed to `finals` and output `name` counts as complete,
        otherwise they are removed."""
        temps = [partial_path(p) for p in finals]
        with self.lock:
            self._pending.update(temps)
        try:
            yield temps
        except BaseException:
            self._remove(temps)
            raise
        with self.lock:
            for temp, final in zip(temps, finals):
                os.replace(temp, final)
            self._pending.difference_update(temps)
            self.complete[name] = list(finals)

    def _remove(self, temps) -> None:
        with self.lock:
            for temp in temps:
                with contextlib.suppress(OSError):
                    os.remove(temp)
            self._pending.difference_update(temps)

    def discard_pending(self) -> None:
        """Removes the files of outputs still being written (the caller holds `lock`)."""
        for temp in list(self._pending):
            with contextlib.suppress(OSError):
                os.remove(temp)
        self._pending.clear()

    def sizes(self) -> Dict[str, Dict[str, int]]:
        """{output name: {file name: bytes}} of the complete outputs."""
        return {name: {os.path.basename(p): os.path.getsize(p) for p in paths}
                for name, paths in self.complete.items()}

    def write_json(self, name: str, obj: Any) -> str:
        """Writes obj as <folder>/<name> (through a partial file); returns the path."""
        final = os.path.join(self.folder, name)
        temp = partial_path(final)
        with open(temp, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(temp, final)
        return final
