"""Live Link Face CSV: the file the iPhone app records, so Unreal and Blender importers read ours.

Layout (`LIVELINK_HEADER`): `Timecode`, `BlendShapeCount` (always 61: 52 shapes + 9 angles), the
52 ARKit shapes in the app's order and PascalCase names, then HeadYaw, HeadPitch, HeadRoll,
LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll. Lines end in LF.

Rate: the app records at 60 frames per second and importers assume it (some keep every second
row to make 30 fps keys), so the track is resampled to `fps` (default `APP_FPS` = 60) before it
is written: linear interpolation of the weights and angles at t0 + k / fps (`schema.resample_track`).

Timecode: `HH:MM:SS:FF.fff`, as the app writes it: FF the whole frame within the second at the
nominal (rounded, non-drop) rate of the file and `.fff` the sub-frame, the fraction of a frame in
thousandths; the first row is at `start_seconds` (default 0).

Angles are radians in the app's conventions, which are Unreal's conversion of ARKit's:
  * ARKit's face anchor is right-handed, +x the face's own left, +y up, +z out of the face, as our
    model space is (Apple: a look-at point "to the left" has a positive x), so a head turn or gaze
    toward the subject's left is a positive rotation about +y in both.
  * Unreal's ARKit conversion maps ARKit (x, y, z) to Unreal (-z, x, y): a change of handedness,
    under which a rotation of angle a about ARKit's +y or +z reads as Yaw -a or Roll -a in
    Unreal's FRotator, and one about +x as Pitch +a.
  * A recording from the app confirms it for the eyes: LeftEyeYaw rises with EyeLookInLeft and
    RightEyeYaw falls with EyeLookInRight, i.e. positive eye yaw is gaze toward the subject's
    right. The head goes through the same conversion.
So, with our (pitch, yaw, roll) = R = Rz(roll) Ry(yaw) Rx(pitch) (positive yaw turns the nose to
the subject's left, positive pitch looks down):
    HeadYaw = -yaw   (positive: the nose toward the subject's right)
    HeadPitch = pitch (positive: looking down)
    HeadRoll = -roll
Eye angles (`eyes="derived"`, default) come from the eyeLook* weights, in the same conventions:
    LeftEyeYaw   = (eyeLookInLeft - eyeLookOutLeft) * EYE_YAW_RANGE   (toward the subject's right)
    RightEyeYaw  = (eyeLookOutRight - eyeLookInRight) * EYE_YAW_RANGE
    XEyePitch    = (eyeLookDownX - eyeLookUpX) * EYE_PITCH_RANGE        (positive: looking down)
    XEyeRoll     = 0
Each eye has its own yaw, so converging eyes (both eyeLookIn) give yaws of opposite sign, as the
app's per-eye transforms do. ARKit's eyes do not turn about their z axis, and an eye turned by
yaw then pitch (Ry Rx, ARKit's eye transform) converts to a zero FRotator roll, hence roll 0.
EYE_PITCH_RANGE is 35 degrees per unit of eyeLookDown, the ratio of LeftEyePitch to
EyeLookDownLeft in the app's recording; EYE_YAW_RANGE 30 degrees per unit of eyeLookIn/Out.
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
from cpem_jax.export.schema import FrameTrack, resample_track

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
APP_FPS = 60.0
EYE_YAW_RANGE = math.radians(30.0)
EYE_PITCH_RANGE = math.radians(35.0)
EYE_MODES = ("derived", "zero")

# Live Link PascalCase name -> ARKit name (the same name with a lower-case first letter).
_ARKIT_BY_LOWER = {n.lower(): n for n in ARKIT_NAMES}
LIVELINK_TO_ARKIT = {name: _ARKIT_BY_LOWER[name.lower()] for name in LIVELINK_SHAPES}


def format_timecode(seconds: float, fps: float) -> str:
    """Seconds -> `HH:MM:SS:FF.fff` at the nominal rate round(fps) (module doc)."""
    rate = max(int(round(fps)), 1)
    frames = seconds * rate
    whole = int(math.floor(frames + 1e-6))
    millis = min(int(round((frames - whole) * 1000.0)), 999) if frames > whole else 0
    ff = whole % rate
    total_seconds = whole // rate
    hh, rem = divmod(total_seconds, 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh % 24:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{millis:03d}"


def head_angles(rotation: np.ndarray) -> np.ndarray:
    """rotation [N, 3] our (pitch, yaw, roll) radians -> [N, 3] the app's (HeadYaw, HeadPitch,
    HeadRoll) radians (module doc)."""
    rotation = np.asarray(rotation, np.float32)
    return np.stack([-rotation[:, 1], rotation[:, 0], -rotation[:, 2]], axis=-1)


def eye_angles(arkit: np.ndarray) -> np.ndarray:
    """arkit [N, 52] weights in ARKIT_NAMES order -> [N, 6] radians, the app's (yaw, pitch, roll)
    of the left then the right eye (module doc)."""
    col = {n: arkit[:, i] for i, n in enumerate(ARKIT_NAMES)}
    zero = np.zeros(arkit.shape[0], np.float32)
    left_yaw = (col["eyeLookInLeft"] - col["eyeLookOutLeft"]) * EYE_YAW_RANGE
    right_yaw = (col["eyeLookOutRight"] - col["eyeLookInRight"]) * EYE_YAW_RANGE
    left_pitch = (col["eyeLookDownLeft"] - col["eyeLookUpLeft"]) * EYE_PITCH_RANGE
    right_pitch = (col["eyeLookDownRight"] - col["eyeLookUpRight"]) * EYE_PITCH_RANGE
    return np.stack([left_yaw, left_pitch, zero, right_yaw, right_pitch, zero], axis=-1)


def write_livelink_csv(track: FrameTrack, path: os.PathLike | str,
                       mapping: Optional[ArkitMapping] = None, eyes: str = "derived",
                       start_seconds: float = 0.0, fps: Optional[float] = APP_FPS) -> int:
    """Writes a Live Link Face CSV (module doc).

    Args:
      track: N frames.
      path: output .csv path (parent folders are created).
      mapping: default: build_arkit_mapping(track.unit_names).
      eyes: "derived" (from the eyeLook* weights) or "zero".
      start_seconds: timecode of the first row, seconds since midnight.
      fps: rows per second (the track is resampled); None keeps the track's own frames.
    Returns:
      the number of rows written (M = floor((t_last - t_0) * fps) + 1 when resampled).
    """
    if eyes not in EYE_MODES:
        raise ValueError(f"eyes must be one of {EYE_MODES}, got {eyes!r}")
    if fps is not None and not fps > 0:
        raise ValueError(f"the Live Link rate must be positive, got {fps}")
    mapping = mapping or build_arkit_mapping(track.unit_names)
    if fps is not None:
        track = resample_track(track, fps)
    arkit = mapping.to_arkit(track.expression)
    order = [ARKIT_NAMES.index(LIVELINK_TO_ARKIT[n]) for n in LIVELINK_SHAPES]
    shapes = np.clip(arkit[:, order], 0.0, 1.0)
    head = head_angles(track.rotation)
    eye = eye_angles(arkit) if eyes == "derived" else np.zeros((track.n_frames, 6), np.float32)
    times = track.timestamps - track.timestamps[0] + start_seconds
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(LIVELINK_HEADER)
        for i in range(track.n_frames):
            values = np.concatenate([shapes[i], head[i], eye[i]])
            writer.writerow([format_timecode(float(times[i]), track.fps), BLENDSHAPE_COUNT,
                             *(f"{v:.6f}" for v in values)])
    return track.n_frames


def read_livelink_csv(path: os.PathLike | str) -> tuple:
    """Reads a Live Link Face CSV -> (timecodes [N] str, names (61), values [N, 61] float32)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header: Sequence[str] = rows[0]
    if tuple(header[:2]) != ("Timecode", "BlendShapeCount"):
        raise ValueError(f"{path} is not a Live Link Face CSV (header starts {header[:2]})")
    values = np.array([[float(v) for v in r[2:]] for r in rows[1:]], np.float32)
    return [r[0] for r in rows[1:]], tuple(header[2:]), values
