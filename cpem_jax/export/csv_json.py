"""Our per-frame CSV and JSON files (ARKit blendshape names, head pose, timestamps, face flag).

CSV, one header row then one row per frame, columns in this fixed order:

    frame, time, face_found,
    the 52 ARKit names in `arkit.ARKIT_NAMES` order (weights in [0, 1]),
    head_pitch, head_yaw, head_roll (radians), head_tx, head_ty, head_tz (cm),
    then one column per model unit with no ARKit counterpart (named by the unit; none for ICT).

`face_found` is 1 or 0; frames without a face hold the values the track was filled with (0 by
default, see `schema`), never NaN. The CSV holds the smoothed values only.

JSON (`TRACK_JSON_SCHEMA` is the formal schema, `schema_version` "1.0"):

    {"schema_version": "1.0", "generator": "cpem-jax", "fps": 30.0, "n_frames": N,
     "conventions": {...text...},
     "blendshape_names": [52 ARKit names], "unit_names": [K model units],
     "arkit_sources": {ARKit name: [units averaged into it]},
     "missing_arkit": [ARKit names no unit feeds, written as 0],
     "unmapped_units": [units with no ARKit name],
     "smoothing": {SmoothingConfig as a dict} or null,
     "frames": [{"frame": i, "time": s, "face_found": bool,
                 "blendshapes": [52], "units": [K],
                 "head_rotation": [pitch, yaw, roll], "head_translation": [x, y, z],
                 "raw": {same four arrays, unsmoothed}   (only when the track has raw values)
                }, ...]}

`units` keeps the model's own K weights so `read_json` rebuilds the exact `FrameTrack`.
Numbers are rounded to 6 decimals.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np

from cpem_jax.export.arkit import ARKIT_NAMES, ArkitMapping, build_arkit_mapping
from cpem_jax.export.schema import FrameTrack

SCHEMA_VERSION = "1.0"
POSE_COLUMNS = ("head_pitch", "head_yaw", "head_roll", "head_tx", "head_ty", "head_tz")
FRAME_COLUMNS = ("frame", "time", "face_found")
CONVENTIONS = {
    "blendshapes": "ARKit weights in [0, 1]; unsided ARKit shapes are the mean of the model's "
                   "_L/_R halves; ARKit names without a model unit are 0",
    "head_rotation": "radians, Euler (pitch about x, yaw about y, roll about z), "
                     "R = Rz(roll) Ry(yaw) Rx(pitch); model space +y up, face toward +z",
    "head_translation": "cm, the model's offset from the camera's rest position",
    "no_face": "frames with face_found false hold filled values (0 unless the track was built "
               "with missing='hold'), never NaN",
}

_ARRAY = {"type": "array", "items": {"type": "number"}}
_FRAME_VALUES = {
    "blendshapes": {**_ARRAY, "minItems": 52, "maxItems": 52},
    "units": _ARRAY,
    "head_rotation": {**_ARRAY, "minItems": 3, "maxItems": 3},
    "head_translation": {**_ARRAY, "minItems": 3, "maxItems": 3},
}
TRACK_JSON_SCHEMA: Dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cpem-jax frame track",
    "type": "object",
    "required": ["schema_version", "fps", "n_frames", "blendshape_names", "unit_names",
                 "arkit_sources", "missing_arkit", "unmapped_units", "smoothing", "frames"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "generator": {"type": "string"},
        "fps": {"type": "number", "exclusiveMinimum": 0},
        "n_frames": {"type": "integer", "minimum": 1},
        "conventions": {"type": "object"},
        "blendshape_names": {"type": "array", "items": {"type": "string"},
                             "minItems": 52, "maxItems": 52},
        "unit_names": {"type": "array", "items": {"type": "string"}},
        "arkit_sources": {"type": "object",
                          "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "missing_arkit": {"type": "array", "items": {"type": "string"}},
        "unmapped_units": {"type": "array", "items": {"type": "string"}},
        "smoothing": {"type": ["object", "null"]},
        "frames": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["frame", "time", "face_found", *_FRAME_VALUES],
                "properties": {
                    "frame": {"type": "integer", "minimum": 0},
                    "time": {"type": "number"},
                    "face_found": {"type": "boolean"},
                    **_FRAME_VALUES,
                    "raw": {"type": "object", "required": list(_FRAME_VALUES),
                            "properties": _FRAME_VALUES},
                },
            },
        },
    },
}


def csv_header(mapping: ArkitMapping) -> List[str]:
    """The CSV column names for a track whose units are `mapping.unit_names`."""
    return [*FRAME_COLUMNS, *ARKIT_NAMES, *POSE_COLUMNS, *mapping.unmapped_units]


def _unit_columns(track: FrameTrack, names, expression: np.ndarray) -> np.ndarray:
    """expression [N, K] -> [N, len(names)] the columns of the named units."""
    index = {u: k for k, u in enumerate(track.unit_names)}
    return expression[:, [index[u] for u in names]]


def write_csv(track: FrameTrack, path: os.PathLike | str,
              mapping: Optional[ArkitMapping] = None) -> ArkitMapping:
    """Writes the per-frame CSV (module doc). Returns the ARKit mapping used.

    Args:
      track: N frames.
      path: output .csv path (parent folders are created).
      mapping: default: build_arkit_mapping(track.unit_names).
    """
    mapping = mapping or build_arkit_mapping(track.unit_names)
    arkit = mapping.to_arkit(track.expression)
    extra = _unit_columns(track, mapping.unmapped_units, track.expression)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(csv_header(mapping))
        for i in range(track.n_frames):
            writer.writerow(csv_row(i, track.timestamps[i], track.face_found[i], arkit[i],
                                    track.rotation[i], track.translation[i], extra[i]))
    return mapping


def csv_row(frame: int, time_s: float, found: bool, arkit: np.ndarray, rotation: np.ndarray,
            translation: np.ndarray, extra: np.ndarray) -> List[str]:
    """One CSV row (module doc): arkit [52], rotation [3], translation [3], extra [U] (the
    unmapped units' weights) -> the row's fields as text."""
    values = np.concatenate([arkit, rotation, translation, extra])
    return [int(frame), f"{float(time_s):.6f}", int(bool(found)), *(f"{v:.6f}" for v in values)]


def _round(values: np.ndarray) -> List[float]:
    return np.round(np.asarray(values, np.float64), 6).tolist()


def track_to_json(track: FrameTrack, mapping: Optional[ArkitMapping] = None,
                  smoothing: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The JSON object of a track (module doc).

    Args:
      track: N frames.
      mapping: default: build_arkit_mapping(track.unit_names).
      smoothing: the smoothing settings to record (e.g. SmoothingConfig.to_dict()), or None.
    """
    mapping = mapping or build_arkit_mapping(track.unit_names)
    arkit = mapping.to_arkit(track.expression)
    arkit_raw = mapping.to_arkit(track.expression_raw) if track.has_raw else None
    rotation_raw = track.rotation_raw if track.rotation_raw is not None else track.rotation
    translation_raw = (track.translation_raw if track.translation_raw is not None
                       else track.translation)
    frames = []
    for i in range(track.n_frames):
        raw = None if arkit_raw is None else (arkit_raw[i], track.expression_raw[i],
                                              rotation_raw[i], translation_raw[i])
        frames.append(frame_json(i, track.timestamps[i], track.face_found[i], arkit[i],
                                 track.expression[i], track.rotation[i], track.translation[i],
                                 raw))
    return {**track_json_header(mapping, track.fps, smoothing), "n_frames": track.n_frames,
            "frames": frames}


def track_json_header(mapping: ArkitMapping, fps: float,
                      smoothing: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Every key of the track JSON but `n_frames` and `frames` (module doc)."""
    return {
        "schema_version": SCHEMA_VERSION, "generator": "cpem-jax", "fps": float(fps),
        "conventions": CONVENTIONS,
        "blendshape_names": list(ARKIT_NAMES), "unit_names": list(mapping.unit_names),
        "arkit_sources": {a: list(u) for a, u in mapping.sources.items()},
        "missing_arkit": list(mapping.missing_arkit),
        "unmapped_units": list(mapping.unmapped_units),
        "smoothing": smoothing,
    }


def frame_json(frame: int, time_s: float, found: bool, arkit: np.ndarray, units: np.ndarray,
               rotation: np.ndarray, translation: np.ndarray, raw=None) -> Dict[str, Any]:
    """One entry of the JSON's `frames` (module doc): arkit [52], units [K], rotation [3],
    translation [3]; raw = None or the unsmoothed (arkit, units, rotation, translation)."""
    entry = {"frame": int(frame), "time": round(float(time_s), 6), "face_found": bool(found),
             "blendshapes": _round(arkit), "units": _round(units),
             "head_rotation": _round(rotation), "head_translation": _round(translation)}
    if raw is not None:
        entry["raw"] = dict(zip(("blendshapes", "units", "head_rotation", "head_translation"),
                                (_round(v) for v in raw)))
    return entry


def write_json(track: FrameTrack, path: os.PathLike | str,
               mapping: Optional[ArkitMapping] = None,
               smoothing: Optional[Dict[str, Any]] = None) -> None:
    """Writes `track_to_json(track, mapping, smoothing)` to `path` (parent folders created)."""
    obj = track_to_json(track, mapping, smoothing)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), allow_nan=False)


def track_from_json(obj: Dict[str, Any]) -> FrameTrack:
    """Rebuilds a `FrameTrack` from a JSON object written by `track_to_json`."""
    version = obj.get("schema_version") if isinstance(obj, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(f"not a cpem-jax track JSON of schema_version {SCHEMA_VERSION!r} "
                         f"(found {version!r}); re-export it with this version")
    frames = obj["frames"]

    def stack(key, raw=False):
        return np.array([(f["raw"] if raw else f)[key] for f in frames], np.float32)

    has_raw = all("raw" in f for f in frames)
    return FrameTrack(
        timestamps=np.array([f["time"] for f in frames], np.float64),
        face_found=np.array([f["face_found"] for f in frames], bool),
        expression=stack("units"), unit_names=tuple(obj["unit_names"]),
        rotation=stack("head_rotation"), translation=stack("head_translation"), fps=obj["fps"],
        expression_raw=stack("units", True) if has_raw else None,
        rotation_raw=stack("head_rotation", True) if has_raw else None,
        translation_raw=stack("head_translation", True) if has_raw else None)


def read_json(path: os.PathLike | str) -> FrameTrack:
    """Reads a track JSON written by `write_json`."""
    with open(path) as f:
        return track_from_json(json.load(f))
