"""Fitting with dense points: PnP pose first, keyframes by pose, single images as one frame, eye
units from lids and irises, and the dense points' path from the tracker to the fitter."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
from cpem_jax.fit.config import BROW_SPARSITY, LIP_SPARSITY
from cpem_jax.fit.fitter import FitConfig, SequenceFitter
from cpem_jax.fit.objective import FitWeights
from cpem_jax.fit.rigid import pose_keyframes, solve_pose
from cpem_jax.geometry.camera import crop_camera
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.losses.landmark import project_dense

YAW_50 = np.radians(50.0)


def test_pnp_recovers_the_pose_of_its_own_points(fake_model):
    """68 inner points of the fake model, posed at 50 degrees of yaw: PnP gives the pose back."""
    camera = crop_camera(128)
    truth = np.array([0.1, YAW_50, -0.05]), np.array([1.0, -2.0, 5.0])
    coeffs = fake_model.layout().zeros((1,)).replace(rotation=jnp.asarray([truth[0]], jnp.float32),
                                                     translation=jnp.asarray([truth[1]],
                                                                             jnp.float32))
    uv = np.asarray(project_landmarks(fake_model, coeffs, camera))[0]
    points = np.asarray(fake_model.mean_shape)[np.asarray(fake_model.landmark_ids)]
    rotation, translation = solve_pose(points[17:], uv[17:], camera)
    np.testing.assert_allclose(rotation, truth[0], atol=1e-3)
    np.testing.assert_allclose(translation, truth[1], atol=1e-2)
    assert np.all(solve_pose(points[:3], uv[:3], camera)[0] == 0)   # Too few points: zeros.


def test_keyframes_prefer_near_frontal_frames_spread_over_time():
    yaw = np.radians([80, 10, 5, 70, -20, 0, 85, 15, -60, 25])
    rotation = np.stack([np.zeros(10), yaw, np.zeros(10)], axis=1)
    picked = pose_keyframes(rotation, 4)
    assert set(picked) <= {1, 2, 4, 5, 7, 9} and len(picked) == 4
    assert picked[0] == 1 and picked[-1] == 9 and np.all(np.diff(picked) > 0)
    profile = np.stack([np.zeros(5), np.radians([70, 85, 60, 88, 75]), np.zeros(5)], axis=1)
    np.testing.assert_array_equal(pose_keyframes(profile, 2), [0, 2])  # The least turned two.
    assert len(pose_keyframes(rotation[:1], 8)) == 1


def test_rest_keyframes_are_the_frames_with_the_least_expression():
    from cpem_jax.fit.rigid import rest_keyframes
    expression = np.array([[0.9, 0.0], [0.1, 0.0], [0.0, -0.05], [0.5, 0.5], [0.1, 0.0]])
    pool = np.array([3, 8, 12, 20, 31])
    np.testing.assert_array_equal(rest_keyframes(expression, pool, 2), [8, 12])
    np.testing.assert_array_equal(rest_keyframes(expression, pool, 3), [8, 12, 31])
    np.testing.assert_array_equal(rest_keyframes(expression, pool, 9), pool)


def test_the_identity_is_fitted_on_resting_frames(ict_model, ict_dense):
    """A frontal clip that smiles in 12 of its 16 frames: the keyframes by pose are mostly
    smiling, and the identity stage moves to the 4 resting frames."""
    m = ict_model
    smile = [m.expression_index("mouthSmile_L"), m.expression_index("mouthSmile_R")]
    expression = np.zeros((16, m.n_expression), np.float32)
    resting = np.array([0, 6, 9, 13])
    expression[np.setdiff1d(np.arange(16), resting)[:, None], smile] = 0.9
    camera = crop_camera(128)
    dense_uv, lm68 = _dense_targets(m, ict_dense, camera, expression, np.zeros((16, 3)),
                                    np.zeros(m.n_identity))
    config = FitConfig(size=128, photo_size=32, photometric=False, keyframes=4,
                       identity_landmark_iters=60, track_landmark_iters=30)
    fitter = SequenceFitter(m, config, dense=ict_dense)
    crops = np.zeros((16, 128, 128, 3), np.uint8)
    assert not set(pose_keyframes(np.zeros((16, 3)), 4)) <= set(resting)
    _, ids, frames = fitter.fit_identity(crops, lm68, dense_uv)
    np.testing.assert_array_equal(ids, resting)
    assert np.max(np.asarray(frames.expression)[:, smile]) < 0.2
    off = dataclasses.replace(config, rest_candidates=0)
    _, ids_by_pose, _ = SequenceFitter(m, off, dense=ict_dense).fit_identity(crops, lm68, dense_uv)
    np.testing.assert_array_equal(ids_by_pose, pose_keyframes(np.zeros((16, 3)), 4))


def _spy(fitter):
    """Records the frame count of every jitted stage call."""
    calls = []
    for name in ("_joint", "_track"):
        fn = getattr(fitter, name)

        def wrapped(first, second, *args, _fn=fn, _name=name, **kwargs):
            frames = second[1] if isinstance(second, tuple) else second
            calls.append((_name, frames.expression.shape[0]))
            return _fn(first, second, *args, **kwargs)
        setattr(fitter, name, wrapped)
    return calls


def test_single_image_is_one_frame_of_work(fake_model):
    config = FitConfig(size=64, photo_size=32, keyframes=8, chunk=8, photometric=False,
                       identity_landmark_iters=20, track_landmark_iters=10)
    fitter = SequenceFitter(fake_model, config, render_fn=lambda *a, **k: None)
    calls = _spy(fitter)
    landmarks = np.asarray(project_landmarks(fake_model, fake_model.layout().zeros((1,)),
                                             config.camera()))
    fit = fitter.fit(np.zeros((1, 64, 64, 3), np.uint8), landmarks, progress=False)
    assert calls == [("_joint", 1)] and fit.frames.expression.shape[0] == 1
    # A clip longer than the keyframes: 8 keyframes, then chunks of 8 (the last padded).
    calls.clear()
    many = np.repeat(landmarks, 10, axis=0)
    fitter.fit(np.zeros((10, 64, 64, 3), np.uint8), many, progress=False)
    # The resting keyframes: the 10 frames tracked with the first identity (2 chunks), the
    # identity again on the 8 that rest most (here the first 8, not the 8 by pose).
    assert calls == [("_joint", 8), ("_track", 8), ("_track", 8), ("_joint", 8),
                     ("_track", 8), ("_track", 8)]
    by_pose = SequenceFitter(fake_model, dataclasses.replace(config, rest_candidates=0),
                             render_fn=lambda *a, **k: None)
    calls = _spy(by_pose)
    by_pose.fit(np.zeros((10, 64, 64, 3), np.uint8), many, progress=False)
    assert calls == [("_joint", 8), ("_track", 8), ("_track", 8)]



def test_the_resting_identity_stage_uses_its_own_sparsity(fake_model):
    """The identity fitted again on the resting keyframes gets `rest_unit_sparsity` (the brows'
    full prior on ICT); the first identity stage and the tracking keep `unit_sparsity`."""
    config = FitConfig(size=64, photo_size=32, keyframes=8, chunk=8, photometric=False,
                       identity_landmark_iters=20, track_landmark_iters=10,
                       unit_sparsity=(("jawOpen", 0.1),), rest_unit_sparsity=(("jawOpen", 0.7),))
    fitter = SequenceFitter(fake_model, config, render_fn=lambda *a, **k: None)
    seen = []
    for name in ("_joint", "_track"):
        fn = getattr(fitter, name)

        def wrapped(first, second, data, *args, _fn=fn, _name=name, **kwargs):
            seen.append((_name, round(float(data.unit_sparsity[fake_model.expression_index(
                "jawOpen")]), 4)))
            return _fn(first, second, data, *args, **kwargs)
        setattr(fitter, name, wrapped)
    landmarks = np.asarray(project_landmarks(fake_model, fake_model.layout().zeros((1,)),
                                             config.camera()))
    fitter.fit(np.zeros((10, 64, 64, 3), np.uint8), np.repeat(landmarks, 10, axis=0),
               progress=False)
    # As in test_single_image_is_one_frame_of_work: identity, pool, resting identity, tracking.
    assert seen == [("_joint", 0.1), ("_track", 0.1), ("_track", 0.1), ("_joint", 0.7),
                    ("_track", 0.1), ("_track", 0.1)]
    assert dict(FitConfig().rest_unit_sparsity) == {name: 1.0 for name, _ in
                                                    BROW_SPARSITY + LIP_SPARSITY}

# ---------------------------------------------------------------------------- real ICT model

@pytest.fixture(scope="module")
def ict_dense(ict_model):
    return dense_landmarks_for(ict_model)


def _dense_targets(model, dense, camera, expression, rotation, identity):
    n = len(expression)
    coeffs = model.layout().zeros((n,)).replace(
        identity=jnp.broadcast_to(jnp.asarray(identity, jnp.float32), (n, model.n_identity)),
        expression=jnp.asarray(expression, jnp.float32),
        rotation=jnp.asarray(rotation, jnp.float32),
        translation=jnp.tile(jnp.array([[0.5, -1.0, 3.0]]), (n, 1)))
    return (np.asarray(project_dense(dense, coeffs, camera)),
            np.asarray(project_landmarks(model, coeffs, camera)))


def test_dense_fit_recovers_a_50_degree_yaw(ict_model, ict_dense):
    """A face turned by 50 degrees with a random identity: PnP of the mean face starts within a
    few degrees, and the fit (identity + pose + expression) ends within 2.5 degrees (the identity
    prior shrinks the face toward the mean a little; it does not absorb the turn: starting from
    zero rotation used to give 0.35-0.4 of a turn)."""
    config = FitConfig(size=128, photo_size=32, photometric=False, identity_landmark_iters=200)
    fitter = SequenceFitter(ict_model, config, dense=ict_dense)
    identity = np.random.default_rng(3).normal(0, 1, ict_model.n_identity).astype(np.float32)
    rotation = np.array([[0.1, YAW_50, 0.05]])
    dense_uv, lm68 = _dense_targets(ict_model, ict_dense, config.camera(),
                                    np.zeros((1, ict_model.n_expression)), rotation, identity)
    start, _ = fitter.initial_poses(lm68, dense_uv)
    assert abs(np.degrees(start[0, 1]) - 50.0) < 5.0
    fit = fitter.fit(np.zeros((1, 128, 128, 3), np.uint8), lm68, progress=False, dense=dense_uv)
    np.testing.assert_allclose(np.degrees(fit.frames.rotation[0]), np.degrees(rotation[0]),
                               atol=2.5)
    assert np.abs(fit.dense_fitted - dense_uv).mean() < 0.5


def test_eye_units_from_lids_and_irises(ict_model, ict_dense):
    """Blinks, a wink and gaze rendered as dense points are read back as eyeBlink / eyeLook*
    units (landmarks only), each contradictory pair exclusive."""
    m = ict_model
    frames = [{}, {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}, {"eyeBlink_L": 1.0},
              {"eyeLookOut_L": 0.6, "eyeLookIn_R": 0.6}, {"eyeLookUp_L": 0.5, "eyeLookUp_R": 0.5},
              {"eyeLookDown_L": 0.5, "eyeLookDown_R": 0.5}, {"eyeWide_L": 0.6},
              {"eyeSquint_R": 0.7}]
    expression = np.zeros((len(frames), m.n_expression), np.float32)
    for row, units in enumerate(frames):
        for name, value in units.items():
            expression[row, m.expression_index(name)] = value
    # The frames are independent poses, not a video: no temporal prior between them; and a weak
    # sparsity prior (the paper's training value / 5): this checks what the points determine.
    config = FitConfig(size=224, photo_size=32, photometric=False, keyframes=len(frames),
                       identity_landmark_iters=400, weights=FitWeights(temporal=0.0, sp=0.02))
    fitter = SequenceFitter(m, config, dense=ict_dense)
    rotation = np.tile([[0.05, 0.2, 0.0]], (len(frames), 1))
    dense_uv, lm68 = _dense_targets(m, ict_dense, config.camera(), expression, rotation,
                                    np.zeros(m.n_identity))
    weights = fitter.dense_weights(dense_uv)
    iris = np.asarray(ict_dense.eye) >= 0
    assert weights[1, iris].max() == 0 and weights[0, iris].min() > 0   # Closed eyes: no iris.
    fit = fitter.fit(np.zeros((len(frames), 224, 224, 3), np.uint8), lm68, progress=False,
                     dense=dense_uv)
    got = fit.frames.expression
    eye_units = [i for i, n in enumerate(m.expression_names) if n.startswith("eye")]
    error = np.abs(got[:, eye_units] - expression[:, eye_units])
    # eyeWide is the weakest shape (0.26 mm RMS at weight 1): read back at about 2/3.
    assert error.mean() < 0.02 and error.max() < 0.25, error.max()
    wide = m.expression_index("eyeWide_L")
    assert got[6, wide] > 0.3 and np.delete(got[:, wide], 6).max() < 0.05
    blink_l, blink_r = m.expression_index("eyeBlink_L"), m.expression_index("eyeBlink_R")
    assert got[1, blink_l] > 0.75 and got[1, blink_r] > 0.75
    assert got[2, blink_l] > 0.75 and got[2, blink_r] < 0.15         # The wink: one eye.
    pairs = np.asarray(m.contradictory_pairs)
    assert np.minimum(got[:, pairs[:, 0]], got[:, pairs[:, 1]]).max() < 0.05


def test_dense_points_flow_from_tracker_to_crops():
    from cpem_jax.detect.base import FaceObservation
    from cpem_jax.detect.pipeline import TrackedCrops
    dense = np.arange(478 * 2, dtype=np.float32).reshape(478, 2)
    obs = [FaceObservation(0, 0.0, True, np.zeros(4, np.float32),
                           np.zeros((68, 2), np.float32), 1.0, dense),
           FaceObservation.missing(1, 0.04)]
    affines = np.array([[[2.0, 0, 1], [0, 2.0, -3]]] * 2)
    tracked = TrackedCrops(obs, np.zeros((2, 8, 8, 3), np.uint8), affines, 25.0)
    crop = tracked.crop_dense()
    np.testing.assert_allclose(crop[0], dense * 2 + [1, -3])
    assert np.isnan(crop[1]).all()
    plain = TrackedCrops([FaceObservation.missing(0, 0.0)], np.zeros((1, 8, 8, 3), np.uint8),
                         affines[:1], 25.0)
    assert plain.crop_dense() is None


def test_unknown_landmarker_name_is_one_clear_error():
    from cpem_jax.estimation.estimate import make_estimator
    with pytest.raises(ValueError, match="unknown landmarker 'openface'"):
        make_estimator("fit", landmarker="openface")


def test_a_hidden_iris_holds_its_eye_gaze(ict_model, ict_dense):
    """A closed eye's iris is hidden (weight 0), so the fit's gaze prior holds that eye's
    eyeLook* units and leaves the open eye's alone."""
    from cpem_jax.fit.objective import gaze_hidden_term
    m = ict_model
    frames = [{}, {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}, {"eyeBlink_L": 1.0}]
    expression = np.zeros((len(frames), m.n_expression), np.float32)
    for row, units in enumerate(frames):
        for name, value in units.items():
            expression[row, m.expression_index(name)] = value
    fitter = SequenceFitter(m, FitConfig(size=224, photo_size=32, photometric=False),
                            dense=ict_dense)
    dense_uv, _ = _dense_targets(m, ict_dense, fitter.config.camera(), expression,
                                 np.zeros((len(frames), 3)), np.zeros(m.n_identity))
    hidden = fitter.dense_inputs(dense_uv)[1]                 # [3, 2]: (left, right) eye.
    np.testing.assert_allclose(hidden, [[0, 0], [1, 1], [1, 0]], atol=1e-6)
    assert np.all(fitter.dense_inputs(np.full_like(dense_uv, np.nan))[1] == 1)   # No points.
    gaze = np.zeros_like(expression)
    gaze[:, m.expression_index("eyeLookDown_L")] = 0.5
    gaze[:, m.expression_index("eyeLookIn_R")] = 0.4
    term = gaze_hidden_term(jnp.asarray(gaze), jnp.asarray(hidden), ict_dense.gaze_units)
    # Frame 0: nothing hidden; frame 1: both eyes (0.25 + 0.16); frame 2: the left (0.25).
    np.testing.assert_allclose(term, (0.0 + 0.41 + 0.25) / 3, rtol=1e-5)


def test_the_eye_opening_term_matches_openings_not_positions(ict_model, ict_dense):
    """`eye_aperture_term` is 0 when the fitted eyes open as far as the detected ones wherever
    they sit (shifted points), grows with the opening's difference, and skips an eye whose lid
    points are missing."""
    from cpem_jax.face_model.dense_landmarks import eye_openness
    from cpem_jax.fit.objective import eye_aperture_term
    from cpem_jax.losses.objective import Targets
    m = ict_model
    expression = np.zeros((2, m.n_expression), np.float32)
    expression[1, m.expression_index("eyeBlink_L")] = 1.0
    detected, _ = _dense_targets(m, ict_dense, crop_camera(224), expression, np.zeros((2, 3)),
                                 np.zeros(m.n_identity))
    targets = Targets(image=jnp.zeros((2, 1, 1, 3)), skin_mask=jnp.zeros((2, 1, 1)),
                      landmarks=jnp.zeros((2, 68, 2)), dense=jnp.asarray(detected),
                      dense_weights=jnp.ones(detected.shape[:2]))
    rotation = jnp.zeros((2, 3))
    term = lambda fitted, t=targets: float(eye_aperture_term(jnp.asarray(fitted), t, ict_dense,
                                                             rotation))
    assert term(detected + 3.0) < 1e-10                       # Moved, same openings.
    opening = eye_openness(ict_dense, detected)
    assert opening[1, 0] < 0.1 < 0.3 < opening[0, 0]          # The blink shut the left eye.
    swapped = detected[::-1]                                  # Each frame gets the other's eyes.
    # (The eyes' visibility weights, both near 1, differ in the 4th digit.)
    np.testing.assert_allclose(term(swapped), np.sum((opening[::-1] - opening) ** 2) / 4,
                               rtol=2e-3)
    lid = int(np.asarray(ict_dense.aperture_pairs)[0, 0, 0])
    missing = targets.replace(dense_weights=targets.dense_weights.at[:, lid].set(0.0))
    # Only the right eyes count now, and they open alike in both frames.
    assert term(swapped, missing) < 1e-10


def test_detected_openings_near_shut_count_as_shut():
    """`detected_opening` maps openings at or under the floor to 0, stretches those between the
    floor and the knee linearly onto [0, knee], leaves wider ones as they are, and with an
    empty range changes nothing."""
    from cpem_jax.fit.objective import detected_opening
    opening = jnp.asarray([0.0, 0.03, 0.06, 0.13, 0.2, 0.3, 0.45])
    np.testing.assert_allclose(detected_opening(opening, (0.06, 0.2)),
                               [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.45], atol=1e-6)
    np.testing.assert_array_equal(detected_opening(opening, (0.0, 0.0)), opening)


def test_the_eye_opening_term_fits_a_nearly_shut_detected_eye_shut(ict_model, ict_dense):
    """A detected left eye whose lids stay a little apart (blink 0.8: MediaPipe's points on a
    shut eye) is met exactly by the fitted blink 0.8 without a shut range; with one, a fully
    shut fitted eye (blink 1) meets it better than blink 0.8 does."""
    from cpem_jax.face_model.dense_landmarks import eye_openness
    from cpem_jax.fit.objective import eye_aperture_term
    from cpem_jax.losses.objective import Targets
    m = ict_model
    blink = m.expression_index("eyeBlink_L")
    expression = np.zeros((3, m.n_expression), np.float32)
    expression[:, blink] = [0.8, 1.0, 0.0]
    points, _ = _dense_targets(m, ict_dense, crop_camera(224), expression, np.zeros((3, 3)),
                               np.zeros(m.n_identity))
    detected, shut, open_ = points[:1], points[1:2], points[2:3]
    assert 0.06 < eye_openness(ict_dense, detected)[0, 0] < 0.2 < eye_openness(ict_dense,
                                                                               open_)[0, 0]
    targets = Targets(image=jnp.zeros((1, 1, 1, 3)), skin_mask=jnp.zeros((1, 1, 1)),
                      landmarks=jnp.zeros((1, 68, 2)), dense=jnp.asarray(detected),
                      dense_weights=jnp.ones(detected.shape[:2]))
    term = lambda fitted, shut_range: float(eye_aperture_term(
        jnp.asarray(fitted), targets, ict_dense, jnp.zeros((1, 3)), shut_range))
    assert term(detected, (0.0, 0.0)) < 1e-10 < term(shut, (0.0, 0.0))
    assert term(shut, (0.06, 0.2)) < 0.5 * term(detected, (0.06, 0.2))


def test_an_eye_seen_shut_is_read_as_a_blink(ict_model, ict_dense):
    """`eye_shut_term` is 0 for an open detected eye whatever the blink, and for a detected shut
    eye it prefers eyeBlink 1 over a half blink (the cheek raise that shuts it as well)."""
    from cpem_jax.fit.objective import SHUT_EYE_RAMP, _blink_units, eye_shut_term
    from cpem_jax.losses.objective import Targets
    m = ict_model
    units = _blink_units(m)
    assert units == (m.expression_index("eyeBlink_L"), m.expression_index("eyeBlink_R"))
    shut_eye = np.zeros((2, m.n_expression), np.float32)
    shut_eye[:, units[0]] = [1.0, 0.0]           # frame 0: left eye shut; frame 1: both open
    points, _ = _dense_targets(m, ict_dense, crop_camera(224), shut_eye, np.zeros((2, 3)),
                               np.zeros(m.n_identity))
    from cpem_jax.face_model.dense_landmarks import eye_openness
    opening = eye_openness(ict_dense, points)
    assert opening[0, 0] < SHUT_EYE_RAMP[0] and np.all(opening[1] > SHUT_EYE_RAMP[1])
    targets = Targets(image=jnp.zeros((2, 1, 1, 3)), skin_mask=jnp.zeros((2, 1, 1)),
                      landmarks=jnp.zeros((2, 68, 2)), dense=jnp.asarray(points),
                      dense_weights=jnp.ones(points.shape[:2]))

    def term(blink_left, frame):
        expression = np.zeros((1, m.n_expression), np.float32)
        expression[0, units[0]] = blink_left
        one = targets.replace(**{k: getattr(targets, k)[frame:frame + 1]
                                 for k in ("image", "skin_mask", "landmarks", "dense",
                                           "dense_weights")})
        return float(eye_shut_term(jnp.asarray(expression), one, ict_dense,
                                   jnp.zeros((1, 3)), units))

    assert term(1.0, 0) < 1e-6 < 0.2 < term(0.5, 0) < term(0.0, 0)
    assert term(0.0, 1) == 0.0 and term(1.0, 1) == 0.0


def test_a_look_right_after_a_look_left_is_tracked(ict_model, ict_dense):
    """Tracking batches start their gaze at rest: a batch after a look to the left reads a
    look to the right (a warm start from the left look held eyeLookOut_R near zero behind the
    expression-exclusive term)."""
    m = ict_model
    left = {"eyeLookOut_L": 0.6, "eyeLookIn_R": 0.6}
    right = {"eyeLookOut_R": 0.5, "eyeLookIn_L": 0.5}
    frames = [left] * 4 + [right] * 4
    expression = np.zeros((len(frames), m.n_expression), np.float32)
    for row, units in enumerate(frames):
        for name, value in units.items():
            expression[row, m.expression_index(name)] = value
    # A weak sparsity prior, as in test_eye_units_from_lids_and_irises. Read from a warm start
    # (the batch before looked left), eyeLookOut_R / eyeLookIn_L came out at 0.01-0.02.
    config = FitConfig(size=224, photo_size=32, photometric=False, keyframes=2, chunk=4,
                       rest_candidates=0, identity_landmark_iters=100,
                       weights=FitWeights(sp=0.02))
    fitter = SequenceFitter(m, config, dense=ict_dense)
    dense_uv, lm68 = _dense_targets(m, ict_dense, config.camera(), expression,
                                    np.zeros((len(frames), 3)), np.zeros(m.n_identity))
    fit = fitter.fit(np.zeros((len(frames), 224, 224, 3), np.uint8), lm68, progress=False,
                     dense=dense_uv)
    got = fit.frames.expression[4:]
    for name in right:                                    # 0.34-0.44 of 0.5.
        assert got[:, m.expression_index(name)].min() > 0.3, name
    for name in left:
        assert got[:, m.expression_index(name)].max() < 0.05, name


def test_the_gaze_units_carry_a_lighter_prior_where_the_irises_are_fitted(ict_model, ict_dense):
    """`iris_gaze_sparsity` scales the eyeLook* units' prior in fits with irises (every stage,
    the resting keyframes included); a fit of the 68 points alone keeps `unit_sparsity`."""
    m = ict_model
    gaze = np.asarray(ict_dense.gaze_units).reshape(-1)
    brow = m.expression_index("browInnerUp_L")
    config = FitConfig(size=224, iris_gaze_sparsity=0.25)
    with_irises = SequenceFitter(m, config, dense=ict_dense)
    for rest, brow_factor in ((False, 0.1), (True, 1.0)):
        factors = np.asarray(with_irises.unit_sparsity(True, rest=rest))
        np.testing.assert_allclose(factors[gaze], 0.25)
        assert factors[brow] == pytest.approx(brow_factor)
        assert np.all(np.asarray(with_irises.unit_sparsity(False, rest=rest))[gaze] == 1.0)
    points_only = SequenceFitter(m, config, dense=None)
    assert np.all(np.asarray(points_only.unit_sparsity(True))[gaze] == 1.0)
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="iris_gaze_sparsity"):
            FitConfig(iris_gaze_sparsity=bad)


def test_a_look_reads_nearer_its_size_with_the_iris_gaze_prior(ict_model, ict_dense):
    """Exact dense points of a look: with the full prior on the eyeLook* units a look of 0.6
    read 0.35-0.41; the default factor (`IRIS_GAZE_SPARSITY`) reads it nearer its size, and a
    face at rest still reads no gaze."""
    m = ict_model
    frames = [{}, {"eyeLookOut_L": 0.6, "eyeLookIn_R": 0.6},
              {"eyeLookUp_L": 0.5, "eyeLookUp_R": 0.5}]
    expression = np.zeros((len(frames), m.n_expression), np.float32)
    for row, units in enumerate(frames):
        for name, value in units.items():
            expression[row, m.expression_index(name)] = value
    gaze = np.asarray(ict_dense.gaze_units).reshape(-1)
    read = {}
    for factor in (FitConfig().iris_gaze_sparsity, 1.0):
        config = FitConfig(size=224, photometric=False, keyframes=len(frames),
                           identity_landmark_iters=200, iris_gaze_sparsity=factor,
                           weights=FitWeights(temporal=0.0))
        dense_uv, lm68 = _dense_targets(m, ict_dense, config.camera(), expression,
                                        np.tile([[0.05, 0.2, 0.0]], (len(frames), 1)),
                                        np.zeros(m.n_identity))
        fit = SequenceFitter(m, config, dense=ict_dense).fit(
            np.zeros((len(frames), 224, 224, 3), np.uint8), lm68, progress=False,
            dense=dense_uv)
        read[factor] = np.asarray(fit.frames.expression)
    lighter, full = read[FitConfig().iris_gaze_sparsity], read[1.0]
    looks = expression[1:] > 0
    error_lighter = np.abs(lighter[1:] - expression[1:])[looks].mean()
    error_full = np.abs(full[1:] - expression[1:])[looks].mean()
    assert error_lighter < error_full - 0.05, (error_lighter, error_full)
    assert lighter[0, gaze].max() < 0.05
