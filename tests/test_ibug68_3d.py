"""ICT's 3D-convention iBUG vertices (`face_model.ibug68_3d`): the packaged table, its checks."""
import numpy as np
import pytest

from cpem_jax.face_model.ibug68_3d import (FORMAT_VERSION, Ibug68TableError, ibug68_3d_ids,
                                           ibug68_3d_reading, read_ibug68_3d)


def test_the_packaged_table_reads_and_names_68_vertices():
    table = read_ibug68_3d()
    assert int(table["format_version"]) == FORMAT_VERSION
    assert table["vertex_ids"].shape == table["narrow_vertex_ids"].shape == (68,)
    assert len(str(table["source_sha256"])) == 64
    # The chosen vertices lie nearer the aligned keypoints than ICT's own landmark vertices
    # (built: 0.16 and 0.31 against 0.75 cm on average, the jaw 0.23 and 0.69 against 2.41).
    assert table["distance_cm"].mean() < 0.5 * table["ict_landmark_distance_cm"].mean()
    assert float(table["alignment_rms_cm"]) < 0.5
    # The full area reaches every keypoint; the narrow one falls short at the outer jaw, and
    # differs from the full-area choice only there (points 0-4, 12-16).
    assert table["distance_cm"].max() < 0.5 and table["narrow_distance_cm"][:4].min() > 0.8
    assert table["distance_cm"][:17].mean() < 0.5 * table["narrow_distance_cm"][:17].mean()
    differ = np.flatnonzero(table["vertex_ids"] != table["narrow_vertex_ids"])
    assert set(differ) <= set(range(5)) | set(range(12, 17)) and len(differ) >= 8
    assert table["narrow_vertex_ids"].max() < 6706 <= table["vertex_ids"].max() < 9409


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"not a zip", "not a readable .npz"),
    ({"format_version": np.int32(99), "vertex_ids": np.arange(68)}, "format version 99"),
    ({"format_version": np.int32(FORMAT_VERSION), "vertex_ids": np.arange(5)},
     "vertex_ids must be 68 vertex indices"),
    ({"format_version": np.int32(FORMAT_VERSION), "vertex_ids": np.arange(68)},
     "narrow_vertex_ids must be 68 vertex indices")])
def test_a_bad_table_names_the_rebuild(tmp_path, content, message):
    path = tmp_path / "t.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.savez(path, **content)
    with pytest.raises(Ibug68TableError, match=message) as err:
        read_ibug68_3d(str(path))
    assert "build_ict_ibug68.py" in str(err.value)


def test_only_ict_gets_the_table(fake_model, tmp_path):
    """Another model (here a renamed one) has no table; a table naming vertices the model
    lacks is refused."""
    assert ibug68_3d_ids(fake_model.replace(name="bfm")) is None
    path = tmp_path / "t.npz"
    np.savez(path, format_version=np.int32(FORMAT_VERSION),
             vertex_ids=np.arange(68) + fake_model.n_vertices + 5,
             narrow_vertex_ids=np.arange(68) + fake_model.n_vertices - 10)
    with pytest.raises(Ibug68TableError, match="names vertex"):
        ibug68_3d_ids(fake_model, str(path))


def test_the_vertices_sit_in_ibug_order_on_ict(ict_model):
    """On ICT's mean face (x toward the subject's left, y up, cm): the jaw runs from the
    subject's right over the chin (its lowest point) to the left, nearly mirror-symmetric; the
    brows sit above the eyes, the nose's tip in front; every inner point lies within 1 cm of
    ICT's own landmark of that number (the same place of the face) and every jaw point within
    3.5 cm (the conventions part most there)."""
    ids = ibug68_3d_ids(ict_model)
    assert ids.dtype == np.int32 and ids.max() < ict_model.n_vertices
    p = np.asarray(ict_model.mean_shape)[ids]
    own = np.asarray(ict_model.mean_shape)[np.asarray(ict_model.landmark_ids)]
    assert np.all(np.diff(p[:17, 0]) > 0) and p[8, 1] == p[:17, 1].min()
    mirror = p[16::-1, :2] * [-1, 1]
    assert np.abs(p[:17, :2] - mirror).max() < 0.6
    assert p[17:27, 1].min() > p[36:48, 1].max()
    assert p[30, 2] == p[27:36, 2].max()
    distance = np.linalg.norm(p - own, axis=1)
    assert distance[17:].max() < 1.0 and distance[:17].max() < 3.5


def test_the_full_area_reads_the_narrow_fit(ict_model, tmp_path, caplog):
    """Coefficients fitted with the narrow area are read on ICT's full area of the same archive:
    the same points where the areas overlap, the outer jaw ends behind the narrow area's edge
    and further out to each side. A converted narrow .npz has no
    full area: the narrow choice, with a log line."""
    import jax.numpy as jnp
    from conftest import shared_path
    from cpem_jax.face_model import cache
    from cpem_jax.geometry.rotation import euler_to_matrix

    spec = shared_path("assets", "ICT-FaceKit-master.zip")
    wide, ids = ibug68_3d_reading(ict_model, spec)
    table = read_ibug68_3d()
    assert wide.n_vertices == 9409 and np.array_equal(ids, table["vertex_ids"])
    rng = np.random.default_rng(1)
    identity = rng.normal(size=ict_model.n_identity).astype(np.float32)
    expression = rng.uniform(0, 1, ict_model.n_expression).astype(np.float32)

    def posed(model, rows):
        shape = (np.asarray(model.mean_shape)[rows]
                 + np.asarray(model.id_basis)[rows] @ identity
                 + np.asarray(model.exp_basis)[rows] @ expression)
        return shape @ np.asarray(euler_to_matrix(jnp.asarray([0.1, 0.4, 0.0]))).T

    narrow = np.asarray(table["narrow_vertex_ids"])
    np.testing.assert_allclose(posed(wide, narrow), posed(ict_model, narrow), atol=1e-4)
    mean = np.asarray(wide.mean_shape)
    assert mean[ids[0], 0] < mean[narrow[0], 0] and mean[ids[16], 0] > mean[narrow[16], 0]
    assert np.all(mean[ids[[0, 1, 15, 16]], 2] < mean[narrow[[0, 1, 15, 16]], 2] - 0.5)

    converted = cache.save_model(ict_model, str(tmp_path / "narrow.npz"))
    with caplog.at_level("WARNING"):
        model, fallback = ibug68_3d_reading(ict_model, converted)
    assert model is ict_model and np.array_equal(fallback, narrow)
    assert "narrow face area" in caplog.text


def _build_module():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import build_ict_ibug68 as build
    return build


def test_the_build_chooses_mirror_pairs_and_midline_vertices():
    """benchmarks/build_ict_ibug68.py: on a symmetric point set every iBUG point gets a vertex,
    mirror pairs get mirrored vertices, midline points midline vertices, and each point the
    nearest such vertex to its place."""
    build = _build_module()
    rng = np.random.default_rng(0)
    half = rng.uniform([0.5, -5, 0], [6, 5, 3], (40, 3))
    mean = np.concatenate([half, half * [-1, 1, 1], rng.uniform(-5, 5, (10, 3)) * [0, 1, 1]])
    distance = rng.uniform(0, 100, (68, len(mean)))
    ids = build.choose_vertices(distance, mean)
    assert ids.shape == (68,) and len(build.MIRROR_PAIRS) * 2 + len(build.MIDLINE) == 68
    assert sorted({k for pair in build.MIRROR_PAIRS for k in pair} | set(build.MIDLINE)) \
        == list(range(68))
    mirror, paired = build.mirror_vertices(mean)
    for right, left in build.MIRROR_PAIRS:
        assert ids[left] == mirror[ids[right]] and paired[ids[right]]
        pair_cost = distance[right] + distance[left, mirror]
        assert pair_cost[ids[right]] == np.min(np.where(paired, pair_cost, np.inf))
    for k in build.MIDLINE:
        assert abs(mean[ids[k], 0]) < build.MIRROR_TOLERANCE_CM


def test_the_build_recovers_vertices_from_keypoints_in_another_frame(ict_model):
    """Keypoints that are ICT's own landmark vertices turned, scaled (micrometres) and moved
    come back as those vertices, wherever the pair rule allows: the alignment undoes the
    similarity transform (residual ~0)."""
    build = _build_module()
    from scipy.spatial.transform import Rotation
    mean = np.asarray(ict_model.mean_shape, np.float64)
    own = np.asarray(ict_model.landmark_ids, np.int64)
    turn = Rotation.from_euler("xyz", [0.2, -0.3, 0.1]).as_matrix()
    keypoints = 1e4 * mean[own] @ turn.T + [5e4, -2e4, 1e5]
    table = build.table_from_keypoints(keypoints, mean, own, len(mean))
    assert table["alignment_rms_cm"] < 1e-6
    assert np.all(table["ict_landmark_distance_cm"] < 1e-6)
    # The pair rule keeps a point on ICT's own vertex where that vertex has a mirror.
    assert np.median(table["distance_cm"]) < 1e-6 and table["distance_cm"].max() < 0.5


def test_the_build_reads_keypoints_and_names_the_fix(tmp_path, capsys):
    build = _build_module()
    good = tmp_path / "u_base.txt"
    values = np.arange(204, dtype=np.float64)
    good.write_text("\n".join(f"{v:.6f}" for v in values))
    points, digest = build.read_keypoints(str(good))
    assert points.shape == (68, 3) and points[1, 0] == 3.0 and len(digest) == 64
    for content in ("1 2 3", "not numbers at all"):
        bad = tmp_path / "bad.txt"
        bad.write_text(content)
        with pytest.raises(SystemExit, match="not the 204"):
            build.read_keypoints(str(bad))
    with pytest.raises(SystemExit, match="pass the file with --keypoints"):
        build.read_keypoints(str(tmp_path / "missing.txt"))
