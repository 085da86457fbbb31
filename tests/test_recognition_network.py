"""Tests for the Flax port of dlib's face-recognition ResNet (cpem_jax/recognition/network.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from cpem_jax.recognition import embedding, network, weights

TINY_STAGES = ((4, 1, False), (8, 1, True))


def test_add_zero_filled_pads_the_end_of_each_axis():
    a = jnp.ones((1, 3, 3, 4))
    b = 2 * jnp.ones((1, 4, 4, 2))
    out = network._add_zero_filled(a, b)  # pylint: disable=protected-access
    assert out.shape == (1, 4, 4, 4)
    np.testing.assert_array_equal(out[0, :3, :3, :2], 3.0)   # both
    np.testing.assert_array_equal(out[0, :3, :3, 2:], 1.0)   # only a has these channels
    np.testing.assert_array_equal(out[0, 3, :, :2], 2.0)     # only b has the last row
    np.testing.assert_array_equal(out[0, 3, :, 2:], 0.0)     # neither


def test_full_network_shapes_and_param_tree():
    model = network.DlibFaceResNet()
    chips = jnp.zeros((2, network.CHIP_SIZE, network.CHIP_SIZE, 3))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), chips)
    out = jax.eval_shape(model.apply, variables, chips)
    assert out.shape == (2, network.EMBEDDING_DIM)
    names = set(variables["params"])
    assert {"stem_conv", "stem_affine", "fc", "stage1_block3", "stage4_block0"} <= names
    assert len(names) == 3 + sum(blocks for _, blocks, _ in network.DLIB_STAGES)


def test_bad_input_shape_raises():
    model = network.DlibFaceResNet(stages=TINY_STAGES)
    with pytest.raises(ValueError, match="chips\\[None\\]"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((24, 24, 3)))


def test_check_grads_tiny_network_float64():
    """Every kind of layer of the real network (stem, blocks with and without downsampling,
    zero-filled residual adds, pooling, fc) on a 24x24 input, in float64."""
    with jax.enable_x64(True):
        model = network.DlibFaceResNet(stages=TINY_STAGES, embedding_dim=5)
        chips = jax.random.uniform(jax.random.PRNGKey(1), (2, 24, 24, 3), jnp.float64)
        variables = model.init(jax.random.PRNGKey(2), chips)
        variables = jax.tree_util.tree_map(
            lambda p: (jnp.asarray(p, jnp.float64)
                       + 0.1 * jax.random.normal(jax.random.PRNGKey(3), p.shape, jnp.float64)),
            variables)
        check_grads(jax.jit(model.apply), (variables, chips), order=1, modes=("fwd", "rev"),
                    eps=1e-6, atol=1e-5, rtol=1e-5)


def test_check_grads_dlib_network_wrt_chip():
    """Gradients of the full-size network with dlib's weights (random weights when the file is
    absent), with respect to the chip, in float64."""
    try:
        variables = weights.load_params()
    except FileNotFoundError:
        chips = jnp.zeros((1, network.CHIP_SIZE, network.CHIP_SIZE, 3))
        variables = network.DlibFaceResNet().init(jax.random.PRNGKey(0), chips)
    with jax.enable_x64(True):
        variables = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), variables)
        chips = jax.random.uniform(jax.random.PRNGKey(4), (1, 150, 150, 3), jnp.float64)
        f = jax.jit(lambda c: embedding.embed_chips(variables, c))
        check_grads(f, (chips,), order=1, modes=("rev",), eps=1e-6, atol=1e-5, rtol=1e-5)


def test_too_small_chips_raise():
    model = network.DlibFaceResNet()
    with pytest.raises(ValueError, match="too small"):
        jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)))
