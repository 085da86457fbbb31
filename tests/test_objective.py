"""The one reconstruction objective shared by training and fitting (cpem_jax.losses.objective)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.fit.objective import FitData, FitWeights, fit_terms
from cpem_jax.fit.params import FrameParams, SharedParams
from cpem_jax.geometry.camera import crop_camera
from cpem_jax.geometry.shading import ambient_lighting
from cpem_jax.losses import (TRAINING_WEIGHTS, Targets, identity_consistency_loss,
                             photometric_loss, reconstruction_terms)
from cpem_jax.render.face_renderer import render_face
from cpem_jax.train.step import forward_losses, training_terms

SIZE = 32


def _coefficients(model, n, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)
    coeffs = model.layout().zeros()
    coeffs = jax.tree_util.tree_map(lambda x: jnp.repeat(x[None], n, axis=0), coeffs)
    return coeffs.replace(
        identity=0.5 * jax.random.normal(keys[0], coeffs.identity.shape),
        expression=jax.random.uniform(keys[1], coeffs.expression.shape, maxval=0.5),
        albedo=0.3 * jax.random.normal(keys[2], coeffs.albedo.shape),
        lighting=ambient_lighting(0.8, (n,)),
        rotation=0.1 * jax.random.normal(keys[3], (n, 3)))


def _targets(n, seed=1, skin=1.0):
    rng = np.random.default_rng(seed)
    return Targets(image=jnp.asarray(rng.uniform(0, 1, (n, SIZE, SIZE, 3)), jnp.float32),
                   skin_mask=jnp.full((n, SIZE, SIZE), skin, jnp.float32),
                   landmarks=jnp.asarray(rng.uniform(8, 24, (n, 68, 2)), jnp.float32),
                   front_flag=jnp.array([True, False] * (n // 2)))


def _fixed_network(coeffs):
    """An apply_fn that ignores its input and returns `coeffs` (a network stand-in)."""
    def apply_fn(variables, images, train=False, mutable=None):
        return (coeffs, {"batch_stats": {}}) if train else coeffs
    return apply_fn


def _batch(targets, clips, frames):
    unfold = lambda x: x.reshape((clips, frames) + x.shape[1:])
    return {"image": unfold(targets.image), "skin_mask": unfold(targets.skin_mask),
            "landmarks": unfold(targets.landmarks), "front_flag": unfold(targets.front_flag)}


def mean_colour_embedding(images, landmarks):
    return jnp.mean(images, axis=(1, 2)) + 0.1


def test_silhouette_pixels_are_blended_once(fake_model):
    """The step's photometric term compares the input with a * face + (1 - a) * input.

    The input is one colour g per frame, so that the antialiased render over it is exactly
    a * c + (1 - a) * g; a * c and 1 - a come from two independent renders (over black and over
    white). Compositing a render that was already blended over black with its coverage again
    (a^2 * c + (1 - a) * g at silhouette pixels) fails.
    """
    camera = crop_camera(SIZE)
    coeffs = _coefficients(fake_model, 4)
    colours = jnp.array([[0.2, 0.5, 0.9], [0.7, 0.1, 0.3], [1.0, 1.0, 1.0], [0.4, 0.4, 0.0]])
    targets = _targets(4).replace(image=jnp.broadcast_to(colours[:, None, None],
                                                         (4, SIZE, SIZE, 3)))
    over_black = render_face(fake_model, coeffs, camera, background=jnp.zeros(3))
    over_white = render_face(fake_model, coeffs, camera, background=jnp.ones(3))
    alpha = 1.0 - (over_white.image - over_black.image)[..., 0]
    edge = (alpha > 0.05) & (alpha < 0.95)
    assert int(edge.sum()) > 20, "the test needs silhouette pixels"
    expected_image = over_black.image + (1.0 - alpha[..., None]) * targets.image
    expected_pho = photometric_loss(targets.image, expected_image, alpha, targets.skin_mask)

    _, (terms, _, _, rendered) = forward_losses(
        {}, {}, _fixed_network(coeffs), _batch(targets, 2, 2), fake_model, camera, {},
        render_face, None, train=True)
    np.testing.assert_allclose(rendered.image, expected_image, atol=2e-5)
    np.testing.assert_allclose(terms["pho"], expected_pho, rtol=1e-5)


@pytest.mark.parametrize("use_jit", [False, True])
def test_training_total_is_the_weighted_sum(fake_model, use_jit):
    camera = crop_camera(SIZE)
    coeffs = _coefficients(fake_model, 4)
    targets = _targets(4)
    weights = {**TRAINING_WEIGHTS, "exp": 2.0}

    def fn(coeffs):
        return forward_losses({}, {}, _fixed_network(coeffs), _batch(targets, 2, 2), fake_model,
                              camera, weights, render_face, mean_colour_embedding, train=False)
    total, (terms, _, _, _) = (jax.jit(fn) if use_jit else fn)(coeffs)
    expected = sum(weights[name] * terms[name] for name in TRAINING_WEIGHTS)
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    np.testing.assert_allclose(terms["idc"], identity_consistency_loss(
        coeffs.identity.reshape(2, 2, -1)), rtol=1e-5)
    assert set(terms) == set(TRAINING_WEIGHTS) | {"total"}
    # Every term contributes (the fake model has no contradictory pair, so L_exp is 0 there).
    assert all(float(terms[name]) > 0 for name in TRAINING_WEIGHTS if name != "exp")


def test_training_terms_finite_gradients_with_empty_masks(fake_model):
    camera = crop_camera(SIZE)
    targets = _targets(4, skin=0.0)

    def loss(coeffs):
        terms, _ = training_terms(fake_model, coeffs, camera, targets, 2, render_face, None)
        return terms["pho"] + terms["lm"]
    grads = jax.jit(jax.grad(loss))(_coefficients(fake_model, 4))
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_training_terms_reject_a_partial_clip(fake_model):
    with pytest.raises(ValueError, match="clips of 3 frames"):
        training_terms(fake_model, _coefficients(fake_model, 4), crop_camera(SIZE),
                       _targets(4), 3, render_face, None)


def test_fit_and_training_share_the_reconstruction_terms(fake_model):
    """The fit objective's shared terms are reconstruction_terms' values; it adds only the
    temporal and lighting priors."""
    camera = crop_camera(SIZE)
    coeffs = _coefficients(fake_model, 2)
    coeffs = coeffs.replace(identity=jnp.repeat(coeffs.identity[:1], 2, 0),
                            albedo=jnp.repeat(coeffs.albedo[:1], 2, 0))
    targets = _targets(2).replace(front_flag=None)
    shared = SharedParams(identity=coeffs.identity[0], albedo=coeffs.albedo[0])
    frames = FrameParams(expression=coeffs.expression, rotation=coeffs.rotation,
                         translation=coeffs.translation, lighting=coeffs.lighting)
    anchor = jax.tree_util.tree_map(lambda x: x[:1], frames)
    data = FitData(targets=targets, anchor=anchor, anchor_weight=jnp.float32(0.0))
    total, terms = fit_terms(shared, frames, data, fake_model, camera, FitWeights(),
                             render_face, photometric=True)
    shared_terms, _ = reconstruction_terms(fake_model, coeffs, camera, targets, render_face)
    for name, value in shared_terms.items():
        np.testing.assert_allclose(terms[name], value, rtol=1e-5, err_msg=name)
    assert set(terms) - set(shared_terms) == {"temporal", "lighting_reg"}
    weights = FitWeights()
    np.testing.assert_allclose(total, sum(getattr(weights, k) * v for k, v in terms.items()),
                               rtol=1e-5)


def test_perceptual_term_on_the_first_frames_of_each_clip(fake_model):
    """perceptual_frames=k computes L_per on frames 0..k-1 of every clip, the rest unchanged."""
    from cpem_jax.losses import perceptual_loss
    camera = crop_camera(SIZE)
    coeffs = _coefficients(fake_model, 6)
    targets = _targets(6)
    every, rendered = training_terms(fake_model, coeffs, camera, targets, 3, render_face,
                                     mean_colour_embedding)
    first, _ = training_terms(fake_model, coeffs, camera, targets, 3, render_face,
                              mean_colour_embedding, perceptual_frames=1)
    rows = np.array([0, 3])  # The first frame of each clip of 3.
    expected = perceptual_loss(targets.image[rows], rendered.image[rows],
                               targets.landmarks[rows], mean_colour_embedding)
    np.testing.assert_allclose(first["per"], expected, rtol=1e-5)
    assert abs(float(first["per"]) - float(every["per"])) > 1e-7
    for name in set(every) - {"per"}:
        np.testing.assert_allclose(first[name], every[name], rtol=1e-6, err_msg=name)
