"""benchmarks/refine_mediapipe_ict.py: the geometry of moving table points (the fits it runs are
measured in experiments/dense_fit, not here)."""
import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def refine():
    pytest.importorskip("scipy")
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import refine_mediapipe_ict
    return refine_mediapipe_ict


def _grid_with_hole(n=6):
    """A flat n x n vertex grid (z = 0) whose central square is missing: a mesh with one
    opening, like an eye. Returns (vertices [V, 3], triangles [T, 3])."""
    xs, ys = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    vertices = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], 1)
    triangles = []
    for y in range(n - 1):
        for x in range(n - 1):
            if (x, y) == (n // 2 - 1, n // 2 - 1):
                continue  # The opening.
            a, b, c, d = y * n + x, y * n + x + 1, (y + 1) * n + x, (y + 1) * n + x + 1
            triangles += [(a, b, d), (a, d, c)]
    return vertices, np.asarray(triangles)


def test_nearest_point_on_ring_edges(refine):
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]])
    edges = np.array([[0, 1], [1, 2]])
    ids, w = refine.nearest_on_edges(np.array([0.25, -0.5, 0.0]), vertices, edges)
    assert list(ids) == [0, 1]
    np.testing.assert_allclose(w, [0.75, 0.25])
    ids, w = refine.nearest_on_edges(np.array([1.4, 0.6, 0.0]), vertices, edges)
    assert list(ids) == [1, 2]
    np.testing.assert_allclose(w, [0.4, 0.6])


def test_ring_edges_follow_the_ring_that_holds_both_vertices(refine):
    vertices, triangles = _grid_with_hole()
    # Ring 0 is the opening's own loop; vertices 7 and 8 sit one edge out from it.
    (edges,) = refine.ring_edges(vertices, triangles, [(7, 8)])
    ring_vertices = set(edges.ravel())
    assert {7, 8} <= ring_vertices and not {14, 15, 20, 21} & ring_vertices
    # Mesh edges only (grid sides and the triangles' diagonals), around the whole opening.
    assert all(np.linalg.norm(vertices[a] - vertices[b]) <= 2 ** 0.5 + 1e-9 for a, b in edges)
    assert ring_vertices == {7, 8, 9, 10, 13, 16, 19, 22, 25, 26, 27, 28}


def test_offsets_are_made_symmetric(refine):
    mirror = np.arange(refine.N_MESH)
    mirror[[33, 263]] = [263, 33]
    error = np.zeros(refine.N_MESH)
    offsets = np.zeros((refine.N_MESH, 2))
    offsets[33], offsets[263] = [0.2, 0.1], [-0.4, 0.3]
    count = np.ones(refine.N_MESH)
    out = refine.symmetric(offsets, count, mirror, error)
    np.testing.assert_allclose(out[33], [0.3, 0.2])
    np.testing.assert_allclose(out[263], [-0.3, 0.2])
    count[263] = 0  # An unconstrained mirror point leaves its partner as measured.
    np.testing.assert_allclose(refine.symmetric(offsets, count, mirror, error)[33], [0.2, 0.1])


def test_a_refined_table_is_not_refined_twice(refine, tmp_path, monkeypatch):
    from cpem_jax.face_model import dense_landmarks as dl
    table = dl.read_table()
    table["method"] = np.asarray(str(table["method"]) + "\n\n" + refine.STEP_SECTION + " done")
    path = tmp_path / "refined.npz"
    np.savez(path, **table)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    with pytest.raises(SystemExit, match="refined already"):
        refine.main(["--table", str(path), "--out", str(tmp_path / "out.npz"),
                     "--videos", str(video)])


def test_brows_and_lids_stay_and_each_iris_moves_with_its_centre(refine):
    """Offsets on the fixed regions and the irises: the brows and lids keep their place, an
    eye's five iris points all move by the offset of its iris centre (x, y)."""
    from cpem_jax.face_model import dense_landmarks as dl
    table = dl.read_table()
    n = dl.N_DENSE
    offsets = np.zeros((n, 2))
    offsets[468], offsets[473] = [0.1, -0.05], [-0.2, 0.0]
    brows = np.flatnonzero(np.isin(np.asarray(table["region"])[:refine.N_MESH],
                                   [dl.REGIONS.index("brows"), dl.REGIONS.index("eyelids")]))
    assert len(brows) == 20 + 32
    offsets[brows] = [0.3, 0.3]
    count = np.zeros(n)
    count[[468, 473]] = 1
    count[brows] = 1
    vertices = np.zeros((int(table["vertex_ids"].max()) + 1, 3))
    out, moved = refine.move_points(table, offsets, count, vertices, np.zeros((0, 3), int))
    np.testing.assert_array_equal(out["vertex_ids"], table["vertex_ids"])
    assert not moved.any()
    shift = out["iris"] - table["iris"]
    np.testing.assert_allclose(shift[:5], np.tile([0.1, -0.05, 0.0], (5, 1)), atol=1e-6)
    np.testing.assert_allclose(shift[5:], np.tile([-0.2, 0.0, 0.0], (5, 1)), atol=1e-6)


def test_the_brow_zone_is_the_brows_and_the_skin_they_move(refine, ict_model):
    """The points the brow units move by more than 2 mm: every brow point, none of the lids,
    lips or nose, and some forehead and upper-lid skin."""
    from cpem_jax.face_model import dense_landmarks as dl
    dense = dl.dense_landmarks_for(ict_model)
    zone = refine.brow_zone(dense, ict_model.expression_names)
    region = np.asarray(dense.region)[:refine.N_MESH]
    names = np.asarray(dl.REGIONS)[region]
    assert zone[names == "brows"].all() and (names == "brows").sum() == 20
    assert not zone[np.isin(names, ["eyelids", "lips", "nose"])].any()
    assert 0 < zone[names == "surface"].sum() < 80


def test_a_missing_video_is_one_line(refine, tmp_path):
    with pytest.raises(SystemExit, match="no video .*absent.mp4; set CPEM_SHARED or pass"):
        refine.main(["--videos", str(tmp_path / "absent.mp4"), "--out", str(tmp_path / "o.npz")])
