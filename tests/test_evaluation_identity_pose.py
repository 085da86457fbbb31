"""Identity consistency curves and pose errors."""
import numpy as np
import pytest

from cpem_jax.evaluation import identity, pose


def test_coefficient_mae_to_first_frame():
    ident = np.array([[0.0, 0.0], [1.0, -1.0], [np.nan, np.nan], [0.5, 0.0]])
    mae = identity.coefficient_mae_to_first(ident)
    np.testing.assert_allclose(mae, [0.0, 1.0, np.nan, 0.25])


def test_reference_is_first_frame_with_a_face():
    ident = np.array([[np.nan, np.nan], [1.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(identity.coefficient_mae_to_first(ident), [np.nan, 0.0, 0.5])
    with pytest.raises(ValueError, match="no frame"):
        identity.coefficient_mae_to_first(np.full((2, 2), np.nan))


def test_mesh_rms_in_mm_matches_direct_computation():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(50, 3, 4))
    mean_shape = rng.normal(size=(50, 3))
    ident = rng.normal(size=(5, 4))
    got = identity.mesh_rms_to_first_mm(ident, basis, chunk=2)
    meshes = mean_shape + np.einsum("vck,tk->tvc", basis, ident)
    want = np.sqrt(((meshes - meshes[0]) ** 2).sum(-1).mean(-1)) * 10.0
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got[0] == 0.0


def test_identity_consistency_averages_videos_of_different_lengths():
    a = np.array([[0.0], [1.0], [2.0]])
    b = np.array([[0.0], [3.0]])
    basis = np.ones((2, 3, 1))
    res = identity.identity_consistency([a, b], basis)
    np.testing.assert_allclose(res["coefficient_mae"], [0.0, 2.0, 2.0])
    assert res["videos_per_frame"] == [2, 2, 1]
    assert res["coefficient_mae_mean"] == pytest.approx(2.0)
    # Each vertex moves by delta * (1, 1, 1): RMS = |delta| * sqrt(3) cm.
    np.testing.assert_allclose(res["mesh_rms_mm"], np.array([0.0, 2.0, 2.0]) * np.sqrt(3) * 10)


def test_consistent_identity_scores_lower_than_drifting():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1, 10))
    steady = base + rng.normal(0, 0.01, (20, 10))
    drifting = base + rng.normal(0, 0.3, (20, 10))
    assert (identity.identity_consistency([steady])["coefficient_mae_mean"]
            < identity.identity_consistency([drifting])["coefficient_mae_mean"] / 5)


def test_identities_from_tracks_masks_no_face_frames():
    from cpem_jax.estimation import VideoEstimate
    from cpem_jax.geometry.camera import crop_camera
    found = np.array([True, False, True])
    track = VideoEstimate(
        frame_index=np.arange(3), timestamp_s=np.arange(3) / 25.0, face_found=found,
        crop_affine=np.tile(np.eye(2, 3)[None], (3, 1, 1)),
        landmarks_detected=np.zeros((3, 68, 2)), identity=np.ones(2), albedo=np.zeros(1),
        expression=np.zeros((2, 1)), rotation=np.zeros((2, 3)), translation=np.zeros((2, 3)),
        lighting=np.zeros((2, 3, 9)), landmarks_fitted=np.zeros((2, 68, 2)),
        camera=crop_camera(32), unit_names=("a",), fps=25.0, face_model="m", method="net",
        frame_identity=np.array([[1.0, 2.0], [3.0, 4.0]]))
    out = identity.identities_from_tracks([track])
    np.testing.assert_array_equal(out[0][[0, 2]], [[1.0, 2.0], [3.0, 4.0]])
    assert np.isnan(out[0][1]).all() and np.isfinite(out[0][[0, 2]]).all()


def test_euler_matrix_matches_project_convention():
    from cpem_jax.geometry.rotation import euler_to_matrix

    angles = np.array([[0.3, -0.5, 1.1], [0.0, 0.2, -0.1]])
    np.testing.assert_allclose(pose.euler_to_matrix_np(angles),
                               np.asarray(euler_to_matrix(angles.astype(np.float32))), atol=1e-6)


def test_geodesic_angle():
    r = pose.euler_to_matrix_np(np.array([0.1, 0.2, 0.3]))
    extra = pose.euler_to_matrix_np(np.array([0.0, np.radians(25.0), 0.0]))
    assert pose.geodesic_angle_deg(r, r) == pytest.approx(0.0, abs=1e-5)
    assert pose.geodesic_angle_deg(extra @ r, r) == pytest.approx(25.0, abs=1e-6)
    with pytest.raises(ValueError, match="3, 3"):
        pose.geodesic_angle_deg(np.eye(2), np.eye(3))


def test_pose_errors_per_axis_and_wrapping():
    true = np.radians([[10.0, 20.0, 179.0], [0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])
    pred = np.radians([[12.0, 20.0, -179.0], [0.0, -4.0, 0.0], [0.0, 0.0, 0.0]])
    res = pose.pose_errors(pred, true)
    assert res["count"] == 2
    assert res["pitch_mae_deg"] == pytest.approx(1.0)
    assert res["yaw_mae_deg"] == pytest.approx(2.0)
    assert res["roll_mae_deg"] == pytest.approx(1.0)  # 179 vs -179 is 2 degrees apart.
    yaw_only = pose.geodesic_angle_deg(pose.euler_to_matrix_np(pred[1]),
                                       pose.euler_to_matrix_np(true[1]))
    assert yaw_only == pytest.approx(4.0)
    assert res["geodesic_mean_deg"] == pytest.approx(
        np.mean([pose.geodesic_angle_deg(pose.euler_to_matrix_np(p), pose.euler_to_matrix_np(t))
                 for p, t in zip(pred[:2], true[:2])]))
