"""Tests for cpem_jax.losses: hand-computed values, gradients, empty masks, schedule, jit."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from cpem_jax.face_model.model import CoeffLayout
from cpem_jax.losses import (FITTING_WEIGHTS, TRAINING_WEIGHTS, coefficient_regularization,
                             combine_losses, cosine_similarity, exp_loss_weight,
                             expression_exclusive_loss, expression_sparsity,
                             identity_consistency_loss, landmark_loss, landmark_weights,
                             perceptual_loss, photometric_loss, resolve_weights)
from cpem_jax.losses import perceptual as perceptual_module

JIT_MODES = [False, True]


def maybe_jit(fn, use_jit, **kwargs):
    return jax.jit(fn, **kwargs) if use_jit else fn


def assert_finite_tree(tree):
    for leaf in jax.tree_util.tree_leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf))), leaf


# ----------------------------------------------------------------------------- photometric
def _photometric_case():
    image = jnp.zeros((2, 1, 2, 3))
    render = jnp.array([[[[0.3, 0.4, 0.0], [0.0, 0.0, 0.2]]]] * 2)      # distances 0.5, 0.2
    render_mask = jnp.array([[[1.0, 1.0]], [[0.5, 0.5]]])
    skin_mask = jnp.array([[[1.0, 0.0]], [[1.0, 1.0]]])
    return image, render, render_mask, skin_mask


@pytest.mark.parametrize("use_jit", JIT_MODES)
def test_photometric_hand_computed(use_jit):
    # Image 0: only pixel 0 counts -> 0.5 / 1. Image 1: (0.5*0.5 + 0.5*0.2) / 1.0 = 0.35.
    loss = maybe_jit(photometric_loss, use_jit)(*_photometric_case())
    np.testing.assert_allclose(loss, (0.5 + 0.35) / 2, rtol=1e-6)


def test_photometric_is_l21_not_squared():
    image, render, render_mask, skin_mask = _photometric_case()
    doubled = photometric_loss(image, 2 * render, render_mask, skin_mask)
    np.testing.assert_allclose(doubled, 2 * photometric_loss(image, render, render_mask, skin_mask),
                               rtol=1e-6)


@pytest.mark.parametrize("use_jit", JIT_MODES)
def test_photometric_empty_mask_is_zero_with_finite_gradients(use_jit):
    image, render, _, _ = _photometric_case()
    empty = jnp.zeros((2, 1, 2))
    fn = maybe_jit(jax.value_and_grad(photometric_loss, argnums=(1, 2, 3)), use_jit)
    value, grads = fn(image, render, empty, empty)
    assert float(value) == 0.0
    assert_finite_tree(grads)


def test_photometric_identical_images_have_finite_zero_gradient():
    image = jax.random.uniform(jax.random.PRNGKey(0), (1, 4, 4, 3))
    mask = jnp.ones((1, 4, 4))
    grad = jax.grad(photometric_loss, argnums=1)(image, image, mask, mask)
    np.testing.assert_array_equal(grad, 0.0)


def test_photometric_gradients_match_finite_differences():
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    image = jax.random.uniform(keys[0], (2, 3, 3, 3))
    render = jax.random.uniform(keys[1], (2, 3, 3, 3))
    render_mask = jax.random.uniform(keys[2], (2, 3, 3))
    skin_mask = (jax.random.uniform(keys[3], (2, 3, 3)) > 0.3).astype(jnp.float32)
    check_grads(lambda r, m: photometric_loss(image, r, m, skin_mask), (render, render_mask),
                order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_photometric_rejects_mismatched_masks():
    image, render, render_mask, _ = _photometric_case()
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        photometric_loss(image, render, render_mask, jnp.ones((2, 2, 1)))


# ----------------------------------------------------------------------------- landmarks
def test_landmark_weights_per_region():
    weights = np.asarray(landmark_weights(jnp.array([True, False])))
    assert weights.shape == (2, 68)
    np.testing.assert_array_equal(weights[:, :17], 1.0)            # jaw contour
    np.testing.assert_array_equal(weights[:, 17:36], 10.0)         # brows, nose
    np.testing.assert_array_equal(weights[:, 48:], 10.0)           # mouth
    np.testing.assert_array_equal(weights[0, 36:48], 10.0)         # eyes, frontal
    np.testing.assert_array_equal(weights[1, 36:48], 1.0)          # eyes, not frontal


@pytest.mark.parametrize("use_jit", JIT_MODES)
def test_landmark_hand_computed(use_jit):
    target = jax.random.uniform(jax.random.PRNGKey(2), (2, 68, 2)) * 224
    offset = np.zeros((2, 68, 2), np.float32)
    offset[:, 0] = (22.4, 0.0)      # contour: (0.1)^2 = 0.01, weight 1
    offset[:, 40] = (0.0, 22.4)     # eye: 0.01, weight 10 (frontal) or 1
    offset[:, 30] = (22.4, 22.4)    # nose: 0.02, weight 10
    fn = maybe_jit(landmark_loss, use_jit, static_argnums=3)
    loss = fn(target + offset, target, jnp.array([True, False]), 224.0)
    frontal = 0.01 * 1 + 0.01 * 10 + 0.02 * 10
    profile = 0.01 * 1 + 0.01 * 1 + 0.02 * 10
    np.testing.assert_allclose(loss, (frontal + profile) / (2 * 68), rtol=1e-4)


def test_landmark_gradients_match_finite_differences():
    keys = jax.random.split(jax.random.PRNGKey(3))
    predicted = jax.random.uniform(keys[0], (2, 68, 2)) * 224
    target = jax.random.uniform(keys[1], (2, 68, 2)) * 224
    flags = jnp.array([True, False])
    check_grads(lambda p: landmark_loss(p, target, flags, 224.0), (predicted,), order=1,
                modes=["rev"], atol=1e-2, rtol=1e-2)


def test_landmark_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N, 68, 2\]"):
        landmark_loss(jnp.zeros((1, 5, 2)), jnp.zeros((1, 5, 2)), jnp.array([True]), 224.0)
    with pytest.raises(ValueError, match="front_face_flag"):
        landmark_loss(jnp.zeros((1, 68, 2)), jnp.zeros((1, 68, 2)), jnp.array([True, True]),
                      224.0)


# ----------------------------------------------------------------------------- regularisation
def test_regularization_hand_computed():
    identity = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    albedo = jnp.array([[10.0], [0.0]])
    # Frame 0: 1 + 4 + 1.7e-3 * 100 = 5.17; frame 1: 0.
    np.testing.assert_allclose(coefficient_regularization(identity, albedo), 5.17 / 2, rtol=1e-6)


def test_sparsity_hand_computed():
    expression = jnp.array([[0.1, -0.3], [0.5, 0.1]])
    np.testing.assert_allclose(expression_sparsity(expression), 0.25, rtol=1e-6)


# ----------------------------------------------------------------------------- identity consistency
def test_identity_consistency_hand_computed():
    identity = jnp.array([[[1.0, 0.0], [3.0, 2.0]]])          # mean [2, 1]; each frame 2
    np.testing.assert_allclose(identity_consistency_loss(identity), 2.0, rtol=1e-6)


def test_identity_consistency_single_frame_is_zero():
    assert float(identity_consistency_loss(jnp.ones((3, 1, 5)))) == 0.0


@pytest.mark.parametrize("use_jit", JIT_MODES)
def test_identity_consistency_gradient_is_2_diff_times_weight(use_jit):
    batch, frames, weight = 2, 3, 1000.0
    identity = jax.random.normal(jax.random.PRNGKey(4), (batch, frames, 5))
    grad = maybe_jit(jax.grad(lambda a: weight * identity_consistency_loss(a)), use_jit)(identity)
    mean = identity.mean(axis=1, keepdims=True)
    # Each frame's term has weight `weight / (B * T)` (mean over clips and frames).
    np.testing.assert_allclose(grad, 2 * (identity - mean) * weight / (batch * frames),
                               rtol=1e-5, atol=1e-4)


def test_identity_consistency_mean_is_a_fixed_label():
    # With the mean under stop_gradient the Hessian is 2/(B*T) * I: no coupling between frames.
    # (A mean that carried gradient would give 2/(B*T) * (I - 1/T) within each clip.)
    identity = jax.random.normal(jax.random.PRNGKey(5), (1, 3, 2))
    hessian = jax.hessian(identity_consistency_loss)(identity).reshape(6, 6)
    np.testing.assert_allclose(hessian, 2.0 / 3.0 * np.eye(6), atol=1e-6)


def test_identity_consistency_rejects_folded_input():
    with pytest.raises(ValueError, match="unfold"):
        identity_consistency_loss(jnp.zeros((8, 5)))


# ----------------------------------------------------------------------------- expression exclusive
PAIRS = jnp.array([[0, 1], [2, 3], [3, 0]], jnp.int32)


@pytest.mark.parametrize("use_jit", JIT_MODES)
def test_exclusive_hand_computed_and_winner_untouched(use_jit):
    expression = jnp.array([[0.9, 0.2, 0.5, 0.6]])
    value, grad = maybe_jit(jax.value_and_grad(expression_exclusive_loss), use_jit)(
        expression, PAIRS)
    # Losers: 0.2 (pair 0-1), 0.5 (pair 2-3), 0.6 (pair 3-0).
    np.testing.assert_allclose(value, 0.2 ** 2 + 0.5 ** 2 + 0.6 ** 2, rtol=1e-6)
    # Unit 0 wins both of its pairs: its gradient is exactly zero.
    np.testing.assert_allclose(grad, [[0.0, 0.4, 1.0, 1.2]], rtol=1e-6)
    assert float(grad[0, 0]) == 0.0


def test_exclusive_averages_over_frames_and_breaks_ties_on_second():
    expression = jnp.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    value, grad = jax.value_and_grad(expression_exclusive_loss)(expression, PAIRS[:1])
    np.testing.assert_allclose(value, 0.25 / 2, rtol=1e-6)
    np.testing.assert_allclose(grad[0], [0.0, 0.5, 0.0, 0.0], rtol=1e-6)


def test_exclusive_empty_pairs_and_bad_pairs():
    expression = jnp.full((2, 4), 0.5)
    assert float(expression_exclusive_loss(expression, jnp.zeros((0, 2), jnp.int32))) == 0.0
    with pytest.raises(ValueError, match=r"int \[P, 2\]"):
        expression_exclusive_loss(expression, jnp.array([[0.0, 1.0]]))


def test_exp_loss_weight_schedule():
    total = 300
    assert float(exp_loss_weight(0, total)) == 0.0
    assert float(exp_loss_weight(199, total)) == 0.0
    assert float(exp_loss_weight(200, total)) == 10.0
    jitted = jax.jit(lambda step: exp_loss_weight(step, total, start_fraction=0.5, weight=3.0))
    assert float(jitted(jnp.int32(149))) == 0.0
    assert float(jitted(jnp.int32(150))) == 3.0
    with pytest.raises(ValueError, match="total_steps"):
        exp_loss_weight(0, 0)


# ----------------------------------------------------------------------------- perceptual
def mean_colour_embedding(images, landmarks):
    del landmarks
    return images.mean(axis=(1, 2))


def test_perceptual_hand_computed():
    image = jnp.broadcast_to(jnp.array([1.0, 1.0, 0.0]), (1, 2, 2, 3))
    render = jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0]), (1, 2, 2, 3))
    landmarks = jnp.zeros((1, 68, 2))
    loss = perceptual_loss(image, render, landmarks, mean_colour_embedding)
    np.testing.assert_allclose(loss, 1.0 - 1.0 / np.sqrt(2.0), rtol=1e-6)
    same = perceptual_loss(image, image, landmarks, mean_colour_embedding)
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_perceptual_zero_embedding_has_finite_gradients():
    image = jnp.ones((1, 2, 2, 3))
    render = jnp.zeros((1, 2, 2, 3))
    grad = jax.grad(lambda r: perceptual_loss(image, r, jnp.zeros((1, 68, 2)),
                                              mean_colour_embedding))(render)
    assert_finite_tree(grad)
    assert_finite_tree(jax.grad(lambda a: cosine_similarity(a, a).sum())(jnp.zeros((2, 3))))


def test_perceptual_off_without_network_logs_once(caplog, monkeypatch):
    monkeypatch.setattr(perceptual_module, "_DISABLED_LOGGED", False)
    image = jnp.ones((1, 2, 2, 3))
    with caplog.at_level(logging.WARNING, logger=perceptual_module.__name__):
        first = perceptual_loss(image, image * 0.5, jnp.zeros((1, 68, 2)), None)
        perceptual_loss(image, image * 0.5, jnp.zeros((1, 68, 2)), None)
    assert float(first) == 0.0
    messages = [r.getMessage() for r in caplog.records
                if "perceptual loss is OFF" in r.getMessage()]
    assert len(messages) == 1


# ----------------------------------------------------------------------------- total
def test_combine_losses_weights_and_names():
    total, terms = combine_losses({"pho": jnp.float32(1.0), "lm": jnp.float32(2.0)})
    np.testing.assert_allclose(total, 1.9 * 1.0 + 80.0 * 2.0, rtol=1e-6)
    assert set(terms) == {"pho", "lm", "total"}
    total, _ = combine_losses({"exp": jnp.float32(1.0)}, {"exp": exp_loss_weight(0, 10)})
    assert float(total) == 0.0
    with pytest.raises(KeyError, match="valid names"):
        resolve_weights({"photometric": 1.0})
    with pytest.raises(KeyError, match="valid names"):
        combine_losses({"bogus": jnp.float32(1.0)})
    with pytest.raises(KeyError, match="valid names"):  # A training term in the fit objective.
        combine_losses({"idc": jnp.float32(1.0)}, defaults=FITTING_WEIGHTS)
    assert resolve_weights({"idc": 100.0})["idc"] == 100.0
    # One set of defaults: the paper's weights (landmarks in crop units) and the fit's priors.
    assert TRAINING_WEIGHTS == {"pho": 1.9, "per": 0.2, "lm": 80.0, "reg": 1e-4, "sp": 0.1,
                                "idc": 1000.0, "exp": 10.0}
    assert FITTING_WEIGHTS == {"pho": 1.9, "lm": 80.0, "reg": 1e-4, "sp": 0.25, "exp": 10.0,
                               "temporal": 0.005, "lighting_reg": 1e-3,
                               "gaze_hidden": 1.0, "eye_aperture": 1.0, "eye_shut": 1.0}
