"""benchmarks/eye_contact.py: the gaze that points each eye at the camera, checked through the
model's own turned iris points, and the score of coefficient files read back from disk."""
import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.estimation.video_estimate import VideoEstimate
from cpem_jax.export.coefficients import save_coefficients
from cpem_jax.face_model.dense_landmarks import (GAZE_PITCH, GAZE_YAW, IRIS_POINTS,
                                                 dense_landmarks_for, dense_points, eye_centres)
from cpem_jax.geometry.camera import crop_camera, transform
from cpem_jax.geometry.rotation import euler_to_matrix

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import eye_contact  # noqa: E402

SIZE = 224
# pitch, yaw, roll (degrees) of the head in each frame.
POSES = np.radians([[0, 0, 0], [0, 20, 0], [0, -15, 5], [10, 0, 0], [-8, 12, -4]])


def _estimate(model, gaze: bool) -> VideoEstimate:
    n = len(POSES)
    identity = np.zeros(model.n_identity, np.float32)
    rng = np.random.default_rng(0)
    identity[:5] = rng.normal(0, 0.5, 5)
    names = tuple(model.expression_names)
    estimate = VideoEstimate(
        frame_index=np.arange(n), timestamp_s=np.arange(n) / 25.0,
        face_found=np.ones(n, bool), crop_affine=np.tile(np.eye(2, 3)[None], (n, 1, 1)),
        landmarks_detected=np.zeros((n, 68, 2), np.float32), identity=identity,
        albedo=np.zeros(model.n_albedo, np.float32),
        expression=np.zeros((n, len(names)), np.float32), rotation=POSES.astype(np.float32),
        translation=np.tile(np.float32([[1.0, -0.5, 2.0]]), (n, 1)),
        lighting=np.zeros((n, 3, 9), np.float32), landmarks_fitted=np.zeros((n, 68, 2), np.float32),
        camera=crop_camera(SIZE), unit_names=names, fps=25.0, face_model=model.name,
        method="fit")
    if gaze:
        required = eye_contact.required_angles(dense_landmarks_for(model), estimate)
        for eye, side in enumerate(("_L", "_R")):
            yaw, pitch = required[:, eye, 0], required[:, eye, 1]
            outward = yaw if side == "_L" else -yaw    # the left eye looks out toward +x
            for unit, value in (("eyeLookOut", outward), ("eyeLookIn", -outward)):
                estimate.expression[:, names.index(unit + side)] = np.clip(
                    value / np.degrees(GAZE_YAW), 0, 1)
            for unit, value in (("eyeLookDown", pitch), ("eyeLookUp", -pitch)):
                estimate.expression[:, names.index(unit + side)] = np.clip(
                    value / np.degrees(GAZE_PITCH), 0, 1)
    return estimate


def _iris_off_sight_deg(model, estimate) -> np.ndarray:
    """[N, 2] degrees between each eye's line to the camera and its line to the iris centre
    (model points through `dense_points` and the camera transform)."""
    dense = dense_landmarks_for(model)
    points = dense_points(dense, jnp.asarray(estimate.identity)[None],
                          jnp.asarray(estimate.expression))                        # [N, P, 3]
    centres = np.asarray(eye_centres(dense, jnp.asarray(estimate.identity)))         # [2, 3]
    rotation = euler_to_matrix(jnp.asarray(estimate.rotation))
    translation = jnp.asarray(estimate.translation)
    out = []
    for eye in (0, 1):
        iris = jnp.mean(points[:, list(IRIS_POINTS[eye])], axis=1)[:, None]        # [N, 1, 3]
        centre = jnp.broadcast_to(jnp.asarray(centres[eye]), iris.shape)
        to_iris = (transform(iris, rotation, translation, estimate.camera)
                   - transform(centre, rotation, translation, estimate.camera))[:, 0]
        to_camera = -transform(centre, rotation, translation, estimate.camera)[:, 0]
        cosine = jnp.sum(to_iris * to_camera, -1) / (jnp.linalg.norm(to_iris, axis=-1)
                                                      * jnp.linalg.norm(to_camera, axis=-1))
        out.append(np.degrees(np.arccos(np.clip(np.asarray(cosine), -1, 1))))
    return np.stack(out, axis=1)


def test_an_eye_turned_to_the_required_angles_looks_at_the_camera(ict_model):
    dense = dense_landmarks_for(ict_model)
    looking = _estimate(ict_model, gaze=True)
    required = eye_contact.required_angles(dense, looking)
    # A head turned 20 degrees toward its left needs the eyes about 20 degrees to its right.
    assert -26 < required[1, 0, 0] < -14 and -26 < required[1, 1, 0] < -14
    assert np.all(np.abs(required[0]) < 8)
    # At rest (gaze 0) the line of sight is the head's forward, and ICT's iris sits a few degrees
    # outward of it; turned to the required angles, the eye keeps that angle to the camera ray.
    iris = np.mean(np.asarray(dense.mean)[list(IRIS_POINTS[0])], axis=0) - np.asarray(
        dense.eye_centre)[0]
    kappa = np.degrees(np.arccos(iris[2] / np.linalg.norm(iris)))
    assert 2 < kappa < 10
    np.testing.assert_allclose(_iris_off_sight_deg(ict_model, looking), kappa, atol=0.2)
    staring = _iris_off_sight_deg(ict_model, _estimate(ict_model, gaze=False))
    assert np.all(np.abs(staring[1] - kappa) > 8)


def test_the_score_of_saved_fits(ict_model, tmp_path):
    fits = tmp_path / "fits"
    for stem, gaze in (("looks", True), ("stares", False)):
        os.makedirs(fits / stem)
        save_coefficients(_estimate(ict_model, gaze), str(fits / stem / "coefficients"))
    labels = tmp_path / "eye_contact.csv"
    labels.write_text("video,first,last,note\nvideos/looks.mp4,0,4,x\nvideos/stares.mp4,1,4,y\n"
                      "videos/absent.mp4,0,9,z\n")
    result = eye_contact.run(str(fits), str(labels), ict_model)
    looks, stares = result["videos"]["looks"][0], result["videos"]["stares"][0]
    assert looks["frames"] == 5 and stares["frames"] == 4
    assert looks["yaw"]["mae_deg"] < 0.3 and looks["pitch"]["mae_deg"] < 0.3
    assert looks["yaw"]["gain"] == pytest.approx(1.0, abs=0.02)
    # Eyes held at rest: the error is the required turn itself, and they do not follow the head.
    required = eye_contact.required_angles(dense_landmarks_for(ict_model),
                                           _estimate(ict_model, False))[1:]
    assert stares["yaw"]["mae_deg"] == pytest.approx(
        np.mean(np.abs(required[..., 0].mean(axis=1))), rel=1e-3)
    assert "gain" not in stares["yaw"]
    assert "| all |" in eye_contact.table(result)


def test_a_live_track_is_read_like_a_fit(ict_model, tmp_path):
    """A live run's blendshapes.json (raw units, head pose) and its identity profile score as
    the same frames saved as a coefficient file do."""
    import json
    from cpem_jax.estimation.identity import IdentityProfile
    estimate = _estimate(ict_model, gaze=True)
    folder = tmp_path / "live"
    os.makedirs(folder / "looks")
    IdentityProfile(identity=estimate.identity, albedo=estimate.albedo,
                    face_model=ict_model.name, n_expression=ict_model.n_expression,
                    size=SIZE).save(str(folder / "looks.npz"))
    frames = [{"frame": k, "face_found": True,
               "raw": {"units": estimate.expression[k].tolist(),
                       "head_rotation": estimate.rotation[k].tolist(),
                       "head_translation": estimate.translation[k].tolist()}}
              for k in range(len(POSES))]
    frames.append({"frame": len(POSES), "face_found": False, "raw": {}})
    (folder / "looks" / "blendshapes.json").write_text(json.dumps(
        {"unit_names": list(estimate.unit_names), "frames": frames}))
    labels = tmp_path / "eye_contact.csv"
    labels.write_text("video,first,last,note\nvideos/looks.mp4,0,9,x\n")
    result = eye_contact.run(str(folder), str(labels), ict_model, live=True)
    looks = result["videos"]["looks"][0]
    assert looks["frames"] == len(POSES) and looks["no_face"] == 10 - len(POSES)
    assert looks["yaw"]["mae_deg"] < 0.3 and looks["pitch"]["mae_deg"] < 0.3
