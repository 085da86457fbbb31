"""Tests for cpem_jax.networks: shapes, head initialisation, batch norm, folding, backbones.

Real-size networks are checked with `jax.eval_shape` only (no compute); forward passes use tiny
widths at 32x32.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.face_model.model import CoeffLayout, Coefficients
from cpem_jax.networks import (MobileNetV2, PENet, ResNet, fold_frames, init_pe_net,
                               lighting_offset, normalize_images, unfold_frames)

LAYOUT = CoeffLayout(identity=6, expression=5, albedo=4)
SIZE = 32


def n_params(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


@pytest.fixture(scope="module")
def tiny_resnet18():
    """A tiny ResNet-18 PE-Net (zero-initialised heads), its variables and a jitted apply."""
    net = PENet(LAYOUT, backbone="resnet18", width_scale=0.125,
                translation_offset=(0.0, 0.0, -50.0))
    variables = init_pe_net(net, jax.random.PRNGKey(0), image_size=SIZE, batch=2)
    return net, variables, jax.jit(net.apply)


def with_random_heads(variables, scale=0.05):
    """Copies `variables` with every head kernel drawn from N(0, scale^2)."""
    heads = variables["params"]["heads"]
    keys = iter(jax.random.split(jax.random.PRNGKey(7), len(heads)))
    new_heads = {name: {**layer, "kernel": scale * jax.random.normal(next(keys),
                                                                    layer["kernel"].shape)}
                 for name, layer in heads.items()}
    return {**variables, "params": {**variables["params"], "heads": new_heads}}


@pytest.fixture(scope="module")
def images():
    return jax.random.uniform(jax.random.PRNGKey(1), (2, SIZE, SIZE, 3))


# Backbone parameter counts of torchvision's ImageNet networks without their classifier
# (resnet50 25,557,032 - fc 2,049,000; resnet18 11,689,512 - 513,000; mobilenet_v2
# 3,504,872 - 1,281,000); batch-norm running statistics are not parameters.
@pytest.mark.parametrize("module, features, params", [
    (ResNet(depth=50), 2048, 23_508_032),
    (ResNet(depth=18), 512, 11_176_512),
    (MobileNetV2(), 1280, 2_223_872),
])
def test_standard_backbones_shapes_and_parameter_counts(module, features, params):
    x = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
    variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(x.shape)))
    out = jax.eval_shape(lambda v: module.apply(v, jnp.zeros(x.shape)), variables)
    assert out.shape == (2, features)
    assert module.num_features == features
    assert n_params(variables["params"]) == params


def test_pe_net_resnet50_output_shapes_at_224():
    layout = CoeffLayout(identity=100, expression=53, albedo=80)
    net = PENet(layout, backbone="resnet50")
    variables = jax.eval_shape(lambda: init_pe_net(net, jax.random.PRNGKey(0)))
    coeffs = jax.eval_shape(lambda v: net.apply(v, jnp.zeros((3, 224, 224, 3))), variables)
    assert isinstance(coeffs, Coefficients)
    assert coeffs.identity.shape == (3, 100)
    assert coeffs.expression.shape == (3, 53)
    assert coeffs.albedo.shape == (3, 80)
    assert coeffs.lighting.shape == (3, 3, 9)
    assert coeffs.rotation.shape == (3, 3)
    assert coeffs.translation.shape == (3, 3)
    assert set(variables["params"]) == {"backbone", "heads"}


def test_zero_initialised_heads_give_the_neutral_prediction(tiny_resnet18, images):
    _, variables, apply = tiny_resnet18
    coeffs = apply(variables, images)
    np.testing.assert_array_equal(coeffs.identity, 0.0)
    np.testing.assert_array_equal(coeffs.albedo, 0.0)
    np.testing.assert_array_equal(coeffs.rotation, 0.0)
    np.testing.assert_allclose(coeffs.translation, np.tile([0.0, 0.0, -50.0], (2, 1)))
    np.testing.assert_allclose(coeffs.expression, 1 / (1 + np.exp(2.0)), rtol=1e-6)
    expected_light = np.zeros((2, 3, 9), np.float32)
    expected_light[:, :, 0] = 0.8
    np.testing.assert_allclose(coeffs.lighting, expected_light)
    np.testing.assert_allclose(lighting_offset(0.8), expected_light[0])
    head_names = {f"head_{g}" for g in LAYOUT.sizes()}
    assert set(variables["params"]["heads"]) == head_names


def test_forward_depends_on_the_image_and_expression_is_in_unit_interval(tiny_resnet18, images):
    _, variables, apply = tiny_resnet18
    coeffs = apply(with_random_heads(variables), images)
    assert coeffs.identity.shape == (2, 6) and coeffs.lighting.shape == (2, 3, 9)
    assert np.all((np.asarray(coeffs.expression) > 0) & (np.asarray(coeffs.expression) < 1))
    assert not np.allclose(coeffs.identity[0], coeffs.identity[1])
    assert not np.allclose(coeffs.lighting[0], coeffs.lighting[1])


def test_training_mode_updates_batch_stats_and_gradients_reach_the_backbone(tiny_resnet18,
                                                                            images):
    net, variables, _ = tiny_resnet18
    variables = with_random_heads(variables)

    def loss(params):
        coeffs, updates = net.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                    images, train=True, mutable=["batch_stats"])
        return jnp.sum(coeffs.identity ** 2) + jnp.sum(coeffs.expression), updates

    grads, updates = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    old = jax.tree_util.tree_leaves(variables["batch_stats"])
    new = jax.tree_util.tree_leaves(updates["batch_stats"])
    assert len(old) == len(new) and any(not np.allclose(a, b) for a, b in zip(old, new))
    backbone_grad = jax.tree_util.tree_leaves(grads["backbone"])
    assert all(np.all(np.isfinite(g)) for g in backbone_grad)
    assert any(np.abs(g).max() > 0 for g in backbone_grad)


def test_mobilenet_forward_tiny(images):
    net = PENet(LAYOUT, backbone="mobilenet_v2", width_scale=0.25, head_init_scale=0.05)
    variables = init_pe_net(net, jax.random.PRNGKey(2), image_size=SIZE)
    coeffs = jax.jit(lambda v, x: net.apply(v, x))(variables, images)
    assert coeffs.expression.shape == (2, 5)
    assert np.all(np.isfinite(np.asarray(coeffs.identity)))


def test_normalize_images_uses_imagenet_statistics():
    pixel = jnp.array([0.485, 0.456, 0.406]).reshape(1, 1, 1, 3)
    np.testing.assert_allclose(normalize_images(pixel), 0.0, atol=1e-6)
    np.testing.assert_allclose(normalize_images(pixel + 0.224)[..., 1], 1.0, rtol=1e-5)


def test_fold_and_unfold_frames_round_trip():
    clips = jnp.arange(2 * 3 * 4).reshape(2, 3, 4).astype(jnp.float32)
    folded = fold_frames(clips)
    assert folded.shape == (6, 4)
    np.testing.assert_array_equal(folded[4], clips[1, 1])      # frames of a clip stay adjacent
    coeffs = LAYOUT.split(jnp.ones((6, LAYOUT.total)))
    unfolded = unfold_frames(coeffs, 2, 3)
    assert unfolded.identity.shape == (2, 3, 6) and unfolded.lighting.shape == (2, 3, 3, 9)
    with pytest.raises(ValueError, match="cannot unfold"):
        unfold_frames(coeffs, 4, 2)


def test_bad_inputs_raise_clear_errors():
    net = PENet(LAYOUT, backbone="resnet18", width_scale=0.125)
    with pytest.raises(ValueError, match="fold_frames"):
        jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 32, 32, 3))))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1))))
    with pytest.raises(ValueError, match="unknown backbone"):
        jax.eval_shape(lambda: PENet(LAYOUT, backbone="vgg").init(
            jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    with pytest.raises(ValueError, match="depth"):
        jax.eval_shape(lambda: ResNet(depth=7).init(jax.random.PRNGKey(0),
                                                    jnp.zeros((1, 32, 32, 3))))
