"""The preview's avatar path: glTF mesh reading (transforms, sparse targets), weights, rendering."""
import numpy as np
import pygltflib
import pytest

from cpem_jax.export.avatar import AvatarError, retarget_avatar
from cpem_jax.export.gltf import BinaryBuilder, write_glb
from cpem_jax.export.schema import FrameTrack
from cpem_jax.retarget.gltf_mesh import load_morph_mesh
from cpem_jax.retarget.mesh_render import frame_mesh, render_mesh
from cpem_jax.retarget.preview import avatar_weights

QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
QUAD_TRIANGLES = np.array([[0, 1, 2], [0, 2, 3]], np.int32)


def quad_avatar(path, names=("jawOpen", "eyeBlinkLeft", "other")):
    """A unit quad (write_glb scales by 0.01: cm -> m) with one delta per target."""
    deltas = np.zeros((len(names), 4, 3), np.float32)
    for t in range(len(names)):
        deltas[t, t % 4, 2] = 1.0 + t  # target t pushes vertex t % 4 along +z
    write_glb(path, QUAD * 100, QUAD_TRIANGLES, deltas * 100, names)
    return deltas


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


def test_sparse_target_and_two_nodes(tmp_path):
    """A target stored as a sparse accessor; the mesh placed twice (targets shared)."""
    gltf = pygltflib.GLTF2()
    builder = BinaryBuilder(gltf)
    position = builder.add_accessor(QUAD, "VEC3", pygltflib.ARRAY_BUFFER, min_max=True)
    indices = builder.add_accessor(QUAD_TRIANGLES.reshape(-1).astype(np.uint32), "SCALAR")
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
                                          indices=indices, targets=[{"POSITION": target}])]))
    gltf.nodes += [pygltflib.Node(mesh=0), pygltflib.Node(mesh=0, translation=[0, 0, -1])]
    gltf.scenes.append(pygltflib.Scene(nodes=[0, 1]))
    gltf.scene = 0
    builder.finish_as_blob()
    path = tmp_path / "sparse.glb"
    gltf.save_binary(str(path))

    mesh = load_morph_mesh(path)
    assert mesh.vertices.shape == (8, 3) and mesh.triangles.shape == (4, 3)
    assert mesh.target_keys == (("m", "jawOpen"),)
    np.testing.assert_allclose(mesh.default_weights, [0.25])
    expected = np.zeros((4, 3))
    expected[2, 2] = 3
    np.testing.assert_allclose(mesh.deltas[0], np.concatenate([expected, expected]))
    np.testing.assert_allclose(mesh.vertices[4:], QUAD + [0, 0, -1])
    assert mesh.triangles.max() == 7


def test_reads_the_retargeted_file_and_weights_follow_the_report(tmp_path):
    path, out = tmp_path / "a.glb", tmp_path / "animated.glb"
    quad_avatar(path, names=("jawOpen", "browInnerUp", "other"))
    units = ("jawOpen", "browInnerUp_L", "browInnerUp_R")
    expression = np.array([[0.2, 0.4, 0.8], [0.6, 0.0, 1.0]], np.float32)
    track = FrameTrack.from_estimates(expression, np.zeros((2, 3)), np.zeros((2, 3)), units, 30.0)
    report = retarget_avatar(path, track, out)
    mesh = load_morph_mesh(out)  # data-URI buffers, an added animation
    np.testing.assert_allclose(mesh.vertices, load_morph_mesh(path).vertices)
    weights = avatar_weights(mesh, report, track)
    np.testing.assert_allclose(weights, [[0.2, 0.6, 0.0], [0.6, 0.5, 0.0]], atol=1e-6)
    np.testing.assert_allclose(avatar_weights(mesh, None, track), weights)  # same matching


def test_unreadable_avatar_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.glb"
    path.write_bytes(b"not a gltf at all")
    with pytest.raises(AvatarError, match="glTF"):
        load_morph_mesh(path)


def test_render_frames_the_mesh_and_turns_it():
    framing = frame_mesh(QUAD)
    poses = np.stack([QUAD, QUAD, QUAD])
    rotation = np.array([[0, 0, 0], [0, np.pi / 2, 0], [0, 0.8, 0]], np.float32)
    images = render_mesh(poses, QUAD_TRIANGLES, framing, rotation, size=40,
                         background=(0.0, 0.0, 0.0))
    assert images.shape == (3, 40, 40, 3)
    covered = images.sum(-1) > 0
    # The quad's half diagonal fills 92 % of the half image: side = 0.92 * 40 / sqrt(2) px.
    side = 0.92 * 40 / np.sqrt(2)
    assert covered[0].sum() == pytest.approx(side ** 2, rel=0.1)
    assert covered[0, 20, 20] and not covered[0, 1, 1]
    assert covered[1].sum() < 0.1 * covered[0].sum()  # edge-on after a quarter turn
    # Lambert: the turned quad is darker than the one facing the camera.
    assert images[2][covered[2]].mean() < images[0][covered[0]].mean()
