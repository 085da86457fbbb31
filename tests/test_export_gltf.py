"""The .glb writer and the glTF data helpers (gltf_io), read back with pygltflib."""
import numpy as np
import pygltflib
import pytest

from cpem_jax.export.gltf import write_glb
from cpem_jax.export.gltf_io import (TYPE_WIDTHS, AccessorReader, BinaryBuilder, GltfError,
                                     euler_to_quaternion, node_matrix, quaternion_multiply,
                                     quaternion_to_matrix, world_matrices)
from cpem_jax.export.schema import FrameTrack


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
    read_accessor = AccessorReader(gltf, str(tmp_path)).read
    assert gltf.asset.version == "2.0"
    blob = gltf.binary_blob()
    assert gltf.buffers[0].byteLength == len(blob)
    for view in gltf.bufferViews:  # views inside the buffer, 4-byte aligned
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob)
    for accessor in gltf.accessors:
        view = gltf.bufferViews[accessor.bufferView]
        size = accessor.count * TYPE_WIDTHS[accessor.type] * 4
        assert (accessor.byteOffset or 0) + size <= view.byteLength

    mesh = gltf.meshes[0]
    assert mesh.extras["targetNames"] == list(names)
    primitive = mesh.primitives[0]
    assert len(primitive.targets) == 3 and len(mesh.weights) == 3
    position = gltf.accessors[primitive.attributes.POSITION]
    np.testing.assert_allclose(read_accessor(primitive.attributes.POSITION),
                               vertices * 0.01, atol=1e-7)
    np.testing.assert_allclose(position.max, [0.1, 0.1, 0.0], atol=1e-7)
    indices = read_accessor(primitive.indices)
    assert indices.dtype == np.uint32 and indices.reshape(-1, 3).tolist() == triangles.tolist()
    for k, target in enumerate(primitive.targets):
        t_pos = target["POSITION"] if isinstance(target, dict) else target.POSITION
        np.testing.assert_allclose(read_accessor(t_pos), deltas[k] * 0.01, atol=1e-7)
        assert gltf.accessors[t_pos].min is not None and len(gltf.accessors[t_pos].max) == 3

    animation = gltf.animations[0]
    paths = {c.target.path: c for c in animation.channels}
    assert set(paths) == {"weights", "rotation"}
    weights_sampler = animation.samplers[paths["weights"].sampler]
    times = read_accessor(weights_sampler.input)[:, 0]
    np.testing.assert_allclose(times, np.arange(7) / 24.0, atol=1e-6)
    assert gltf.accessors[weights_sampler.input].max[0] == pytest.approx(6 / 24.0)
    assert weights_sampler.interpolation == "LINEAR"
    weights = read_accessor(weights_sampler.output).reshape(7, 3)
    expected = track.expression[:, [2, 3, 0]]  # by name: jawOpen, eyeBlink_L, cheekPuff_R
    np.testing.assert_allclose(weights, expected, atol=1e-7)
    quats = read_accessor(animation.samplers[paths["rotation"].sampler].output)
    assert quats.shape == (7, 4)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-6)


def test_quaternions_match_the_geometry_euler_convention():
    rotation = pytest.importorskip("cpem_jax.geometry.rotation")
    angles = np.random.default_rng(1).uniform(-1.2, 1.2, size=(5, 3))
    expected = np.asarray(rotation.euler_to_matrix(angles.astype(np.float32)))
    quats = euler_to_quaternion(angles)
    np.testing.assert_allclose(quaternion_to_matrix(quats), expected, atol=1e-5)  # batched
    for q, r in zip(quats, expected):
        np.testing.assert_allclose(quaternion_to_matrix(q), r, atol=1e-5)
        np.testing.assert_allclose(quaternion_to_matrix(3.0 * q), r, atol=1e-5)  # normalised
    a, b = quats[:2]
    np.testing.assert_allclose(quaternion_to_matrix(quaternion_multiply(a, b)),
                               quaternion_to_matrix(a) @ quaternion_to_matrix(b), atol=1e-6)


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


def test_node_matrices_trs_matrix_and_parents():
    s = np.sqrt(0.5)
    child = pygltflib.Node(translation=[1, 2, 3], rotation=[0, 0, s, s], scale=[2, 2, 2])
    local = node_matrix(child)
    turn = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])  # +90 degrees about z
    np.testing.assert_allclose(local[:3, :3], 2 * turn, atol=1e-12)
    np.testing.assert_allclose(local[:3, 3], [1, 2, 3])
    # glTF matrices are column-major: the translation is in elements 12..14.
    parent = pygltflib.Node(matrix=[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 5, 0, 0, 1], children=[0])
    gltf = pygltflib.GLTF2(nodes=[child, parent, pygltflib.Node(name="elsewhere")],
                           scenes=[pygltflib.Scene(nodes=[1])], scene=0)
    world = world_matrices(gltf)
    assert set(world) == {0, 1}  # the default scene's nodes only
    np.testing.assert_allclose(world[1][:3, 3], [5, 0, 0])
    np.testing.assert_allclose(world[0] @ [1, 0, 0, 1], [6, 4, 3, 1], atol=1e-12)


def test_reader_decodes_strides_normalized_integers_and_rejects_overruns():
    gltf = pygltflib.GLTF2()
    builder = BinaryBuilder(gltf)
    # Interleaved rows of 4 uint16 of which an accessor reads the first 2, normalized.
    rows = np.array([[0, 65535, 7, 7], [32768, 0, 7, 7], [65535, 65535, 7, 7]], np.uint16)
    view = builder.add_view(rows)
    gltf.bufferViews[view].byteStride = 8
    gltf.accessors.append(pygltflib.Accessor(bufferView=view, componentType=5123, count=3,
                                             type="VEC2", normalized=True))
    gltf.accessors.append(pygltflib.Accessor(bufferView=view, byteOffset=4, componentType=5123,
                                             count=3, type="VEC2"))
    gltf.accessors.append(pygltflib.Accessor(bufferView=view, componentType=5126, count=9,
                                             type="VEC3"))
    builder.finish_as_blob()
    reader = AccessorReader(gltf, ".")
    np.testing.assert_allclose(reader.read(0), [[0, 1], [32768 / 65535, 0], [1, 1]], rtol=1e-6)
    assert reader.read(1).tolist() == [[7, 7]] * 3 and reader.read(1).dtype == np.uint16
    with pytest.raises(GltfError, match="past the end of its buffer"):
        reader.read(2)
    with pytest.raises(GltfError, match="cannot store float64"):
        builder.add_accessor(np.zeros((2, 3)), "VEC3")


HALVES = ("browInnerUp_L", "browInnerUp_R", "eyeBlink_L", "extraUnit")


def halves_track(n=5):
    rng = np.random.default_rng(3)
    return FrameTrack.from_estimates(rng.uniform(size=(n, 4)), np.zeros((n, 3)),
                                     np.zeros((n, 3)), HALVES, fps=30.0)


def test_arkit_targets_merge_halves_and_keep_unmapped_units():
    from cpem_jax.export.arkit import ARKIT_NAMES
    from cpem_jax.export.face_glb import arkit_targets
    rng = np.random.default_rng(4)
    unit_deltas = rng.normal(size=(4, 6, 3)).astype(np.float32)
    unit_deltas[0, 3:] = 0  # the left half moves vertices 0-2, the right half 3-5
    unit_deltas[1, :3] = 0
    track = halves_track()
    names, deltas, weights = arkit_targets(unit_deltas, track)
    assert names == (*ARKIT_NAMES, "extraUnit") and deltas.shape == (53, 6, 3)
    brow = ARKIT_NAMES.index("browInnerUp")
    np.testing.assert_allclose(deltas[brow], unit_deltas[0] + unit_deltas[1], atol=1e-6)
    # Weight 1 on the merged target moves both halves fully, as weight 1 on each half does.
    np.testing.assert_allclose(1.0 * deltas[brow], unit_deltas[0] + unit_deltas[1], atol=1e-6)
    np.testing.assert_allclose(weights[:, brow], track.expression[:, :2].mean(axis=1), atol=1e-6)
    blink = ARKIT_NAMES.index("eyeBlinkLeft")
    np.testing.assert_allclose(deltas[blink], unit_deltas[2])
    np.testing.assert_allclose(weights[:, blink], track.expression[:, 2])
    tongue = ARKIT_NAMES.index("tongueOut")
    assert not deltas[tongue].any() and not weights[:, tongue].any()
    np.testing.assert_allclose(deltas[-1], unit_deltas[3])
    np.testing.assert_allclose(weights[:, -1], track.expression[:, 3])


def test_face_glb_has_the_52_arkit_targets_an_importer_matches(fake_model, tmp_path):
    from cpem_jax.export.arkit import ARKIT_NAMES, arkit_name_for
    from cpem_jax.export.face_glb import write_face_glb
    n = 4
    rng = np.random.default_rng(5)
    track = FrameTrack.from_estimates(rng.uniform(size=(n, 2)), np.zeros((n, 3)),
                                      np.zeros((n, 3)), fake_model.expression_names, fps=25.0)
    identity = np.zeros(fake_model.n_identity, np.float32)
    check = write_face_glb(str(tmp_path / "face.glb"), fake_model, identity, track)
    assert check["targets"] == 52 and check["keyframes"] == n
    gltf = pygltflib.GLTF2().load(str(tmp_path / "face.glb"))
    names = gltf.meshes[0].extras["targetNames"]
    assert [arkit_name_for(name) for name in names] == list(ARKIT_NAMES)  # 52 of 52 match
    reader = AccessorReader(gltf, str(tmp_path))
    targets = gltf.meshes[0].primitives[0].targets
    position = lambda t: t["POSITION"] if isinstance(t, dict) else t.POSITION
    jaw = reader.read(position(targets[ARKIT_NAMES.index("jawOpen")]))
    exp_basis = np.asarray(fake_model.exp_basis)
    np.testing.assert_allclose(jaw, exp_basis[:, :, 0] * 0.01, atol=1e-6)
    assert not reader.read(position(targets[ARKIT_NAMES.index("tongueOut")])).any()
    write_face_glb(str(tmp_path / "units.glb"), fake_model, identity, track, names="units")
    units = pygltflib.GLTF2().load(str(tmp_path / "units.glb"))
    assert units.meshes[0].extras["targetNames"] == list(fake_model.expression_names)
    with pytest.raises(ValueError, match="names"):
        write_face_glb(str(tmp_path / "x.glb"), fake_model, identity, track, names="fbx")


def test_frame_rate_recorded_on_the_animation_and_the_asset(tmp_path):
    vertices, triangles, deltas, names = tiny_mesh()
    write_glb(tmp_path / "face.glb", vertices, triangles, deltas, names, tiny_track())
    gltf = pygltflib.GLTF2().load(str(tmp_path / "face.glb"))
    assert gltf.animations[0].extras["fps"] == 24.0
    assert gltf.animations[0].extras["frame_count"] == 7
    assert gltf.asset.extras["fps"] == 24.0


# Imports a .glb into Blender with the scene at the rate the file records, and prints the frames
# its keys land on. Runs in an interpreter where `bpy` (Blender as a Python module) imports.
BLENDER_IMPORT = """
import json, sys
import bpy
path = sys.argv[1]
bpy.ops.wm.read_factory_settings(use_empty=True)
with open(path, "rb") as f:
    import struct
    f.read(12); length = struct.unpack("<I", f.read(4))[0]; f.read(4)
    fps = json.loads(f.read(length))["animations"][0]["extras"]["fps"]
scene = bpy.context.scene
# The README's recipe. Blender's importer turns seconds into frames at fps * fps_base (its scene
# rate is fps / fps_base), so a fractional rate is imported with the base inverted, then set back.
scene.render.fps = round(fps)
scene.render.fps_base = fps / round(fps)
bpy.ops.import_scene.gltf(filepath=path)
scene.render.fps_base = round(fps) / fps
frames = set()
for action in bpy.data.actions:
    curves = list(getattr(action, "fcurves", []) or [])
    for layer in getattr(action, "layers", []):
        for strip in layer.strips:
            for bag in strip.channelbags:
                curves.extend(bag.fcurves)
    frames.update(round(k.co[0], 4) for c in curves for k in c.keyframe_points)
print("KEYS", json.dumps(sorted(frames)))
"""


def _blender_python():
    """An interpreter with `bpy`: this one, or $CPEM_BLENDER_PYTHON (bpy wheels exist only for
    some Python versions, so it is often a separate environment)."""
    import importlib.util
    import os
    import sys
    if importlib.util.find_spec("bpy") is not None:
        return sys.executable
    other = os.environ.get("CPEM_BLENDER_PYTHON")
    if other and os.path.isfile(other):
        return other
    pytest.skip("bpy is not importable here and CPEM_BLENDER_PYTHON names no interpreter "
                "that has it (pip install bpy into a venv of a Python version it supports)")


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
def test_blender_at_the_recorded_rate_puts_keys_on_whole_frames(tmp_path, fps):
    import json
    import subprocess
    python = _blender_python()
    vertices, triangles, deltas, names = tiny_mesh()
    n = 12
    rng = np.random.default_rng(6)
    track = FrameTrack.from_estimates(rng.uniform(size=(n, 4)), 0.2 * rng.standard_normal((n, 3)),
                                      np.zeros((n, 3)), tiny_track().unit_names, fps=fps)
    path = tmp_path / "face.glb"
    write_glb(path, vertices, triangles, deltas, names, track)
    done = subprocess.run([python, "-c", BLENDER_IMPORT, str(path)], capture_output=True,
                          text=True, timeout=300)
    keys = [line for line in done.stdout.splitlines() if line.startswith("KEYS ")]
    assert keys, done.stderr[-2000:]
    frames = json.loads(keys[0][5:])
    np.testing.assert_allclose(frames, np.arange(n), atol=2e-3)  # frame k = key k, no fraction
