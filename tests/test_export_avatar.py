"""Avatars: retargeting onto a small .glb built by the test, and reading it into a MorphMesh."""
import numpy as np
import pygltflib
import pytest

from cpem_jax.export import AvatarError, load_avatar, load_morph_mesh, retarget_avatar
from cpem_jax.export.gltf import write_glb
from cpem_jax.export.gltf_io import (AccessorReader, BinaryBuilder, euler_to_quaternion,
                                     quaternion_multiply)
from cpem_jax.export.schema import FrameTrack

ICT_SUBSET = ("browInnerUp_L", "browInnerUp_R", "eyeBlink_L", "eyeBlink_R", "jawOpen",
              "mouthSmile_L")
QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
QUAD_TRIANGLES = np.array([[0, 1, 2], [0, 2, 3]], np.int32)


def quad_avatar(path, names=("jawOpen", "eyeBlinkLeft", "other")):
    """A unit quad (write_glb scales by 0.01: cm -> m) with one delta per target; returns the
    deltas [T, 4, 3] in metres."""
    deltas = np.zeros((len(names), 4, 3), np.float32)
    for t in range(len(names)):
        deltas[t, t % 4, 2] = 1.0 + t  # target t pushes vertex t % 4 along +z
    write_glb(path, QUAD * 100, QUAD_TRIANGLES, deltas * 100, names)
    return deltas


def build_avatar(path, target_names=("jawOpen", "EyeBlink_L", "customThing")):
    """The quad with len(target_names) morph targets, plus a 'Head' parent node."""
    quad_avatar(path, target_names)
    gltf = pygltflib.GLTF2().load(str(path))
    gltf.nodes.append(pygltflib.Node(name="Head", children=[0], rotation=[0, 0, 0.6, 0.8]))
    gltf.scenes[0].nodes = [1]
    gltf.save_binary(str(path))


def track(n=6):
    rng = np.random.default_rng(2)
    return FrameTrack.from_estimates(rng.uniform(size=(n, len(ICT_SUBSET))),
                                     0.2 * rng.standard_normal((n, 3)), np.zeros((n, 3)),
                                     ICT_SUBSET, fps=30.0)


def weights_of(gltf, animation, node):
    """The weights channel of `animation` on `node` -> [keys * T] float32."""
    for channel in animation.channels:
        if channel.target.path == "weights" and channel.target.node == node:
            sampler = animation.samplers[channel.sampler]
            return AccessorReader(gltf, ".").read(sampler.output)[:, 0]
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
    quats = AccessorReader(gltf, ".").read(animation.samplers[rotation.sampler].output)
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


def external_bin_avatar(tmp_path, uri="0.bin", file_name="0.bin"):
    """avatar.glb, and the same avatar as avatar.gltf whose buffer is the file `file_name`, named
    `uri` in the JSON -> (glb path, gltf path, bin path)."""
    glb = tmp_path / "avatar.glb"
    build_avatar(glb)
    gltf = pygltflib.GLTF2().load(str(glb))
    bin_path = tmp_path / file_name
    bin_path.write_bytes(gltf.binary_blob())
    gltf.buffers[0].uri = uri
    gltf.save_json(str(tmp_path / "avatar.gltf"))
    return glb, tmp_path / "avatar.gltf", bin_path


@pytest.mark.parametrize("uri, file_name", [("0.bin", "0.bin"),
                                            ("my%20avatar.bin", "my avatar.bin")])
def test_gltf_with_external_bin_retargets_into_one_glb(tmp_path, uri, file_name):
    glb, gltf_path, bin_path = external_bin_avatar(tmp_path, uri, file_name)
    out = tmp_path / "out" / "animated.glb"
    report = retarget_avatar(gltf_path, track(), out)
    assert [m.target for m in report.matched] == ["jawOpen", "EyeBlink_L"]
    bin_path.unlink()  # the output carries the buffer itself
    result = pygltflib.GLTF2().load(str(out))
    assert len(result.buffers) == 1 and result.buffers[0].uri is None
    np.testing.assert_allclose(load_morph_mesh(out).vertices, load_morph_mesh(glb).vertices)


def test_external_bin_missing_or_short_is_refused_before_writing(tmp_path):
    _, gltf_path, bin_path = external_bin_avatar(tmp_path)
    out = tmp_path / "out.glb"
    data = bin_path.read_bytes()
    bin_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AvatarError, match="buffer 0 holds .* bytes but declares"):
        retarget_avatar(gltf_path, track(), out)
    bin_path.unlink()
    with pytest.raises(AvatarError, match=r"avatar.gltf: buffer 0's file .*0.bin' is missing; "
                                          r"keep the .bin next to the .gltf"):
        retarget_avatar(gltf_path, track(), out)
    with pytest.raises(AvatarError, match="is missing"):
        load_morph_mesh(gltf_path)
    assert not out.exists()  # refused at load, before anything was written


def test_glb_cut_short_is_refused(tmp_path):
    avatar = tmp_path / "avatar.glb"
    build_avatar(avatar)
    data = avatar.read_bytes()
    cut = tmp_path / "cut.glb"
    cut.write_bytes(data[: len(data) - 200])
    with pytest.raises(AvatarError, match="cut.glb: buffer 0 holds .* bytes but declares .* cut "
                                          "short"):
        load_avatar(cut)


# ---------------------------------------------------------------- load_morph_mesh


def test_node_transforms_apply_to_positions_and_deltas(tmp_path):
    path = tmp_path / "a.glb"
    deltas = quad_avatar(path)
    gltf = pygltflib.GLTF2.load(str(path))
    # Child: scale 2 and a quarter turn about +z; parent: a translation.
    s = np.sqrt(0.5)
    gltf.nodes[0].scale = [2, 2, 2]
    gltf.nodes[0].rotation = [0, 0, s, s]
    gltf.nodes.append(pygltflib.Node(name="Root", children=[0], translation=[5, 0, 0]))
    gltf.scenes[0].nodes = [1]
    gltf.save_binary(str(path))

    mesh = load_morph_mesh(path)
    turn = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float32)  # +90 deg about z
    np.testing.assert_allclose(mesh.vertices, 2 * QUAD @ turn.T + [5, 0, 0], atol=1e-5)
    np.testing.assert_allclose(mesh.deltas, 2 * deltas @ turn.T, atol=1e-5)  # no translation
    assert mesh.target_keys == (("face", "jawOpen"), ("face", "eyeBlinkLeft"), ("face", "other"))
    np.testing.assert_array_equal(mesh.triangles, QUAD_TRIANGLES)
    posed = mesh.posed(np.array([[1.0, 0.0, 0.5]]))
    np.testing.assert_allclose(posed[0], mesh.vertices + mesh.deltas[0] + 0.5 * mesh.deltas[2],
                               atol=1e-6)


def sparse_quad_gltf(indices):
    """The quad, placed twice, with one target stored as a sparse accessor (vertex 2 moves 3 m
    along +z); `indices` [6] are its triangle vertex ids."""
    gltf = pygltflib.GLTF2()
    builder = BinaryBuilder(gltf)
    position = builder.add_accessor(QUAD, "VEC3", pygltflib.ARRAY_BUFFER, min_max=True)
    triangles = builder.add_accessor(np.asarray(indices, np.uint32), "SCALAR")
    sparse_ids = builder.add_view(np.array([2], np.uint32))
    sparse_values = builder.add_view(np.array([[0, 0, 3]], np.float32))
    gltf.accessors.append(pygltflib.Accessor(
        componentType=pygltflib.FLOAT, count=4, type="VEC3",
        sparse=pygltflib.Sparse(count=1, indices=pygltflib.AccessorSparseIndices(
            bufferView=sparse_ids, componentType=pygltflib.UNSIGNED_INT),
            values=pygltflib.AccessorSparseValues(bufferView=sparse_values))))
    target = len(gltf.accessors) - 1
    gltf.meshes.append(pygltflib.Mesh(name="m", extras={"targetNames": ["jawOpen"]},
                                      weights=[0.25], primitives=[pygltflib.Primitive(
                                          attributes=pygltflib.Attributes(POSITION=position),
                                          indices=triangles, targets=[{"POSITION": target}])]))
    gltf.nodes += [pygltflib.Node(mesh=0), pygltflib.Node(mesh=0, translation=[0, 0, -1])]
    gltf.scenes.append(pygltflib.Scene(nodes=[0, 1]))
    gltf.scene = 0
    builder.finish_as_blob()
    return gltf


def test_sparse_target_and_two_nodes(tmp_path):
    """A target stored as a sparse accessor; the mesh placed twice (targets shared)."""
    path = tmp_path / "sparse.glb"
    sparse_quad_gltf(QUAD_TRIANGLES.reshape(-1)).save_binary(str(path))

    mesh = load_morph_mesh(path)
    assert mesh.vertices.shape == (8, 3) and mesh.triangles.shape == (4, 3)
    assert mesh.target_keys == (("m", "jawOpen"),)
    np.testing.assert_allclose(mesh.default_weights, [0.25])
    expected = np.zeros((4, 3))
    expected[2, 2] = 3
    np.testing.assert_allclose(mesh.deltas[0], np.concatenate([expected, expected]))
    np.testing.assert_allclose(mesh.vertices[4:], QUAD + [0, 0, -1])
    assert mesh.triangles.max() == 7


def test_triangle_ids_past_their_primitive_are_refused(tmp_path):
    # Id 5 exists in the scene (the quad is placed twice) but not in the primitive's 4 vertices.
    path = tmp_path / "bad_ids.glb"
    sparse_quad_gltf([0, 1, 2, 0, 2, 5]).save_binary(str(path))
    with pytest.raises(AvatarError, match="bad_ids.glb: mesh 'm' has triangle indices past its 4"):
        load_morph_mesh(path)


def test_unreadable_avatar_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.glb"
    path.write_bytes(b"not a gltf at all")
    with pytest.raises(AvatarError, match="glTF"):
        load_morph_mesh(path)


def test_avatar_whose_names_match_nothing_is_refused_with_the_fix(tmp_path):
    from cpem_jax.export import check_avatar
    avatar = tmp_path / "blob.glb"
    quad_avatar(avatar, ("Smile", "Frown"))
    for call in (lambda: check_avatar(avatar, ICT_SUBSET),
                 lambda: retarget_avatar(avatar, track(), tmp_path / "out.glb")):
        with pytest.raises(AvatarError) as error:
            call()
        message = str(error.value)
        assert "none of its 2 morph targets (Smile, Frown)" in message
        assert "rename the shape keys to ARKit names" in message and "--avatar-map" in message
    assert not (tmp_path / "out.glb").exists()
    with pytest.raises(AvatarError, match="no node named 'Neck'"):
        quad_avatar(tmp_path / "ok.glb")
        check_avatar(tmp_path / "ok.glb", ICT_SUBSET, head_node="Neck")
    plan = check_avatar(tmp_path / "ok.glb", ICT_SUBSET)
    assert set(plan.sources.values()) == {("unit", "jawOpen"), ("unit", "eyeBlink_L")}


def test_avatar_map_drives_targets_of_other_names(tmp_path):
    from cpem_jax.export import load_avatar_map
    avatar, table = tmp_path / "blob.glb", tmp_path / "map.json"
    quad_avatar(avatar, ("Smile", "Brows", "Blink.L"))
    table.write_text('{"Smile": "mouthSmileLeft", "Brows": "browInnerUp", "blink_l": "eyeBlink_L"}')
    target_map = load_avatar_map(table, ICT_SUBSET)
    t = track()
    report = retarget_avatar(avatar, t, tmp_path / "out.glb", target_map=target_map)
    assert {m.target: (m.kind, m.source) for m in report.matched} == {
        "Smile": ("unit", "mouthSmile_L"), "Brows": ("arkit", "browInnerUp"),
        "Blink.L": ("unit", "eyeBlink_L")}  # keys folded like names: blink_l ~ Blink.L
    gltf = pygltflib.GLTF2().load(str(tmp_path / "out.glb"))
    weights = weights_of(gltf, gltf.animations[-1], 0).reshape(t.n_frames, 3)
    np.testing.assert_allclose(weights[:, 0], t.expression[:, 5], atol=1e-7)
    np.testing.assert_allclose(weights[:, 1], t.expression[:, :2].mean(axis=1), atol=1e-6)
    assert gltf.animations[-1].extras["fps"] == 30.0
    assert gltf.asset.extras["cpem_retarget"]["fps"] == 30.0


@pytest.mark.parametrize("text,expected", [
    ('{"Smile": "grin"}', "'grin' is neither an ARKit blendshape name"),
    ('{"Smile": 3}', "must be one object of names to names"),
    ('["Smile"]', "must be one object of names to names"),
    ('{"Smile": "jawOpen",}', "is not valid JSON"),
])
def test_bad_avatar_maps_are_refused(tmp_path, text, expected):
    from cpem_jax.export import load_avatar_map
    table = tmp_path / "map.json"
    table.write_text(text)
    with pytest.raises(AvatarError, match=expected):
        load_avatar_map(table, ICT_SUBSET)
    with pytest.raises(AvatarError, match="does not exist"):
        load_avatar_map(tmp_path / "none.json", ICT_SUBSET)
