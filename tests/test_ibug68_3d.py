"""ICT's 3D-convention iBUG vertices (`face_model.ibug68_3d`): the packaged table, its checks."""
import numpy as np
import pytest

from cpem_jax.face_model.ibug68_3d import (FORMAT_VERSION, Ibug68TableError, ibug68_3d_ids,
                                           read_ibug68_3d)


def test_the_packaged_table_reads_and_names_68_vertices():
    table = read_ibug68_3d()
    assert int(table["format_version"]) == FORMAT_VERSION
    assert table["vertex_ids"].shape == (68,)
    assert int(table["n_crops"]) >= 100
    # The chosen vertices lie nearer the reference they were chosen against than ICT's own.
    assert table["mean_distance_percent"].mean() < table["ict_landmark_distance_percent"].mean()


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"not a zip", "not a readable .npz"),
    ({"format_version": np.int32(99), "vertex_ids": np.arange(68)}, "format version 99"),
    ({"format_version": np.int32(FORMAT_VERSION), "vertex_ids": np.arange(5)},
     "must be 68 vertex indices")])
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
             vertex_ids=np.arange(68) + fake_model.n_vertices - 10)
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



def test_the_build_chooses_mirror_pairs_and_midline_vertices():
    """benchmarks/build_ict_ibug68.py: on a symmetric point set every iBUG point gets a vertex,
    mirror pairs get mirrored vertices, midline points midline vertices, and each point the
    nearest such vertex to its reference."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import build_ict_ibug68 as build
    rng = np.random.default_rng(0)
    half = rng.uniform([0.5, -5, 0], [6, 5, 3], (40, 3))
    mean = np.concatenate([half, half * [-1, 1, 1], rng.uniform(-5, 5, (10, 3)) * [0, 1, 1]])
    projected = rng.uniform(0, 100, (4, len(mean), 2))
    reference = rng.uniform(0, 100, (4, 68, 2))
    ids, distance, every = build.choose_vertices(projected, reference, mean)
    assert ids.shape == (68,) and len(build.MIRROR_PAIRS) * 2 + len(build.MIDLINE) == 68
    assert sorted([k for pair in build.MIRROR_PAIRS for k in pair] + list(build.MIDLINE)) \
        == list(range(68))
    for right, left in build.MIRROR_PAIRS:
        np.testing.assert_allclose(mean[ids[left]], mean[ids[right]] * [-1, 1, 1])
        pair_cost = every[right, ids[right]] + every[left, ids[left]]
        assert pair_cost <= min(every[right, v] + every[left, (v + 40) % 80] for v in range(80))
    midline = np.arange(80, 90)
    for k in build.MIDLINE:
        assert ids[k] == midline[np.argmin(every[k, midline])]
    np.testing.assert_allclose(distance, every[np.arange(68), ids])
