"""MediaPipe's 478 points on the ICT face model (cpem_jax.face_model.dense_landmarks) and the
canonical mesh they were built from."""
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.detect.mediapipe_mesh import IBUG68_FROM_MESH, N_MESH
from cpem_jax.face_model import dense_landmarks as dl
from cpem_jax.geometry.camera import crop_camera
from cpem_jax.losses.landmark import project_dense
from conftest import shared_path

# Mirror pairs of MediaPipe's mesh (subject's right, left): eye corners, mouth corners, iris.
MIRROR = ((33, 263), (133, 362), (61, 291), (78, 308), (136, 365), (468, 473), (469, 476))


def test_canonical_mesh_from_the_bundle():
    from cpem_jax.detect.mediapipe_mesh import canonical_face_mesh
    vertices, triangles = canonical_face_mesh(shared_path("assets", "face_landmarker.task"))
    assert vertices.shape == (N_MESH, 3) and triangles.shape[1] == 3
    assert triangles.min() == 0 and triangles.max() == N_MESH - 1
    # Centimetres, the project's axes: the subject's right eye (33) at -x, nose tip (4) in front.
    assert vertices[33, 0] < -3 and vertices[263, 0] > 3
    np.testing.assert_allclose(vertices[33] * [-1, 1, 1], vertices[263], atol=1e-4)
    assert vertices[4, 2] > vertices[33, 2] + 3 and vertices[152, 1] < vertices[4, 1] - 6


def test_table_file_is_consistent():
    table = dl.read_table()
    assert table["vertex_ids"].shape == (N_MESH, 3) and table["vertex_weights"].shape == (N_MESH, 3)
    np.testing.assert_allclose(table["vertex_weights"].sum(1), 1.0, atol=1e-5)
    assert (table["vertex_weights"] >= -1e-6).all()
    assert table["region"].shape == (dl.N_DENSE,)
    assert tuple(str(n) for n in table["region_names"]) == dl.REGIONS
    counts = np.bincount(table["region"], minlength=len(dl.REGIONS))
    assert counts[dl.REGIONS.index("eyelids")] == 32 and counts[dl.REGIONS.index("iris")] == 10
    assert counts[dl.REGIONS.index("lips")] == 40
    checks = json.loads(str(table["checks"]))
    assert checks["mirror_error_cm_max"] < 0.05 and checks["invalid_points"] == 0
    assert "canonical face mesh" in str(table["method"])
    # Refined from fits of real video (benchmarks/refine_mediapipe_ict.py): the residual fell.
    refined = checks["refined_from_video"]
    assert "Step 7" in str(table["method"]) and len(refined["rounds"]) >= 1
    assert refined["rms_residual_px_after"] < refined["rounds"][0]["rms_residual_px_before"]


def test_bad_table_is_one_clear_error(tmp_path):
    with pytest.raises(dl.DenseTableError, match="build_mediapipe_ict"):
        dl.read_table(str(tmp_path / "absent.npz"))
    np.savez(tmp_path / "old.npz", format_version=np.asarray(0))
    with pytest.raises(dl.DenseTableError, match="format version 0"):
        dl.read_table(str(tmp_path / "old.npz"))


def test_other_models_have_no_table(fake_model):
    """A BFM-like model gets no table (the fit falls back to 68 points); an ICT-shaped one
    without gaze units gets the surface points but no iris."""
    assert dl.dense_landmarks_for(fake_model.replace(name="bfm09-front")) is None
    dense = dl.dense_landmarks_for(fake_model)
    assert dense.n_points == dl.N_DENSE and not np.asarray(dense.valid)[468:].any()


@pytest.fixture(scope="module")
def ict_dense(ict_model):
    return dl.dense_landmarks_for(ict_model)


def test_points_agree_with_ict_landmarks_on_the_mean_shape(ict_model, ict_dense):
    """MediaPipe's 68 iBUG vertices land on ICT's own inner-face landmarks where the table is
    anchored on them (brows exactly; lids and inner lips as matched contours, 1.5 mm on average)
    and near them where MediaPipe's detections on renders of ICT moved them (nose, outer lips,
    5 mm); the mean shape's points are symmetric."""
    points = np.asarray(dl.dense_points(ict_dense, jnp.zeros(ict_model.n_identity),
                                        jnp.zeros(ict_model.n_expression)))
    ict68 = np.asarray(ict_model.mean_shape)[np.asarray(ict_model.landmark_ids)]
    error = np.linalg.norm(points[IBUG68_FROM_MESH] - ict68, axis=1)
    assert error[17:27].max() < 0.01                               # Brows.
    assert error[36:48].mean() < 0.15 and error[60:68].mean() < 0.15   # Lids, inner lips.
    assert error[27:36].mean() < 0.5 and error[48:60].mean() < 0.5     # Nose, outer lips.
    for right, left in MIRROR:
        np.testing.assert_allclose(points[right] * [-1, 1, 1], points[left], atol=0.05)


def test_projection_is_anatomical(ict_model, ict_dense):
    """Projected on the crop camera: iris centres between their eye corners, upper lids above
    lower lids, upper inner lip above the lower, the subject's left on the image right."""
    coeffs = ict_model.layout().zeros((1,))
    uv = np.asarray(project_dense(ict_dense, coeffs, crop_camera(224)))[0]
    for iris, outer, inner in ((468, 33, 133), (473, 263, 362)):
        lo, hi = sorted((uv[outer, 0], uv[inner, 0]))
        assert lo < uv[iris, 0] < hi
    assert uv[33, 0] < uv[263, 0]                       # Subject's right eye on the image left.
    assert uv[159, 1] < uv[145, 1] and uv[386, 1] < uv[374, 1]   # Lids (v grows downward).
    assert uv[13, 1] < uv[14, 1] and uv[0, 1] < uv[17, 1]         # Lips.
    assert uv[4, 1] < uv[13, 1] < uv[152, 1]           # Nose tip, mouth, chin.


def test_narrow_area_drops_only_points_outside_it(ict_model, ict_dense):
    table = dl.read_table()
    outside = np.any((table["vertex_ids"] >= ict_model.n_vertices)
                     & (table["vertex_weights"] > 0), axis=1)
    valid = np.asarray(ict_dense.valid)
    np.testing.assert_array_equal(valid[:N_MESH], ~outside)
    assert valid[468:].all() and 400 < valid.sum() < dl.N_DENSE


def test_gaze_turns_the_iris_about_the_eyeball(ict_model, ict_dense):
    zeros_id = jnp.zeros(ict_model.n_identity)
    rest = np.asarray(dl.dense_points(ict_dense, zeros_id, jnp.zeros(ict_model.n_expression)))
    centre = np.asarray(ict_dense.eye_centre)
    for unit, eye, axis, sign, limit in (("eyeLookOut_L", 0, 0, 1, dl.GAZE_YAW),
                                         ("eyeLookIn_R", 1, 0, 1, dl.GAZE_YAW),
                                         ("eyeLookUp_L", 0, 1, 1, dl.GAZE_PITCH),
                                         ("eyeLookDown_R", 1, 1, -1, dl.GAZE_PITCH)):
        expression = np.zeros(ict_model.n_expression, np.float32)
        expression[ict_model.expression_index(unit)] = 1.0
        moved = np.asarray(dl.dense_points(ict_dense, zeros_id, jnp.asarray(expression)))
        iris = dl.IRIS_POINTS[eye][0]
        a, b = rest[iris] - centre[eye], moved[iris] - centre[eye]
        # The turn in the plane of the rotation: (x, z) for yaw, (y, z) for pitch.
        angle = abs(math.atan2(b[axis], b[2]) - math.atan2(a[axis], a[2]))
        assert angle == pytest.approx(limit, abs=1e-3), unit
        assert sign * (b - a)[axis] > 0, unit          # Toward +x (out_L, in_R), up, down.
        other = dl.IRIS_POINTS[1 - eye][0]
        np.testing.assert_allclose(moved[other], rest[other], atol=1e-6)
    # The lids are the model's own eyeLook deformation; surface points stay linear.
    np.testing.assert_allclose(np.asarray(ict_dense.exp_basis)[468:], 0.0)


def test_eye_openness_of_detected_points(ict_dense):
    points = np.zeros((dl.N_DENSE, 2))
    pairs, corners = np.asarray(ict_dense.aperture_pairs), np.asarray(ict_dense.eye_corners)
    for e in (0, 1):
        points[corners[e, 0]] = [0.0, 0.0]
        points[corners[e, 1]] = [30.0, 0.0]
        points[pairs[e, :, 0]] = [[10, -4], [15, -5], [20, -4]]
        points[pairs[e, :, 1]] = [[10, 4], [15, 5], [20, 4]]
    np.testing.assert_allclose(dl.eye_openness(ict_dense, points), [26 / 90] * 2, rtol=1e-6)


def test_dense_68_of_an_estimate_in_image_pixels(ict_model, ict_dense):
    """`evaluation.image_points.dense68_image`: the estimated face's points at MediaPipe's 68,
    projected by the estimate's crop camera and mapped back through its crop affine: the crop
    points are those of `project_dense` (and agree with ICT's own inner landmarks), the image
    points undo the affine, and a frame without a face is a NaN row."""
    import types
    from cpem_jax.evaluation.image_points import dense68_image, vertices_image
    from cpem_jax.geometry.pipeline import project_landmarks
    camera = crop_camera(224)
    coeffs = ict_model.layout().zeros((1,)).replace(
        rotation=jnp.array([[0.1, 0.3, 0.0]]), translation=jnp.array([[0.5, -1.0, 3.0]]))
    affine = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, -20.0]])      # image -> crop
    estimate = types.SimpleNamespace(face_found=np.array([False, True]),
                                     coefficients=lambda: coeffs, camera=camera,
                                     crop_affine=np.stack([affine, affine]))
    got = dense68_image(estimate, ict_dense)
    assert got.shape == (2, 68, 2) and np.isnan(got[0]).all()
    crop = np.asarray(project_dense(ict_dense, coeffs, camera))[0, IBUG68_FROM_MESH]
    np.testing.assert_allclose(got[1] * 0.5 + affine[:, 2], crop, atol=1e-3)
    own = np.asarray(project_landmarks(ict_model, coeffs, camera))[0]
    inter_ocular = np.linalg.norm(own[36] - own[45])
    assert np.linalg.norm(crop[17:] - own[17:], axis=1).mean() < 0.03 * inter_ocular
    # `vertices_image` at ICT's own landmark vertices: the same mapping of projected vertices.
    at = vertices_image(estimate, ict_model, np.asarray(ict_model.landmark_ids))
    assert at.shape == (2, 68, 2) and np.isnan(at[0]).all()
    np.testing.assert_allclose(at[1] * 0.5 + affine[:, 2], own, atol=1e-3)
    none = types.SimpleNamespace(face_found=np.array([False]), crop_affine=affine[None])
    assert np.isnan(vertices_image(none, ict_model, np.arange(5))).all()
    assert vertices_image(none, ict_model, np.arange(5)).shape == (1, 5, 2)
