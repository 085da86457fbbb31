"""The .glb writer, read back with pygltflib."""
import numpy as np
import pygltflib
import pytest

from cpem_jax.export.gltf import euler_to_quaternion, quaternion_multiply, write_glb
from cpem_jax.export.schema import FrameTrack

COMPONENTS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
DTYPES = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32}


def read_accessor(gltf, index):
    """An accessor's data -> [count, n] array (tightly packed bufferViews only)."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    dtype = DTYPES[accessor.componentType]
    n = COMPONENTS[accessor.type]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    data = gltf.binary_blob()[start:start + accessor.count * n * np.dtype(dtype).itemsize]
    return np.frombuffer(data, dtype).reshape(accessor.count, n)


def quat_to_matrix(q):
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def tiny_mesh():
    """A square of 4 vertices (2 triangles, cm) and 3 targets."""
    vertices = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    deltas = np.zeros((3, 4, 3), np.float32)
    deltas[0, 2, 2] = 1.0
    deltas[1, 0, 1] = -2.0
    deltas[2, :, 0] = 0.5
    return vertices, triangles, deltas, ("jawOpen", "eyeBlink_L", "cheekPuff_R")


def tiny_track(n=7):
    rng = np.random.default_rng(0)
    units = ("cheekPuff_R", "extraUnit", "jawOpen", "eyeBlink_L")
    return FrameTrack.from_estimates(rng.uniform(size=(n, 4)), 0.3 * rng.standard_normal((n, 3)),
                                     rng.standard_normal((n, 3)), units, fps=24.0)


def test_glb_written_and_read_back(tmp_path):
    vertices, triangles, deltas, names = tiny_mesh()
    track = tiny_track()
    path = tmp_path / "face.glb"
    write_glb(path, vertices, triangles, deltas, names, track)
    gltf = pygltflib.GLTF2().load(str(path))
    assert gltf.asset.version == "2.0"
    blob = gltf.binary_blob()
    assert gltf.buffers[0].byteLength == len(blob)
    for view in gltf.bufferViews:  # views inside the buffer, 4-byte aligned
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob)
    for accessor in gltf.accessors:
        view = gltf.bufferViews[accessor.bufferView]
        size = accessor.count * COMPONENTS[accessor.type] * 4
        assert (accessor.byteOffset or 0) + size <= view.byteLength

    mesh = gltf.meshes[0]
    assert mesh.extras["targetNames"] == list(names)
    primitive = mesh.primitives[0]
    assert len(primitive.targets) == 3 and len(mesh.weights) == 3
    position = gltf.accessors[primitive.attributes.POSITION]
    np.testing.assert_allclose(read_accessor(gltf, primitive.attributes.POSITION),
                               vertices * 0.01, atol=1e-7)
    np.testing.assert_allclose(position.max, [0.1, 0.1, 0.0], atol=1e-7)
    assert read_accessor(gltf, primitive.indices).reshape(-1, 3).tolist() == triangles.tolist()
    for k, target in enumerate(primitive.targets):
        t_pos = target["POSITION"] if isinstance(target, dict) else target.POSITION
        np.testing.assert_allclose(read_accessor(gltf, t_pos), deltas[k] * 0.01, atol=1e-7)
        assert gltf.accessors[t_pos].min is not None and len(gltf.accessors[t_pos].max) == 3

    animation = gltf.animations[0]
    paths = {c.target.path: c for c in animation.channels}
    assert set(paths) == {"weights", "rotation"}
    weights_sampler = animation.samplers[paths["weights"].sampler]
    times = read_accessor(gltf, weights_sampler.input)[:, 0]
    np.testing.assert_allclose(times, np.arange(7) / 24.0, atol=1e-6)
    assert gltf.accessors[weights_sampler.input].max[0] == pytest.approx(6 / 24.0)
    assert weights_sampler.interpolation == "LINEAR"
    weights = read_accessor(gltf, weights_sampler.output).reshape(7, 3)
    expected = track.expression[:, [2, 3, 0]]  # by name: jawOpen, eyeBlink_L, cheekPuff_R
    np.testing.assert_allclose(weights, expected, atol=1e-7)
    quats = read_accessor(gltf, animation.samplers[paths["rotation"].sampler].output)
    assert quats.shape == (7, 4)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-6)


def test_quaternions_match_the_geometry_euler_convention():
    rotation = pytest.importorskip("cpem_jax.geometry.rotation")
    angles = np.random.default_rng(1).uniform(-1.2, 1.2, size=(5, 3))
    expected = np.asarray(rotation.euler_to_matrix(angles.astype(np.float32)))
    for q, r in zip(euler_to_quaternion(angles), expected):
        np.testing.assert_allclose(quat_to_matrix(q), r, atol=1e-5)
    a, b = euler_to_quaternion(angles[:2])
    np.testing.assert_allclose(quat_to_matrix(quaternion_multiply(a, b)),
                               quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-6)


def test_static_mesh_without_track_and_bad_input(tmp_path):
    vertices, triangles, deltas, names = tiny_mesh()
    path = tmp_path / "static.glb"
    write_glb(path, vertices, triangles, deltas, names, target_normals=False)
    gltf = pygltflib.GLTF2().load(str(path))
    assert not gltf.animations and len(gltf.meshes[0].primitives[0].targets) == 3
    with pytest.raises(ValueError, match="target_deltas"):
        write_glb(path, vertices, triangles, np.moveaxis(deltas, 0, -1), names)
    with pytest.raises(ValueError, match="no units named"):
        write_glb(path, vertices, triangles, deltas, ("a", "b", "c"), tiny_track())
