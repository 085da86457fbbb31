"""The dense landmark term (cpem_jax.losses.landmark) and its place in the shared objective."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.face_model.dense_landmarks import DenseLandmarks
from cpem_jax.geometry.camera import crop_camera
from cpem_jax.losses import Targets, reconstruction_terms
from cpem_jax.losses.landmark import (BACK_FACING_WEIGHT, DENSE_REGION_WEIGHTS,
                                      dense_landmark_loss, dense_region_weights, project_dense,
                                      visibility_weights)

JIT_MODES = [False, True]


def _maybe_jit(fn, use_jit):
    return jax.jit(fn, static_argnums=(3,)) if use_jit else fn


@pytest.mark.parametrize("use_jit", JIT_MODES)
def test_dense_loss_hand_computed(use_jit):
    predicted = jnp.array([[[0.0, 0.0], [10.0, 0.0], [0.0, 5.0]],
                           [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    target = jnp.array([[[3.0, 4.0], [10.0, 0.0], [0.0, 0.0]],
                        [[1.0, 1.0], [2.0, 0.0], [np.nan, np.nan]]])
    weights = jnp.array([[1.0, 7.0, 2.0], [5.0, 0.5, 0.0]])
    # Squared distances / 10^2: frame 0: 25, 0, 25 -> 0.25, 0, 0.25; frame 1: 0, 4 -> 0, 0.04.
    expected = (1.0 * 0.25 + 2.0 * 0.25 + 0.5 * 0.04) / (2 * 3)
    value = _maybe_jit(dense_landmark_loss, use_jit)(predicted, target, weights, 10.0)
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_dense_loss_nan_target_under_zero_weight_has_finite_gradient():
    target = jnp.array([[[1.0, 2.0], [np.nan, np.nan]]])
    weights = jnp.array([[1.0, 0.0]])
    grad = jax.grad(lambda p: dense_landmark_loss(p, target, weights, 4.0))(jnp.zeros((1, 2, 2)))
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(grad[0, 1], 0.0)
    np.testing.assert_allclose(grad[0, 0], -2 * np.array([1.0, 2.0]) / 16 / 2)


def test_dense_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N, P\]"):
        dense_landmark_loss(jnp.zeros((1, 3, 2)), jnp.zeros((1, 3, 2)), jnp.zeros((3,)), 1.0)
    with pytest.raises(ValueError, match="crop size"):
        dense_landmark_loss(jnp.zeros((1, 3, 2)), jnp.zeros((1, 3, 2)), jnp.zeros((1, 3)), 0)


def _toy_dense(n_id=2, n_exp=3):
    """Four points on a plane facing +z (one facing +x), no eyes."""
    mean = jnp.array([[-1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, -1.0, 0.0], [2.0, 0.0, -1.0]])
    normals = jnp.array([[0.0, 0.0, 1.0]] * 3 + [[1.0, 0.0, 0.0]])
    return DenseLandmarks(
        mean=mean, id_basis=jnp.zeros((4, 3, n_id)), exp_basis=jnp.ones((4, 3, n_exp)) * 0.1,
        normals=normals, valid=jnp.array([True, True, True, False]),
        region=jnp.array([4, 5, 0, 1], jnp.int32), eye=jnp.full((4,), -1, jnp.int32),
        eye_centre=jnp.zeros((2, 3)), eye_centre_id=jnp.zeros((2, 3, n_id)),
        gaze_units=jnp.zeros((2, 4), jnp.int32), aperture_pairs=jnp.zeros((2, 3, 2), jnp.int32),
        eye_corners=jnp.zeros((2, 2), jnp.int32))


def test_region_and_visibility_weights():
    dense = _toy_dense()
    np.testing.assert_allclose(dense_region_weights(dense), [
        DENSE_REGION_WEIGHTS["eyelids"], DENSE_REGION_WEIGHTS["lips"],
        DENSE_REGION_WEIGHTS["surface"], 0.0])
    yaw = lambda deg: jnp.array([[0.0, np.radians(deg), 0.0]])
    np.testing.assert_allclose(visibility_weights(dense, yaw(0.0))[0], [1, 1, 1, BACK_FACING_WEIGHT],
                               atol=1e-6)
    # Turned 90 degrees: the plane is edge-on (normal z 0), the +x point faces the camera.
    np.testing.assert_allclose(visibility_weights(dense, yaw(-90.0))[0],
                               [BACK_FACING_WEIGHT] * 3 + [1.0], atol=1e-6)
    np.testing.assert_allclose(visibility_weights(dense, yaw(180.0))[0], BACK_FACING_WEIGHT,
                               atol=1e-6)


def test_objective_uses_dense_targets(fake_model):
    """With Targets.dense the lm term is the dense loss (region weights x visibility); without a
    table it is one clear error; without dense targets it is the 68-point loss."""
    dense = _toy_dense(fake_model.n_identity, fake_model.n_expression)
    camera = crop_camera(32)
    coeffs = fake_model.layout().zeros((2,))
    projected = project_dense(dense, coeffs, camera)
    target = projected + jnp.array([1.0, -2.0])
    targets = Targets(image=jnp.zeros((2, 16, 16, 3)), skin_mask=jnp.zeros((2, 16, 16)),
                      landmarks=jnp.zeros((2, 68, 2)), dense=target)
    terms, _ = reconstruction_terms(fake_model, coeffs, camera, targets, photometric=False,
                                    dense=dense)
    weights = dense_region_weights(dense)
    expected = float(jnp.sum(weights) * 2 * 5.0 / 32 ** 2 / 8)   # 2 frames, 4 points, |d|^2 = 5.
    np.testing.assert_allclose(terms["lm"], expected, rtol=1e-5)
    explicit = targets.replace(dense_weights=jnp.ones((2, 4)))
    terms, _ = reconstruction_terms(fake_model, coeffs, camera, explicit, photometric=False,
                                    dense=dense)
    np.testing.assert_allclose(terms["lm"], 3 * 2 * 5.0 / 32 ** 2 / 8, rtol=1e-5)  # 3 valid.
    with pytest.raises(ValueError, match="no DenseLandmarks table"):
        reconstruction_terms(fake_model, coeffs, camera, targets, photometric=False)
    plain, _ = reconstruction_terms(fake_model, coeffs, camera, targets.replace(dense=None),
                                    photometric=False, dense=dense)
    assert float(plain["lm"]) > 0 and not np.isclose(float(plain["lm"]), expected)


def test_unit_sparsity_scales_each_unit(fake_model):
    coeffs = fake_model.layout().zeros((1,)).replace(expression=jnp.array([[0.4, 0.2]]))
    targets = Targets(image=jnp.zeros((1, 8, 8, 3)), skin_mask=jnp.zeros((1, 8, 8)),
                      landmarks=jnp.zeros((1, 68, 2)))
    terms, _ = reconstruction_terms(fake_model, coeffs, crop_camera(8), targets,
                                    photometric=False, unit_sparsity=jnp.array([3.0, 1.0]))
    np.testing.assert_allclose(terms["sp"], (3 * 0.4 + 0.2) / 2, rtol=1e-6)
