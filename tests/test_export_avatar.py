"""Retargeting onto a small avatar .glb built by the test."""
import numpy as np
import pygltflib
import pytest

from cpem_jax.export.avatar import AvatarError, retarget_avatar
from cpem_jax.export.gltf import euler_to_quaternion, quaternion_multiply, write_glb
from cpem_jax.export.schema import FrameTrack

ICT_SUBSET = ("browInnerUp_L", "browInnerUp_R", "eyeBlink_L", "eyeBlink_R", "jawOpen",
              "mouthSmile_L")


def build_avatar(path, target_names=("jawOpen", "EyeBlink_L", "customThing")):
    """Two triangles with len(target_names) morph targets, plus a 'Head' parent node."""
    vertices = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    deltas = np.random.default_rng(0).normal(size=(len(target_names), 4, 3)).astype(np.float32)
    write_glb(path, vertices, triangles, deltas, target_names)
    gltf = pygltflib.GLTF2().load(str(path))
    gltf.nodes.append(pygltflib.Node(name="Head", children=[0], rotation=[0, 0, 0.6, 0.8]))
    gltf.scenes[0].nodes = [1]
    gltf.save_binary(str(path))


def track(n=6):
    rng = np.random.default_rng(2)
    return FrameTrack.from_estimates(rng.uniform(size=(n, len(ICT_SUBSET))),
                                     0.2 * rng.standard_normal((n, 3)), np.zeros((n, 3)),
                                     ICT_SUBSET, fps=30.0)


def read_accessor(gltf, index):
    """A float accessor's data -> [count, n] (tightly packed views, as our writer makes)."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    n = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor.type]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    data = gltf.binary_blob()[start:start + accessor.count * n * 4]
    return np.frombuffer(data, np.float32).reshape(accessor.count, n)


def weights_of(gltf, animation, node):
    for channel in animation.channels:
        if channel.target.path == "weights" and channel.target.node == node:
            sampler = animation.samplers[channel.sampler]
            return read_accessor(gltf, sampler.output)[:, 0]
    raise AssertionError("no weights channel")


def test_name_matching_and_report(tmp_path):
    avatar = tmp_path / "avatar.glb"
    build_avatar(avatar)
    out = tmp_path / "out" / "animated.glb"
    t = track()
    report = retarget_avatar(avatar, t, out, head_node="head")
    matched = {m.target: (m.kind, m.source) for m in report.matched}
    assert matched == {"jawOpen": ("unit", "jawOpen"), "EyeBlink_L": ("unit", "eyeBlink_L")}
    assert report.unused_targets == ("face/customThing",)
    assert set(report.missing_units) == {"browInnerUp_L", "browInnerUp_R", "eyeBlink_R",
                                         "mouthSmile_L"}
    assert "browInnerUp" in report.missing_arkit and "jawOpen" not in report.missing_arkit
    assert report.head_node == "Head" and "customThing" in report.summary()

    gltf = pygltflib.GLTF2().load(str(out))
    assert len(gltf.buffers) == 1 and gltf.buffers[0].byteLength == len(gltf.binary_blob())
    assert len(gltf.meshes[0].primitives[0].targets) == 3  # the avatar itself is untouched
    animation = gltf.animations[-1]
    weights = weights_of(gltf, animation, 0).reshape(t.n_frames, 3)
    np.testing.assert_allclose(weights[:, 0], t.expression[:, 4], atol=1e-7)
    np.testing.assert_allclose(weights[:, 1], t.expression[:, 2], atol=1e-7)
    np.testing.assert_allclose(weights[:, 2], 0)
    rotation = [c for c in animation.channels if c.target.path == "rotation"][0]
    assert rotation.target.node == 1
    quats = read_accessor(gltf, animation.samplers[rotation.sampler].output)
    head = euler_to_quaternion(t.rotation[:1])[0]
    rest = np.array([0, 0, 0.6, 0.8])
    np.testing.assert_allclose(quats[0], quaternion_multiply(rest, head), atol=1e-6)


def test_arkit_rig_gets_merged_values(tmp_path):
    avatar = tmp_path / "arkit.glb"
    build_avatar(avatar, ("blendShape1.browInnerUp", "EYEBLINKLEFT", "mouthSmile.L",
                          "tongueOut"))
    t = track()
    report = retarget_avatar(avatar, t, tmp_path / "out.glb")
    kinds = {m.target: (m.kind, m.source) for m in report.matched}
    assert kinds["blendShape1.browInnerUp"] == ("arkit", "browInnerUp")
    assert kinds["EYEBLINKLEFT"] == ("unit", "eyeBlink_L")
    assert kinds["mouthSmile.L"] == ("unit", "mouthSmile_L")
    assert report.unused_targets == ("face/tongueOut",)  # our model has no tongue
    assert report.head_node is None
    gltf = pygltflib.GLTF2().load(str(tmp_path / "out.glb"))
    weights = weights_of(gltf, gltf.animations[-1], 0).reshape(t.n_frames, 4)
    np.testing.assert_allclose(weights[:, 0], t.expression[:, :2].mean(axis=1), atol=1e-6)


def test_gltf_json_avatar_with_embedded_buffer(tmp_path):
    avatar = tmp_path / "avatar.glb"
    build_avatar(avatar, ("mouthSmile_L", "Basis_extra"))
    gltf = pygltflib.GLTF2().load(str(avatar))
    gltf.convert_buffers(pygltflib.BufferFormat.DATAURI)
    gltf.save_json(str(tmp_path / "avatar.gltf"))
    out = tmp_path / "from_json.glb"
    report = retarget_avatar(tmp_path / "avatar.gltf", track(), out)
    assert [m.target for m in report.matched] == ["mouthSmile_L"]
    assert report.unused_targets == ("face/Basis_extra",)
    result = pygltflib.GLTF2().load(str(out))
    assert len(result.buffers) == 1 and result.animations[-1].name == "cpem_retarget"


def test_avatar_errors(tmp_path):
    no_targets = tmp_path / "plain.glb"
    build_avatar(no_targets, ())
    with pytest.raises(AvatarError, match="no morph targets"):
        retarget_avatar(no_targets, track(), tmp_path / "x.glb")
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"not a gltf file at all")
    with pytest.raises(AvatarError, match="could not read"):
        retarget_avatar(broken, track(), tmp_path / "x.glb")
    with pytest.raises(AvatarError, match="does not exist"):
        retarget_avatar(tmp_path / "missing.glb", track(), tmp_path / "x.glb")
    avatar = tmp_path / "avatar.glb"
    build_avatar(avatar)
    with pytest.raises(AvatarError, match="no node named"):
        retarget_avatar(avatar, track(), tmp_path / "x.glb", head_node="Neck")
