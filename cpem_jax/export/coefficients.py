"""The coefficient file: a `VideoEstimate` on disk, for programs (.npz) and people (.json).

  NAME.npz   arrays, one row per input frame (exact):
    frame_index [N] int64, timestamp_s [N] float64, face_found [N] bool,
    expression [N, K] float32 in [0, 1] (model unit order, see unit_names),
    rotation [N, 3] float32 radians (pitch, yaw, roll; R = Rz Ry Rx),
    translation [N, 3] float32 cm (added to the camera's rest position),
    lighting [N, 3, 9] float32 SH coefficients (R, G, B),
    identity [N, K_id] float32 and albedo [N, K_alb] float32 (equal rows for a locked-identity
      fit; per-frame predictions for the network),
    crop_affine [N, 2, 3] float64 image pixels -> crop pixels,
    landmarks_detected [N, 68, 2] float32 and landmarks_fitted [N, 68, 2] float32, image pixels,
    unit_names [K] str, plus scalars fps, crop_size, focal_px, distance_cm, face_model, method,
    schema_version.
  NAME.json  the same per frame: {"schema_version", "method", "face_model", "fps", "unit_names",
    "identity": [...] (when locked), "frames": [{"frame", "time", "face_found",
    "expression": {unit: weight}, "rotation": [3], "translation": [3]}]}.
Frames without a face have face_found = false and NaN values in the .npz (null in the JSON), so
they are never mistaken for a neutral face.
"""
from __future__ import annotations

import json
import os
from typing import Tuple

import numpy as np

from cpem_jax.estimation.video_estimate import VideoEstimate
from cpem_jax.geometry.camera import crop_camera

SCHEMA_VERSION = "1.0"
_ROWS = ("frame_index", "timestamp_s", "face_found", "crop_affine", "landmarks_detected")
_SPREAD = ("expression", "rotation", "translation", "lighting", "identity", "albedo")
_ARRAYS = _ROWS + _SPREAD + ("landmarks_fitted",)


def save_coefficients(estimate: VideoEstimate, stem: str) -> Tuple[str, str]:
    """Writes stem.npz and stem.json; returns both paths."""
    os.makedirs(os.path.dirname(os.path.abspath(stem)) or ".", exist_ok=True)
    arrays = {name: getattr(estimate, name) for name in _ROWS}
    arrays.update({name: estimate.per_frame(name) for name in _SPREAD})
    arrays["landmarks_fitted"] = estimate.landmarks_fitted_image()
    camera = estimate.camera
    scalars = {"unit_names": np.asarray(estimate.unit_names, np.str_), "fps": estimate.fps,
               "crop_size": estimate.crop_size, "focal_px": float(camera.focal),
               "distance_cm": -float(camera.base_translation[2]),
               "face_model": estimate.face_model, "method": estimate.method,
               "schema_version": SCHEMA_VERSION}
    np.savez(stem + ".npz", **arrays, **{k: np.asarray(v) for k, v in scalars.items()})
    with open(stem + ".json", "w") as f:
        json.dump(coefficients_json(estimate), f, indent=1)
    return stem + ".npz", stem + ".json"


def coefficients_json(estimate: VideoEstimate) -> dict:
    """The .json document of an estimate (module docstring)."""
    def clean(row):
        return [None if not np.isfinite(v) else round(float(v), 6) for v in np.ravel(row)]

    expression = estimate.per_frame("expression")
    rotation, translation = estimate.per_frame("rotation"), estimate.per_frame("translation")
    frames = []
    for i in range(estimate.n_frames):
        found = bool(estimate.face_found[i])
        frames.append({
            "frame": int(estimate.frame_index[i]),
            "time": round(float(estimate.timestamp_s[i]), 6), "face_found": found,
            "expression": ({u: round(float(w), 6) for u, w in
                            zip(estimate.unit_names, expression[i])} if found else None),
            "rotation": clean(rotation[i]) if found else None,
            "translation": clean(translation[i]) if found else None,
        })
    locked = estimate.frame_identity is None and estimate.n_found > 0
    return {"schema_version": SCHEMA_VERSION, "method": estimate.method,
            "face_model": estimate.face_model, "fps": estimate.fps,
            "unit_names": list(estimate.unit_names),
            "rotation_convention": "radians (pitch, yaw, roll), R = Rz(roll) Ry(yaw) Rx(pitch)",
            "translation_unit": "cm",
            "identity": clean(estimate.identity) if locked else None,
            "frames": frames}


def load_coefficients(path: str) -> VideoEstimate:
    """Reads stem.npz (path with or without the extension) back into a VideoEstimate (no crops).

    An identity that is the same on every frame with a face is read as a locked identity.
    """
    path = path if path.endswith(".npz") else path + ".npz"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"coefficient file {path!r} does not exist; produce one with "
                                f"`cpem-jax fit` or `cpem-jax retarget`")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r} is not a readable .npz file ({type(error).__name__})"
                         ) from None
    with data:
        missing = [k for k in _ARRAYS + ("unit_names", "schema_version") if k not in data]
        if missing:
            raise ValueError(f"{path!r} is not a cpem-jax coefficient file (lacks {missing})")
        found = data["face_found"].astype(bool)
        rows = {k: data[k][found] for k in _SPREAD}
        identity = rows["identity"]
        locked = len(identity) > 0 and np.allclose(identity, identity[0], equal_nan=True)
        affine = data["crop_affine"].astype(np.float64)
        fitted = data["landmarks_fitted"][found]
        fitted = np.stack([lm @ a[:, :2].T + a[:, 2] for lm, a in zip(fitted, affine[found])]
                          ) if len(fitted) else np.zeros((0, 68, 2), np.float32)
        return VideoEstimate(
            frame_index=data["frame_index"].astype(np.int64),
            timestamp_s=data["timestamp_s"].astype(np.float64), face_found=found,
            crop_affine=affine, landmarks_detected=data["landmarks_detected"].astype(np.float32),
            identity=(identity[0] if len(identity) else np.zeros(identity.shape[1:])
                      ).astype(np.float32),
            albedo=(rows["albedo"][0] if len(identity) else np.zeros(rows["albedo"].shape[1:])
                    ).astype(np.float32),
            expression=rows["expression"], rotation=rows["rotation"],
            translation=rows["translation"], lighting=rows["lighting"],
            landmarks_fitted=fitted.astype(np.float32),
            camera=crop_camera(int(data["crop_size"]),
                               float(data["focal_px"]) / int(data["crop_size"]),
                               float(data["distance_cm"])),
            unit_names=tuple(str(u) for u in data["unit_names"]), fps=float(data["fps"]),
            face_model=str(data["face_model"]), method=str(data["method"]),
            frame_identity=None if locked else identity.astype(np.float32))
