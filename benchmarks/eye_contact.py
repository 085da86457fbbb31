"""Gaze against a physical truth: frames where the subject looks into the lens.

When a person holds eye contact with the camera, each eye points from its eyeball centre at the
camera's centre, whatever the head does; turning the head by 15 degrees turns the eyes in the head
by 15 degrees the other way. For such frames (picked by eye, `experiments/labels/eye_contact.csv`:
video, first and last frame, note) this script takes a finished fit of the video, and per frame and
eye compares the fitted eye rotation (`dense_landmarks.gaze_angles`: eyeLook* weights times
GAZE_YAW / GAZE_PITCH degrees) with the rotation that points the eye at the camera given the fitted
head pose, identity and eyeball centre. The two eyes are averaged (the gaze of a point between
them): each eye also turns inward by a few degrees toward a camera half a metre away, and that
vergence depends on a distance a single camera measures poorly.

    cpem-jax fit ../shared/data/videos-more/liveportrait_s18.mp4 -o FITS/liveportrait_s18
    python benchmarks/eye_contact.py --fits FITS [--json OUT]

Reads FITS/<video stem>/coefficients.npz (`cpem-jax fit`, or `cpem-jax retarget ... --outputs
coefficients`), or with `--live` a live run's track and the profile it used:

    cpem-jax calibrate VIDEO -o LIVE/<stem>.npz
    cpem-jax retarget VIDEO -o LIVE/<stem> --live --identity LIVE/<stem>.npz --outputs json
    python benchmarks/eye_contact.py --fits LIVE --live

Frames without a face, and frames where either eye is fitted as shut (eyeBlink >= `--max-blink`:
a shut eye has no gaze), are left out and counted.

Per video and over all: the mean absolute error of yaw and pitch (degrees), the mean signed error
(a constant offset: where the lens is not exactly the fixated point, or the model's eye at rest is
not the head's forward), and the gain and correlation of a straight-line fit of fitted on required
angle (1 and 1 for a gaze that follows the head exactly). The required angle carries the fitted
head pose's own error (about 4-6 degrees per angle on AFLW2000-3D, experiments/dense_fit).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS = os.path.join(HERE, os.pardir, "experiments", "labels", "eye_contact.csv")
SIDES = ("left", "right")       # the subject's; eye 0 of the dense table is the left


def read_labels(path: str):
    """CSV rows (video, first, last, note) -> list of dicts with int frame bounds."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle)]
    for row in rows:
        row["first"], row["last"] = int(row["first"]), int(row["last"])
        if row["last"] < row["first"]:
            raise ValueError(f"{path}: {row['video']} has last {row['last']} < first "
                             f"{row['first']}")
    return rows


def required_angles(dense, estimate) -> np.ndarray:
    """Eye rotation in the head that points each eye at the camera: [N, 2 eyes, (yaw, pitch)]
    degrees, yaw toward the subject's left (+x), pitch positive looking down."""
    import jax.numpy as jnp
    from cpem_jax.face_model.dense_landmarks import eye_centres
    from cpem_jax.geometry.camera import transform
    from cpem_jax.geometry.rotation import euler_to_matrix
    rotation = euler_to_matrix(jnp.asarray(estimate.rotation, jnp.float32))        # [N, 3, 3]
    identity = jnp.broadcast_to(jnp.asarray(estimate.identity, jnp.float32),
                                (len(rotation),) + estimate.identity.shape) \
        if estimate.frame_identity is None else jnp.asarray(estimate.frame_identity, jnp.float32)
    eye_camera = np.asarray(transform(eye_centres(dense, identity), rotation,            # [N, 2, 3]
                                      jnp.asarray(estimate.translation, jnp.float32),
                                      estimate.camera), np.float64)
    rotation = np.asarray(rotation, np.float64)
    to_camera = -eye_camera / np.linalg.norm(eye_camera, axis=-1, keepdims=True)
    in_head = np.einsum("nji,nej->nei", rotation, to_camera)        # R^T: camera -> head axes
    yaw = np.arctan2(in_head[..., 0], in_head[..., 2])
    pitch = np.arcsin(np.clip(-in_head[..., 1], -1.0, 1.0))
    return np.degrees(np.stack([yaw, pitch], axis=-1))


def fitted_angles(model, dense, estimate) -> np.ndarray:
    """The fit's eye rotation [N, 2, (yaw, pitch)] degrees from its eyeLook* weights."""
    import jax.numpy as jnp
    from cpem_jax.face_model.dense_landmarks import gaze_angles
    expression = np.zeros((len(estimate.expression), model.n_expression), np.float32)
    for column, name in enumerate(estimate.unit_names):
        if name in model.expression_names:
            expression[:, model.expression_index(name)] = estimate.expression[:, column]
    return np.degrees(np.asarray(gaze_angles(dense, jnp.asarray(expression)), np.float64))


def blink(estimate) -> np.ndarray:
    """[N] the larger eyeBlink weight of the two eyes."""
    columns = [estimate.unit_names.index(n) for n in ("eyeBlink_L", "eyeBlink_R")
               if n in estimate.unit_names]
    return estimate.expression[:, columns].max(axis=1) if columns else np.zeros(
        len(estimate.expression))


def summarise(required: np.ndarray, fitted: np.ndarray) -> dict:
    """[M, 2, 2] required and fitted angles -> per angle of the mean of the two eyes: MAE, bias,
    gain, correlation."""
    out = {"frames": int(len(required))}
    for a, angle in enumerate(("yaw", "pitch")):
        x, y = required[:, :, a].mean(axis=1), fitted[:, :, a].mean(axis=1)
        stats = {"mae_deg": float(np.mean(np.abs(y - x))), "bias_deg": float(np.mean(y - x)),
                 "required_range_deg": [float(x.min()), float(x.max())] if len(x) else None}
        if len(x) > 2 and x.std() > 1e-6 and y.std() > 1e-6:
            slope, _ = np.polyfit(x, y, 1)
            stats.update(gain=float(slope), correlation=float(np.corrcoef(x, y)[0, 1]))
        out[angle] = stats
    return out


def load_track(folder: str, stem: str):
    """A live run's track as the fields `required_angles` and `fitted_angles` read.

    FOLDER/<stem>/blendshapes.json (`cpem-jax retarget ... --live --outputs json`: the raw model
    units, head rotation and translation of each frame) and FOLDER/<stem>.npz, the identity
    profile the run used (`cpem-jax calibrate ... -o FOLDER/<stem>.npz`, then `--identity`).
    """
    from types import SimpleNamespace
    from cpem_jax.estimation.identity import IdentityProfile
    from cpem_jax.geometry.camera import crop_camera
    with open(os.path.join(folder, stem, "blendshapes.json")) as handle:
        track = json.load(handle)
    profile = IdentityProfile.load(os.path.join(folder, stem + ".npz"))
    frames = track["frames"]
    found = np.array([f["face_found"] for f in frames], bool)
    rows = [f["raw"] for f, ok in zip(frames, found) if ok]
    return SimpleNamespace(
        frame_index=np.array([f["frame"] for f in frames]), face_found=found,
        unit_names=tuple(track["unit_names"]),
        expression=np.array([r["units"] for r in rows], np.float32).reshape(len(rows), -1),
        rotation=np.array([r["head_rotation"] for r in rows], np.float32).reshape(-1, 3),
        translation=np.array([r["head_translation"] for r in rows], np.float32).reshape(-1, 3),
        identity=np.asarray(profile.identity, np.float32), frame_identity=None,
        camera=crop_camera(profile.size, profile.focal_per_pixel, profile.distance_cm))


def run(fits: str, labels: str, model, max_blink: float = 0.4, live: bool = False) -> dict:
    """Scores the fits under `fits` on the windows of `labels` (see the module docstring);
    `live`: `fits` holds live runs' tracks and profiles instead (`load_track`)."""
    from cpem_jax.export.coefficients import load_coefficients
    from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
    dense = dense_landmarks_for(model)
    if dense is None:
        raise SystemExit("error: the face model has no dense table with eyeballs; use the ICT "
                         "model (the default)")
    results, all_required, all_fitted = {}, [], []
    for row in read_labels(labels):
        stem = os.path.splitext(os.path.basename(row["video"]))[0]
        path = os.path.join(fits, stem, "blendshapes.json" if live else "coefficients.npz")
        if not os.path.isfile(path):
            print(f"{stem}: no {'track' if live else 'fit'} at {path}; skipped (run "
                  f"`cpem-jax {'retarget --live' if live else 'fit'}` on the video first)")
            continue
        try:
            estimate = load_track(fits, stem) if live else load_coefficients(path)
        except (OSError, ValueError, KeyError) as error:         # ProfileError is a ValueError
            print(f"{stem}: {error}; skipped")
            continue
        frames = estimate.frame_index[estimate.face_found]        # rows of the estimate
        window = (frames >= row["first"]) & (frames <= row["last"])
        shut = blink(estimate) >= max_blink
        keep = window & ~shut
        required = required_angles(dense, estimate)[keep]
        fitted = fitted_angles(model, dense, estimate)[keep]
        wanted = row["last"] - row["first"] + 1
        entry = summarise(required, fitted)
        entry.update(window=[row["first"], row["last"]], no_face=int(wanted - window.sum()),
                     shut=int((window & shut).sum()), note=row.get("note", ""))
        results.setdefault(stem, []).append(entry)
        all_required.append(required)
        all_fitted.append(fitted)
    if not all_required:
        raise SystemExit(f"error: no fits found under {fits} for the videos of {labels}")
    overall = summarise(np.concatenate(all_required), np.concatenate(all_fitted))
    return {"videos": results, "overall": overall, "max_blink": max_blink}


def table(result: dict) -> str:
    def cell(s, key, fmt):
        return format(s[key], fmt) if key in s else "-"
    lines = ["| video | frames | window | shut | yaw MAE / bias / gain / corr | "
             "pitch MAE / bias / gain / corr | required yaw range |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    rows = [(stem, e) for stem, entries in result["videos"].items() for e in entries]
    rows.append(("all", dict(result["overall"], window=None, shut=None)))
    for stem, e in rows:
        parts = []
        for angle in ("yaw", "pitch"):
            s = e[angle]
            parts.append(f"{s['mae_deg']:.1f} / {s['bias_deg']:+.1f} / {cell(s, 'gain', '.2f')} / "
                         f"{cell(s, 'correlation', '.2f')}")
        span = e["yaw"]["required_range_deg"]
        window = "-" if e["window"] is None else f"{e['window'][0]}-{e['window'][1]}"
        shut = "-" if e["shut"] is None else str(e["shut"])
        lines.append(f"| {stem} | {e['frames']} | {window} | {shut} | {parts[0]} | {parts[1]} | "
                     f"{span[0]:+.1f} to {span[1]:+.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fits", required=True,
                        help="folder with <video stem>/coefficients.npz for each labelled video")
    parser.add_argument("--live", action="store_true",
                        help="FITS holds live runs: <stem>/blendshapes.json and the identity "
                             "profile <stem>.npz each run used")
    parser.add_argument("--labels", default=LABELS, help="eye-contact windows (CSV)")
    parser.add_argument("--face-model", default=None, help="default: the ICT model")
    parser.add_argument("--max-blink", type=float, default=0.4,
                        help="frames where either eyeBlink reaches this are left out")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.labels):
        print(f"error: no label file {args.labels}", file=sys.stderr)
        return 2
    from cpem_jax.face_model import load_face_model
    result = run(args.fits, args.labels, load_face_model(args.face_model), args.max_blink,
                 live=args.live)
    print(table(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
