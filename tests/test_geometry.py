"""Geometry as pure functions: shape, rotation, camera, normals, SH shading, landmarks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.geometry import camera as cam
from cpem_jax.geometry.mesh import face_normals, vertex_normals
from cpem_jax.geometry.pipeline import face_geometry, project_landmarks
from cpem_jax.geometry.rotation import euler_to_matrix, matrix_to_euler
from cpem_jax.geometry.shading import ambient_lighting, sh_shade
from cpem_jax.geometry.shape import face_albedo, face_shape


def test_zero_coefficients_give_the_mean_shape(fake_model):
    coeffs = fake_model.layout().zeros()
    np.testing.assert_allclose(face_shape(fake_model, coeffs), fake_model.mean_shape, atol=1e-6)
    np.testing.assert_allclose(face_albedo(fake_model, coeffs), fake_model.albedo_mean, atol=1e-6)


def test_shape_is_linear_in_each_group(fake_model):
    coeffs = fake_model.layout().zeros()
    one_id = coeffs.replace(identity=coeffs.identity.at[1].set(2.0))
    np.testing.assert_allclose(face_shape(fake_model, one_id),
                               fake_model.mean_shape + 2.0 * fake_model.id_basis[..., 1], atol=1e-5)
    one_exp = coeffs.replace(expression=coeffs.expression.at[0].set(0.5))
    np.testing.assert_allclose(face_shape(fake_model, one_exp),
                               fake_model.mean_shape + 0.5 * fake_model.exp_basis[..., 0],
                               atol=1e-5)


def test_shape_batches_under_vmap_and_jit(fake_model):
    layout = fake_model.layout()
    flat = jax.random.normal(jax.random.PRNGKey(0), (4, layout.total)) * 0.3
    batched = jax.jit(face_shape)(fake_model, layout.split(flat))
    one_by_one = jnp.stack([face_shape(fake_model, layout.split(f)) for f in flat])
    mapped = jax.vmap(lambda f: face_shape(fake_model, layout.split(f)))(flat)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    np.testing.assert_allclose(mapped, one_by_one, atol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_rotations_are_orthonormal_with_determinant_one(seed):
    angles = jax.random.uniform(jax.random.PRNGKey(seed), (16, 3), minval=-3.0, maxval=3.0)
    r = np.asarray(euler_to_matrix(angles), np.float64)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)


def test_euler_convention_and_inverse():
    nose = np.array([0.0, 0.0, 1.0])
    # Positive yaw turns the nose toward +x (the subject's left).
    assert (np.asarray(euler_to_matrix(jnp.array([0.0, 0.3, 0.0]))) @ nose)[0] > 0.2
    # Positive pitch turns the nose down.
    assert (np.asarray(euler_to_matrix(jnp.array([0.3, 0.0, 0.0]))) @ nose)[1] < -0.2
    # Positive roll tilts the head top toward -x.
    assert (np.asarray(euler_to_matrix(jnp.array([0.0, 0.0, 0.3]))) @ [0, 1, 0])[0] < -0.2
    # Order: R = Rz Ry Rx.
    a = jnp.array([0.2, -0.4, 0.7])
    rx = euler_to_matrix(jnp.array([a[0], 0, 0]))
    ry = euler_to_matrix(jnp.array([0, a[1], 0]))
    rz = euler_to_matrix(jnp.array([0, 0, a[2]]))
    np.testing.assert_allclose(euler_to_matrix(a), rz @ ry @ rx, atol=1e-6)
    np.testing.assert_allclose(matrix_to_euler(euler_to_matrix(a)), a, atol=1e-5)


def test_known_point_projects_where_it_should():
    camera = cam.Camera(focal=jnp.float32(500.0), cx=jnp.float32(100.0), cy=jnp.float32(80.0),
                        base_translation=jnp.array([0.0, 0.0, -50.0]), width=200, height=160)
    # A point 2 cm right and 1 cm up of the model origin, 50 cm in front of the camera.
    points = cam.transform(jnp.array([[2.0, 1.0, 0.0]]), jnp.eye(3), jnp.zeros(3), camera)
    uv, depth = cam.project(camera, points)
    np.testing.assert_allclose(uv[0], [100.0 + 500.0 * 2 / 50, 80.0 - 500.0 * 1 / 50], atol=1e-4)
    np.testing.assert_allclose(depth[0], 50.0, atol=1e-5)
    # The optical axis hits the principal point; a translation moves it.
    uv, _ = cam.project(camera, cam.transform(jnp.zeros((1, 3)), jnp.eye(3),
                                              jnp.array([0.0, 0.0, 10.0]), camera))
    np.testing.assert_allclose(uv[0], [100.0, 80.0], atol=1e-5)


def test_numpy_transform_and_projection_match_jax_in_float64():
    """xp=np keeps host-side work in numpy float64 and agrees with the jnp path."""
    rng = np.random.default_rng(3)
    points = rng.normal(0.0, 5.0, (7, 3))
    matrix = np.asarray(euler_to_matrix(np.array([0.2, -0.5, 0.1]), xp=np), np.float64)
    shift = np.array([1.0, -2.0, 3.0])
    jax_camera = cam.default_camera(224)
    np_camera = cam.Camera(focal=float(jax_camera.focal), cx=float(jax_camera.cx),
                           cy=float(jax_camera.cy),
                           base_translation=np.asarray(jax_camera.base_translation, np.float64))
    moved = cam.transform(points, matrix, shift, np_camera, xp=np)
    uv, depth = cam.project(np_camera, moved, xp=np)
    assert isinstance(uv, np.ndarray) and uv.dtype == np.float64 and depth.dtype == np.float64
    ref_uv, ref_depth = cam.project(jax_camera, cam.transform(
        jnp.asarray(points, jnp.float32), jnp.asarray(matrix, jnp.float32),
        jnp.asarray(shift, jnp.float32), jax_camera))
    np.testing.assert_allclose(uv, ref_uv, atol=1e-3)
    np.testing.assert_allclose(depth, ref_depth, atol=1e-4)


def test_points_behind_the_camera_stay_finite():
    camera = cam.default_camera(64)
    uv, depth = cam.project(camera, jnp.array([[1.0, 1.0, 5.0], [0.0, 0.0, 0.0]]))
    assert np.all(np.isfinite(uv)) and depth[0] < 0


def test_default_camera_rejects_bad_values():
    with pytest.raises(ValueError, match="image_size"):
        cam.default_camera(0)
    with pytest.raises(ValueError, match="positive"):
        cam.default_camera(224, focal=-1.0)


def test_normals_of_a_plane():
    xs, ys = np.meshgrid(np.arange(4.0), np.arange(3.0))
    verts = np.stack([xs, ys, np.full_like(xs, 2.0)], -1).reshape(-1, 3)
    tris = []
    for j in range(2):
        for i in range(3):
            a = j * 4 + i
            tris += [(a, a + 1, a + 5), (a, a + 5, a + 4)]
    tris = np.asarray(tris)
    np.testing.assert_allclose(face_normals(verts, tris), np.tile([0, 0, 1.0], (len(tris), 1)),
                               atol=1e-6)
    np.testing.assert_allclose(vertex_normals(verts, tris), np.tile([0, 0, 1.0], (12, 1)),
                               atol=1e-6)
    # Tilted plane z = x: normal (-1, 0, 1) / sqrt 2; flipped winding flips it.
    tilted = verts.copy()
    tilted[:, 2] = tilted[:, 0]
    expected = np.array([-1.0, 0.0, 1.0]) / np.sqrt(2)
    np.testing.assert_allclose(vertex_normals(tilted, tris), np.tile(expected, (12, 1)), atol=1e-6)
    np.testing.assert_allclose(vertex_normals(tilted, tris[:, ::-1]), np.tile(-expected, (12, 1)),
                               atol=1e-6)


def test_unused_and_degenerate_vertices_have_finite_normals_and_gradients():
    verts = jnp.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 5, 5]])  # Collinear + unused.
    tris = jnp.array([[0, 1, 2]])
    normals = vertex_normals(verts, tris)
    assert np.all(np.isfinite(normals))
    grad = jax.grad(lambda v: vertex_normals(v, tris).sum())(verts)
    assert np.all(np.isfinite(grad))


def test_dc_only_lighting_shades_uniformly():
    normals = jax.random.normal(jax.random.PRNGKey(0), (50, 3))
    normals = normals / jnp.linalg.norm(normals, axis=-1, keepdims=True)
    albedo = jnp.full((50, 3), 0.5)
    colors = sh_shade(normals, albedo, ambient_lighting(0.8))
    np.testing.assert_allclose(colors, 0.4, atol=1e-6)


def test_first_band_light_brightens_normals_facing_it():
    light = ambient_lighting(0.5).at[:, 2].set(0.3)  # The z-linear term.
    normals = jnp.array([[0.0, 0, 1], [0, 0, -1], [1, 0, 0]])
    colors = sh_shade(normals, jnp.ones((3, 3)), light)
    assert colors[0, 0] > colors[2, 0] > colors[1, 0]
    np.testing.assert_allclose(colors[2], 0.5, atol=1e-6)


def test_face_geometry_landmarks_match_the_shortcut(fake_model):
    camera = cam.default_camera(128)
    coeffs = fake_model.layout().zeros()
    coeffs = coeffs.replace(rotation=jnp.array([0.1, -0.2, 0.05]),
                            identity=coeffs.identity.at[0].set(1.0))
    geo = face_geometry(fake_model, coeffs, camera)
    np.testing.assert_allclose(geo.landmarks_uv, project_landmarks(fake_model, coeffs, camera),
                               atol=1e-3)
    assert geo.uv.shape == (fake_model.n_vertices, 2)
    assert np.all(np.isfinite(geo.colors))
