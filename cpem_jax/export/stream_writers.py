"""Writers that take one frame at a time, for live runs: every row is flushed when written, so a
crash or Ctrl-C leaves files that are valid up to the last frame.

    writer = CsvStreamWriter("out/blendshapes.csv", unit_names)
    writer.write(frame, time_s, found, expression, rotation, translation)   # one row, flushed
    writer.close()

  CsvStreamWriter       blendshapes.csv   the CSV of `csv_json` (same header, same row format);
                                          `frame` is the source frame's index, so dropped frames
                                          show as gaps
  JsonLinesStreamWriter blendshapes.jsonl JSON Lines: line 1 the track JSON's header (every key
                                          of `csv_json.track_json_header`, plus "format"), then
                                          one line per frame, each an entry of the JSON's
                                          `frames` (with "raw"); `complete_json` turns what was
                                          written into the usual blendshapes.json
  LiveLinkStreamWriter  livelink.csv      the Live Link Face CSV at its fixed rate (60 rows/s by
                                          default): each new frame adds the rows of the grid
                                          t0 + k / fps up to its time, interpolated linearly from
                                          the previous frame, as `livelink.write_livelink_csv`
                                          resamples a whole track

Rows hold what the caller passes (the live path passes smoothed values, and the raw ones to the
JSON Lines). `read_json_lines` reads a .jsonl back into a `FrameTrack`, ignoring an unfinished
last line.
"""
from __future__ import annotations

import csv
import io
import json
import os
import threading
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from cpem_jax.export.arkit import ARKIT_NAMES, ArkitMapping, build_arkit_mapping
from cpem_jax.export.csv_json import (csv_header, csv_row, frame_json, track_from_json,
                                      track_json_header)
from cpem_jax.export.livelink import (APP_FPS, BLENDSHAPE_COUNT, EYE_MODES, LIVELINK_HEADER,
                                      LIVELINK_SHAPES, LIVELINK_TO_ARKIT, eye_angles,
                                      format_timecode, head_angles)
from cpem_jax.export.schema import FrameTrack, wrap_angle

JSONL_FORMAT = "cpem-jax track jsonl"


class _LineFile:
    """A text file written a whole line at a time and flushed after each (thread-safe)."""

    def __init__(self, path: str, newline: str = "\r\n"):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._file = open(path, "w", newline="")
        self._newline = newline
        self.lock = threading.Lock()
        self.rows = 0

    def csv_lines(self, rows: Sequence[Sequence[Any]]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator=self._newline)
        writer.writerows(rows)
        self.text(text.getvalue())

    def text(self, text: str) -> None:
        with self.lock:
            if self._file.closed:
                raise ValueError(f"{self.path} is closed")
            self._file.write(text)
            self._file.flush()

    def close(self) -> None:
        with self.lock:
            if not self._file.closed:
                self._file.close()


class CsvStreamWriter:
    """blendshapes.csv one row at a time (module doc).

    Args:
      path: the .csv file (created, or emptied).
      unit_names: the K model units the rows carry.
      mapping: default build_arkit_mapping(unit_names).
    """

    def __init__(self, path: str, unit_names: Sequence[str],
                 mapping: Optional[ArkitMapping] = None):
        self.mapping = mapping or build_arkit_mapping(unit_names)
        index = {u: k for k, u in enumerate(self.mapping.unit_names)}
        self._extra = [index[u] for u in self.mapping.unmapped_units]
        self._file = _LineFile(path)
        self._file.csv_lines([csv_header(self.mapping)])
        self.path = path

    @property
    def rows(self) -> int:
        return self._file.rows

    def write(self, frame: int, time_s: float, found: bool, expression: np.ndarray,
              rotation: np.ndarray, translation: np.ndarray) -> None:
        """One frame: expression [K] unit weights, rotation [3] radians, translation [3] cm."""
        expression = np.asarray(expression, np.float32)
        self._file.csv_lines([csv_row(frame, time_s, found, self.mapping.to_arkit(expression),
                                      rotation, translation, expression[self._extra])])
        self._file.rows += 1

    def close(self) -> None:
        self._file.close()


class JsonLinesStreamWriter:
    """blendshapes.jsonl one frame per line (module doc); keeps the frames for `complete_json`.

    Args:
      path: the .jsonl file.
      unit_names: the K model units.
      fps: the source's frame rate.
      smoothing: the smoothing settings to record, or None.
      extra_header: more keys for the first line (e.g. {"live": true}).
    """

    def __init__(self, path: str, unit_names: Sequence[str], fps: float,
                 smoothing: Optional[Dict[str, Any]] = None,
                 extra_header: Optional[Dict[str, Any]] = None):
        self.mapping = build_arkit_mapping(unit_names)
        self.header = {**track_json_header(self.mapping, fps, smoothing), "format": JSONL_FORMAT,
                       **(extra_header or {})}
        self._file = _LineFile(path, newline="\n")
        self._file.text(json.dumps(self.header, separators=(",", ":"), allow_nan=False) + "\n")
        self.frames: List[Dict[str, Any]] = []
        self.path = path

    @property
    def rows(self) -> int:
        return len(self.frames)

    def write(self, frame: int, time_s: float, found: bool, expression: np.ndarray,
              rotation: np.ndarray, translation: np.ndarray, raw=None,
              extra: Optional[Dict[str, Any]] = None) -> None:
        """One frame (as `CsvStreamWriter.write`); raw = None or the unsmoothed (expression [K],
        rotation [3], translation [3]); extra: more keys for this frame's entry."""
        to_arkit = self.mapping.to_arkit
        raw_entry = None if raw is None else (to_arkit(raw[0]), raw[0], raw[1], raw[2])
        entry = frame_json(frame, time_s, found, to_arkit(expression), expression, rotation,
                           translation, raw_entry)
        entry.update(extra or {})
        self._file.text(json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n")
        self.frames.append(entry)

    def complete_json(self, path: str) -> None:
        """Writes the frames so far as one track JSON (`csv_json` schema, read by
        `csv_json.read_json`); raises ValueError when no frame was written."""
        if not self.frames:
            raise ValueError("no frame was written; there is no track to complete")
        header = {k: v for k, v in self.header.items() if k != "format"}
        obj = {**header, "n_frames": len(self.frames), "frames": self.frames}
        with open(path, "w") as f:
            json.dump(obj, f, separators=(",", ":"), allow_nan=False)

    def close(self) -> None:
        self._file.close()


def read_json_lines(path: str) -> FrameTrack:
    """A .jsonl written by `JsonLinesStreamWriter` -> FrameTrack (raw values included when every
    frame has them); a last line cut short (a killed writer) is ignored.

    Raises ValueError naming the file when it is not such a file or holds no frame."""
    with open(path) as f:
        lines = f.read().split("\n")
    complete = lines[:-1]  # The text after the last newline is not a finished line.
    try:
        header = json.loads(complete[0])
        frames = [json.loads(line) for line in complete[1:] if line]
    except (IndexError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a cpem-jax JSON Lines track ({error})") from None
    if header.get("format") != JSONL_FORMAT:
        raise ValueError(f"{path} is not a cpem-jax JSON Lines track (format "
                         f"{header.get('format')!r})")
    if not frames:
        raise ValueError(f"{path} holds no frame")
    return track_from_json({**header, "n_frames": len(frames), "frames": frames})


class LiveLinkStreamWriter:
    """livelink.csv at a fixed rate, appended as frames arrive (module doc).

    Args:
      path: the .csv file.
      unit_names: the K model units.
      eyes: "derived" or "zero" (as `write_livelink_csv`).
      fps: rows per second (the app's 60).
      start_seconds: timecode of the first row.
    """

    def __init__(self, path: str, unit_names: Sequence[str], eyes: str = "derived",
                 fps: float = APP_FPS, start_seconds: float = 0.0):
        if eyes not in EYE_MODES:
            raise ValueError(f"eyes must be one of {EYE_MODES}, got {eyes!r}")
        if not fps > 0:
            raise ValueError(f"the Live Link rate must be positive, got {fps}")
        self.mapping = build_arkit_mapping(unit_names)
        self.eyes, self.fps, self.start_seconds = eyes, float(fps), float(start_seconds)
        self._order = [ARKIT_NAMES.index(LIVELINK_TO_ARKIT[n]) for n in LIVELINK_SHAPES]
        self._file = _LineFile(path, newline="\n")
        self._file.csv_lines([LIVELINK_HEADER])
        self._t0: Optional[float] = None
        self._last: Optional[tuple] = None  # (t, arkit [52], unwrapped rotation [3])
        self._next = 0                       # index of the next grid row
        self.path = path

    @property
    def rows(self) -> int:
        return self._next

    def write(self, time_s: float, expression: np.ndarray, rotation: np.ndarray) -> int:
        """Adds frame (time_s, expression [K], rotation [3] radians); returns the rows written.

        Raises ValueError when time_s does not increase."""
        arkit = self.mapping.to_arkit(np.asarray(expression, np.float32)).astype(np.float64)
        rotation = np.asarray(rotation, np.float64)
        t = float(time_s)
        if self._last is None:
            self._t0, unwrapped = t, rotation
            rows = [(t, arkit, unwrapped)]
        else:
            t_prev, arkit_prev, rot_prev = self._last
            if not t > t_prev:
                raise ValueError(f"Live Link frames must come in time order: {t} after {t_prev}")
            unwrapped = rot_prev + wrap_angle(rotation - wrap_angle(rot_prev))
            rows = []
            while True:
                grid = self._t0 + self._next / self.fps
                if grid > t + 1e-6 / self.fps:
                    break
                w = (grid - t_prev) / (t - t_prev)
                rows.append((grid, arkit_prev + w * (arkit - arkit_prev),
                             rot_prev + w * (unwrapped - rot_prev)))
                self._next += 1
        if self._last is None:
            self._next = 1
        self._last = (t, arkit, unwrapped)
        self._file.csv_lines([self._row(*r) for r in rows])
        return len(rows)

    def _row(self, grid: float, arkit: np.ndarray, rotation: np.ndarray) -> List[Any]:
        arkit = np.clip(arkit, 0.0, 1.0).astype(np.float32)[None]
        head = head_angles(wrap_angle(rotation)[None])[0]
        eye = eye_angles(arkit)[0] if self.eyes == "derived" else np.zeros(6, np.float32)
        values = np.concatenate([arkit[0, self._order], head, eye])
        return [format_timecode(grid - self._t0 + self.start_seconds, self.fps),
                BLENDSHAPE_COUNT, *(f"{v:.6f}" for v in values)]

    def close(self) -> None:
        self._file.close()
