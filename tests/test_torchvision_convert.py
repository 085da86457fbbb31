"""Tests for cpem_jax.networks.torchvision_convert on small fabricated torchvision state dicts.

The fabricated dicts are built here from torchvision's naming scheme (NCHW / OIHW layouts), saved
as .npz, converted, and the Flax forward is compared with an independent numpy forward written in
torchvision's conventions.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.face_model.model import CoeffLayout
from cpem_jax.networks import (ConversionError, MobileNetV2, PENet, ResNet, convert_state_dict,
                               init_pe_net, load_into_pe_net, load_state_dict,
                               required_torch_names)
from cpem_jax.networks.mobilenet import INVERTED_RESIDUAL_SETTINGS, make_divisible

EPS = 1e-5


# ----------------------------------------------------------------------------- fabrication
class Fabricator:
    """Builds a torchvision-style state dict with random values (float32 numpy)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.state = {}

    def conv(self, name, out_ch, in_ch, k, groups=1):
        fan_in = in_ch // groups * k * k
        self.state[f"{name}.weight"] = (self.rng.normal(0, np.sqrt(2.0 / fan_in),
                                                        (out_ch, in_ch // groups, k, k))
                                        .astype(np.float32))

    def bn(self, name, ch):
        self.state[f"{name}.weight"] = self.rng.uniform(0.5, 1.5, ch).astype(np.float32)
        self.state[f"{name}.bias"] = self.rng.normal(0, 0.1, ch).astype(np.float32)
        self.state[f"{name}.running_mean"] = self.rng.normal(0, 0.1, ch).astype(np.float32)
        self.state[f"{name}.running_var"] = self.rng.uniform(0.5, 1.5, ch).astype(np.float32)
        self.state[f"{name}.num_batches_tracked"] = np.array(100, np.int64)


def fabricate_resnet(width, stage_sizes, bottleneck, seed=0):
    fab = Fabricator(seed)
    fab.conv("conv1", width, 3, 7)
    fab.bn("bn1", width)
    expansion = 4 if bottleneck else 1
    in_ch = width
    for stage, n_blocks in enumerate(stage_sizes):
        planes = width * 2 ** stage
        for b in range(n_blocks):
            name = f"layer{stage + 1}.{b}"
            stride = 2 if (stage > 0 and b == 0) else 1
            if bottleneck:
                fab.conv(f"{name}.conv1", planes, in_ch, 1)
                fab.bn(f"{name}.bn1", planes)
                fab.conv(f"{name}.conv2", planes, planes, 3)
                fab.bn(f"{name}.bn2", planes)
                fab.conv(f"{name}.conv3", planes * 4, planes, 1)
                fab.bn(f"{name}.bn3", planes * 4)
            else:
                fab.conv(f"{name}.conv1", planes, in_ch, 3)
                fab.bn(f"{name}.bn1", planes)
                fab.conv(f"{name}.conv2", planes, planes, 3)
                fab.bn(f"{name}.bn2", planes)
            if stride != 1 or in_ch != planes * expansion:
                fab.conv(f"{name}.downsample.0", planes * expansion, in_ch, 1)
                fab.bn(f"{name}.downsample.1", planes * expansion)
            in_ch = planes * expansion
    fab.state["fc.weight"] = np.zeros((10, in_ch), np.float32)   # classifier: ignored
    fab.state["fc.bias"] = np.zeros((10,), np.float32)
    return fab.state


def fabricate_mobilenet(width_multiplier, seed=0):
    fab = Fabricator(seed)
    in_ch = make_divisible(32 * width_multiplier)
    fab.conv("features.0.0", in_ch, 3, 3)
    fab.bn("features.0.1", in_ch)
    index = 1
    for t, c, n, _ in INVERTED_RESIDUAL_SETTINGS:
        out_ch = make_divisible(c * width_multiplier)
        for _ in range(n):
            hidden = in_ch * t
            prefix = f"features.{index}.conv"
            layer = 0
            if t != 1:
                fab.conv(f"{prefix}.0.0", hidden, in_ch, 1)
                fab.bn(f"{prefix}.0.1", hidden)
                layer = 1
            fab.conv(f"{prefix}.{layer}.0", hidden, hidden, 3, groups=hidden)
            fab.bn(f"{prefix}.{layer}.1", hidden)
            fab.conv(f"{prefix}.{layer + 1}", out_ch, hidden, 1)
            fab.bn(f"{prefix}.{layer + 2}", out_ch)
            in_ch = out_ch
            index += 1
    last = make_divisible(1280 * max(1.0, width_multiplier))
    fab.conv(f"features.{index}.0", last, in_ch, 1)
    fab.bn(f"features.{index}.1", last)
    fab.state["classifier.1.weight"] = np.zeros((10, last), np.float32)
    return fab.state


# ----------------------------------------------------------------------------- numpy reference
def conv2d(x, w, stride, pad, groups=1):
    """x [N, C, H, W], w [O, C/groups, kh, kw] -> [N, O, H', W'] (torch semantics, float64)."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    og = o // groups
    xg = x.reshape(n, groups, cg, h, wd)
    wg = w.reshape(groups, og, cg, kh, kw)
    out = np.zeros((n, groups, og, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xg[..., i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("ngchw,goc->ngohw", patch, wg[..., i, j])
    return out.reshape(n, o, oh, ow)


def bn(x, sd, name):
    scale = sd[f"{name}.weight"] / np.sqrt(sd[f"{name}.running_var"] + EPS)
    shift = sd[f"{name}.bias"] - sd[f"{name}.running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def max_pool_3x3_s2(x):
    x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = (x.shape[2] - 3) // 2 + 1, (x.shape[3] - 3) // 2 + 1
    return np.max([x[:, :, i:i + 2 * h:2, j:j + 2 * w:2] for i in range(3) for j in range(3)],
                  axis=0)


def relu(x):
    return np.maximum(x, 0.0)


def reference_resnet(sd, x, stage_sizes, bottleneck):
    x = max_pool_3x3_s2(relu(bn(conv2d(x, sd["conv1.weight"], 2, 3), sd, "bn1")))
    for stage, n_blocks in enumerate(stage_sizes):
        for b in range(n_blocks):
            name = f"layer{stage + 1}.{b}"
            stride = 2 if (stage > 0 and b == 0) else 1
            if bottleneck:
                out = relu(bn(conv2d(x, sd[f"{name}.conv1.weight"], 1, 0), sd, f"{name}.bn1"))
                out = relu(bn(conv2d(out, sd[f"{name}.conv2.weight"], stride, 1), sd,
                              f"{name}.bn2"))
                out = bn(conv2d(out, sd[f"{name}.conv3.weight"], 1, 0), sd, f"{name}.bn3")
            else:
                out = relu(bn(conv2d(x, sd[f"{name}.conv1.weight"], stride, 1), sd,
                              f"{name}.bn1"))
                out = bn(conv2d(out, sd[f"{name}.conv2.weight"], 1, 1), sd, f"{name}.bn2")
            if f"{name}.downsample.0.weight" in sd:
                x = bn(conv2d(x, sd[f"{name}.downsample.0.weight"], stride, 0), sd,
                       f"{name}.downsample.1")
            x = relu(out + x)
    return x.mean(axis=(2, 3))


def reference_mobilenet(sd, x):
    relu6 = lambda v: np.clip(v, 0.0, 6.0)  # noqa: E731
    x = relu6(bn(conv2d(x, sd["features.0.0.weight"], 2, 1), sd, "features.0.1"))
    index = 1
    for t, _, n, s in INVERTED_RESIDUAL_SETTINGS:
        for r in range(n):
            stride = s if r == 0 else 1
            prefix = f"features.{index}.conv"
            out, layer = x, 0
            if t != 1:
                out = relu6(bn(conv2d(out, sd[f"{prefix}.0.0.weight"], 1, 0), sd, f"{prefix}.0.1"))
                layer = 1
            w = sd[f"{prefix}.{layer}.0.weight"]
            out = relu6(bn(conv2d(out, w, stride, 1, groups=w.shape[0]), sd,
                           f"{prefix}.{layer}.1"))
            out = bn(conv2d(out, sd[f"{prefix}.{layer + 1}.weight"], 1, 0), sd,
                     f"{prefix}.{layer + 2}")
            x = out + x if (stride == 1 and out.shape == x.shape) else out
            index += 1
    x = relu6(bn(conv2d(x, sd[f"features.{index}.0.weight"], 1, 0), sd, f"features.{index}.1"))
    return x.mean(axis=(2, 3))


# ----------------------------------------------------------------------------- tests
def _convert_and_run(module, state, tmp_path, size=32, prefix=""):
    path = tmp_path / "weights.npz"
    np.savez(path, **{prefix + k: v for k, v in state.items()})
    x = np.random.default_rng(1).normal(0, 1, (2, size, size, 3)).astype(np.float32)
    template = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(x.shape)))
    variables = convert_state_dict(load_state_dict(str(path)), template)
    out = jax.jit(module.apply)(variables, x)
    return np.asarray(out), x.transpose(0, 3, 1, 2).astype(np.float64)


@pytest.mark.parametrize("bottleneck", [True, False])
def test_converted_resnet_matches_numpy_reference(tmp_path, bottleneck):
    stages = (1, 1, 1, 1) if bottleneck else (2, 1, 1, 1)
    state = fabricate_resnet(4, stages, bottleneck)
    module = ResNet(depth=50 if bottleneck else 18, width=4, stage_sizes=stages)
    out, x_nchw = _convert_and_run(module, state, tmp_path)
    expected = reference_resnet(state, x_nchw, stages, bottleneck)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_converted_mobilenet_matches_numpy_reference(tmp_path):
    state = fabricate_mobilenet(0.25)
    out, x_nchw = _convert_and_run(MobileNetV2(width_multiplier=0.25), state, tmp_path)
    expected = reference_mobilenet(state, x_nchw)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_dataparallel_prefix_is_stripped(tmp_path):
    stages = (1, 1, 1, 1)
    state = fabricate_resnet(4, stages, False)
    module = ResNet(depth=18, width=4, stage_sizes=stages)
    out, x_nchw = _convert_and_run(module, state, tmp_path, prefix="module.")
    np.testing.assert_allclose(out, reference_resnet(state, x_nchw, stages, False),
                               rtol=1e-4, atol=1e-4)


def test_real_resnet50_key_set():
    template = jax.eval_shape(lambda: ResNet(depth=50).init(jax.random.PRNGKey(0),
                                                            jnp.zeros((1, 64, 64, 3))))
    names = required_torch_names(template)
    # torchvision resnet50 has 320 keys: 53 convs + 53 x 5 batch-norm entries + fc weight/bias;
    # the network needs all but num_batches_tracked (53) and fc (2).
    assert len(names) == 265
    assert names["conv1.weight"] == (7, 7, 3, 64)
    assert names["layer1.0.downsample.0.weight"] == (1, 1, 64, 256)
    assert names["layer4.2.conv3.weight"] == (1, 1, 512, 2048)
    assert names["layer3.5.bn2.running_var"] == (256,)


def test_load_into_pe_net_replaces_only_the_backbone(tmp_path):
    layout = CoeffLayout(identity=3, expression=2, albedo=2)
    net = PENet(layout, backbone="resnet18", width_scale=4 / 64)    # width 4, stages (2, 2, 2, 2)
    variables = init_pe_net(net, jax.random.PRNGKey(0), image_size=32)
    state = fabricate_resnet(4, (2, 2, 2, 2), bottleneck=False)
    path = tmp_path / "resnet18.npz"
    np.savez(path, **state)
    loaded = load_into_pe_net(variables, str(path))
    np.testing.assert_array_equal(loaded["params"]["backbone"]["conv1"]["kernel"],
                                  state["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(loaded["batch_stats"]["backbone"]["layer2_0"]["downsample_1"]
                                  ["var"], state["layer2.0.downsample.1.running_var"])
    for name, head in variables["params"]["heads"].items():
        np.testing.assert_array_equal(loaded["params"]["heads"][name]["kernel"], head["kernel"])
    assert (jax.tree_util.tree_structure(loaded) == jax.tree_util.tree_structure(variables))


def test_missing_keys_raise_naming_the_keys():
    stages = (1, 1, 1, 1)
    state = fabricate_resnet(4, stages, False)
    del state["layer3.0.downsample.1.running_mean"]
    del state["conv1.weight"]
    template = jax.eval_shape(lambda: ResNet(depth=18, width=4, stage_sizes=stages).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    with pytest.raises(ConversionError, match="lacks 2 key") as info:
        convert_state_dict(state, template)
    assert "conv1.weight" in str(info.value)
    assert "layer3.0.downsample.1.running_mean" in str(info.value)


def test_shape_mismatch_raises_naming_the_key_and_the_fix():
    state = fabricate_resnet(8, (1, 1, 1, 1), False)           # width 8 file, width 4 network
    template = jax.eval_shape(lambda: ResNet(depth=18, width=4, stage_sizes=(1, 1, 1, 1)).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    with pytest.raises(ConversionError, match="shape mismatch for") as info:
        convert_state_dict(state, template)
    assert "width" in str(info.value)


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weight file"):
        load_state_dict(str(tmp_path / "absent.npz"))
    other = tmp_path / "weights.h5"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.npz or \.pth"):
        load_state_dict(str(other))


def test_pth_without_torch_names_the_fix(tmp_path):
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torch is installed; the no-torch message cannot be exercised")
    path = tmp_path / "weights.pth"
    path.write_bytes(b"not really a checkpoint")
    with pytest.raises(ImportError, match="pip install torch"):
        load_state_dict(str(path))
