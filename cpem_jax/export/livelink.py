"""Live Link Face CSV: the file the iPhone app records, so Unreal and Blender importers read ours.

Layout (`LIVELINK_HEADER`): `Timecode`, `BlendShapeCount` (always 61: 52 shapes + 9 angles), the
52 ARKit shapes in the app's order and PascalCase names, then HeadYaw, HeadPitch, HeadRoll,
LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll.

Timecode: `HH:MM:SS:FF.mmm`, FF the whole frame within the second at the nominal (rounded,
non-drop) frame rate and `.mmm` the sub-frame fraction in thousandths; it starts at
`start_seconds` (default 0) plus the track's first timestamp being shifted to 0.

Angles are written in radians (as ARKit reports them). Head angles are the track's rotation,
unchanged: yaw about +y (positive turns the nose toward the subject's left), pitch about +x
(positive looks down), roll about +z. The app's own sign conventions could not be checked
against a device here; flip signs in the importer if a character turns the wrong way.

Eye angles (`eyes="derived"`, default) come from the eyeLook* weights, each direction scaled to
`EYE_YAW_RANGE` / `EYE_PITCH_RANGE` at weight 1, with the signs above (positive yaw = gaze toward
the subject's left, positive pitch = gaze down):
    left eye  yaw = (eyeLookOutLeft - eyeLookInLeft) * EYE_YAW_RANGE
    right eye yaw = (eyeLookInRight - eyeLookOutRight) * EYE_YAW_RANGE
    pitch         = (eyeLookDown - eyeLookUp) * EYE_PITCH_RANGE       (per eye)
    roll          = 0.
`eyes="zero"` writes 0 for all six eye angles. Frames without a face hold the track's filled
values (see `schema`).
"""
from __future__ import annotations

import csv
import math
import os
from typing import Optional, Sequence

import numpy as np

from cpem_jax.export.arkit import ARKIT_NAMES, ArkitMapping, build_arkit_mapping
from cpem_jax.export.schema import FrameTrack

LIVELINK_SHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight",
    "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut",
)
LIVELINK_ANGLES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                   "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
LIVELINK_HEADER = ("Timecode", "BlendShapeCount", *LIVELINK_SHAPES, *LIVELINK_ANGLES)
BLENDSHAPE_COUNT = len(LIVELINK_SHAPES) + len(LIVELINK_ANGLES)  # 61, as the app writes
EYE_YAW_RANGE = math.radians(30.0)
EYE_PITCH_RANGE = math.radians(25.0)
EYE_MODES = ("derived", "zero")

# Live Link PascalCase name -> ARKit name (the same name with a lower-case first letter).
_ARKIT_BY_LOWER = {n.lower(): n for n in ARKIT_NAMES}
LIVELINK_TO_ARKIT = {name: _ARKIT_BY_LOWER[name.lower()] for name in LIVELINK_SHAPES}


def format_timecode(seconds: float, fps: float) -> str:
    """Seconds -> `HH:MM:SS:FF.mmm` at the nominal rate round(fps) (module doc)."""
    rate = max(int(round(fps)), 1)
    frames = seconds * rate
    whole = int(math.floor(frames + 1e-6))
    millis = min(int(round((frames - whole) * 1000.0)), 999) if frames > whole else 0
    ff = whole % rate
    total_seconds = whole // rate
    hh, rem = divmod(total_seconds, 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh % 24:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{millis:03d}"


def eye_angles(arkit: np.ndarray) -> np.ndarray:
    """arkit [N, 52] weights in ARKIT_NAMES order -> [N, 6] radians, (yaw, pitch, roll) of the
    left then the right eye (module doc)."""
    col = {n: arkit[:, i] for i, n in enumerate(ARKIT_NAMES)}
    zero = np.zeros(arkit.shape[0], np.float32)
    left_yaw = (col["eyeLookOutLeft"] - col["eyeLookInLeft"]) * EYE_YAW_RANGE
    right_yaw = (col["eyeLookInRight"] - col["eyeLookOutRight"]) * EYE_YAW_RANGE
    left_pitch = (col["eyeLookDownLeft"] - col["eyeLookUpLeft"]) * EYE_PITCH_RANGE
    right_pitch = (col["eyeLookDownRight"] - col["eyeLookUpRight"]) * EYE_PITCH_RANGE
    return np.stack([left_yaw, left_pitch, zero, right_yaw, right_pitch, zero], axis=-1)


def write_livelink_csv(track: FrameTrack, path: os.PathLike | str,
                       mapping: Optional[ArkitMapping] = None, eyes: str = "derived",
                       start_seconds: float = 0.0) -> None:
    """Writes a Live Link Face CSV (module doc).

    Args:
      track: N frames.
      path: output .csv path (parent folders are created).
      mapping: default: build_arkit_mapping(track.unit_names).
      eyes: "derived" (from the eyeLook* weights) or "zero".
      start_seconds: timecode of the first frame, seconds since midnight.
    """
    if eyes not in EYE_MODES:
        raise ValueError(f"eyes must be one of {EYE_MODES}, got {eyes!r}")
    mapping = mapping or build_arkit_mapping(track.unit_names)
    arkit = mapping.to_arkit(track.expression)
    order = [ARKIT_NAMES.index(LIVELINK_TO_ARKIT[n]) for n in LIVELINK_SHAPES]
    shapes = np.clip(arkit[:, order], 0.0, 1.0)
    pitch, yaw, roll = (track.rotation[:, i] for i in range(3))
    head = np.stack([yaw, pitch, roll], axis=-1)
    eye = eye_angles(arkit) if eyes == "derived" else np.zeros((track.n_frames, 6), np.float32)
    times = track.timestamps - track.timestamps[0] + start_seconds
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LIVELINK_HEADER)
        for i in range(track.n_frames):
            values = np.concatenate([shapes[i], head[i], eye[i]])
            writer.writerow([format_timecode(float(times[i]), track.fps), BLENDSHAPE_COUNT,
                             *(f"{v:.6f}" for v in values)])


def read_livelink_csv(path: os.PathLike | str) -> tuple:
    """Reads a Live Link Face CSV -> (timecodes [N] str, names (61), values [N, 61] float32)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header: Sequence[str] = rows[0]
    if tuple(header[:2]) != ("Timecode", "BlendShapeCount"):
        raise ValueError(f"{path} is not a Live Link Face CSV (header starts {header[:2]})")
    values = np.array([[float(v) for v in r[2:]] for r in rows[1:]], np.float32)
    return [r[0] for r in rows[1:]], tuple(header[2:]), values
