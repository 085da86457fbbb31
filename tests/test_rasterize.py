"""rasterize against a brute-force numpy reference (every pixel against every triangle)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.render.rasterize import rasterize

NEAR = 1e-3
EDGE_TOL = 1e-3   # pixels: centres this close to a triangle's edge are "edge ties"
DEPTH_TOL = 1e-5  # relative: two surfaces this close in depth are ties


def brute_force(verts, triangles, height, width, near=NEAR):
    """Reference in float64: for each pixel centre, every triangle in turn.

    Returns tri_id [B, H, W] (-1 none), bary [B, H, W, 3] perspective-correct, depth [B, H, W],
    and tie [B, H, W] bool where an edge or depth tie makes the answer ambiguous.
    """
    batch = verts.shape[0]
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    tri_id = np.full((batch, height, width), -1)
    bary = np.zeros((batch, height, width, 3))
    depth = np.full((batch, height, width), np.inf)
    tie = np.zeros((batch, height, width), bool)
    for b in range(batch):
        for f, corners in enumerate(triangles):
            c = verts[b, corners].astype(np.float64)
            u, v, z = c[:, 0], c[:, 1], c[:, 2]
            if np.any(z <= near) or not np.all(np.isfinite(c)):
                continue
            area2 = (u[1] - u[0]) * (v[2] - v[0]) - (v[1] - v[0]) * (u[2] - u[0])
            if abs(area2) <= 1e-8:
                continue
            w = []
            for k in range(3):
                i, j = (k + 1) % 3, (k + 2) % 3
                e = (u[j] - u[i]) * (ys - v[i]) - (v[j] - v[i]) * (xs - u[i])
                w.append(e / area2)
                length = np.hypot(u[j] - u[i], v[j] - v[i])
                tie[b] |= np.abs(e) / length < EDGE_TOL
            w = np.stack(w, -1)
            inside = np.all(w >= 0, -1)
            inv = np.sum(w / z, -1)
            d = 1.0 / np.where(inside, inv, 1.0)
            close = inside & np.isfinite(depth[b]) & (np.abs(d - depth[b]) < DEPTH_TOL * d)
            tie[b] |= close
            better = inside & (d < depth[b])
            tri_id[b][better] = f
            depth[b][better] = d[better]
            bary[b][better] = (w / z / inv[..., None])[better]
    return tri_id, bary, np.where(tri_id >= 0, depth, 0.0), tie


def random_soup(rng, batch, n_tri, height, width, max_size):
    """Random triangles (own vertices) of sizes up to max_size pixels, partly off-screen."""
    centres = np.stack([rng.uniform(-4, width + 4, (batch, n_tri)),
                        rng.uniform(-4, height + 4, (batch, n_tri))], -1)
    offsets = rng.uniform(-max_size / 2, max_size / 2, (batch, n_tri, 3, 2))
    uv = centres[:, :, None, :] + offsets
    z = rng.uniform(1.0, 10.0, (batch, n_tri, 3, 1))
    verts = np.concatenate([uv, z], -1).reshape(batch, 3 * n_tri, 3).astype(np.float32)
    triangles = np.arange(3 * n_tri, dtype=np.int32).reshape(n_tri, 3)
    return verts, triangles


def assert_matches_reference(frags, verts, triangles, height, width):
    ref_id, ref_bary, ref_depth, tie = brute_force(verts, triangles, height, width)
    tri_id = np.asarray(frags.tri_id)
    ok = ~tie
    assert tie.mean() < 0.05
    np.testing.assert_array_equal(tri_id[ok], ref_id[ok])
    covered = ok & (ref_id >= 0)
    np.testing.assert_allclose(np.asarray(frags.bary)[covered], ref_bary[covered], atol=1e-5)
    np.testing.assert_allclose(np.asarray(frags.depth)[covered], ref_depth[covered], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(frags.bary)[tri_id < 0], 0.0)


@pytest.mark.parametrize("max_size", [3.0, 12.0, 40.0])
def test_matches_brute_force_on_random_meshes(max_size):
    rng = np.random.default_rng(int(max_size))
    height, width = 20, 26
    verts, triangles = random_soup(rng, 2, 40, height, width, max_size)
    frags = jax.jit(rasterize, static_argnums=2)(verts, triangles, (height, width))
    assert_matches_reference(frags, verts, triangles, height, width)


def test_connected_mesh_has_no_holes_and_matches():
    """A perspective grid (shared edges): every pixel inside the grid's outline is covered."""
    rng = np.random.default_rng(3)
    n = 9
    gx, gy = np.meshgrid(np.linspace(2.2, 27.7, n), np.linspace(1.7, 21.6, n))
    z = 3.0 + rng.uniform(0, 1, gx.shape)
    verts = np.stack([gx, gy, z], -1).reshape(1, -1, 3).astype(np.float32)
    quads = [(j * n + i, j * n + i + 1, (j + 1) * n + i + 1, (j + 1) * n + i)
             for j in range(n - 1) for i in range(n - 1)]
    triangles = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], np.int32)
    frags = jax.jit(lambda v: rasterize(v, triangles, (24, 30)))(verts)
    assert_matches_reference(frags, verts, triangles, 24, 30)
    inner = np.asarray(frags.tri_id)[0, 2:21, 3:27]
    assert np.all(inner >= 0)


def test_overflow_loop_and_close_ups_leave_no_holes():
    """Triangles far larger than the image (a close-up) and a tiny static block force the
    while-loop path; results are the same as the reference."""
    rng = np.random.default_rng(5)
    height, width = 18, 22
    verts, triangles = random_soup(rng, 2, 12, height, width, 150.0)
    frags = jax.jit(lambda v: rasterize(v, triangles, (height, width),
                                        tasks_per_triangle=0.05))(verts)
    assert_matches_reference(frags, verts, triangles, height, width)
    big = np.array([[[-500.0, -500.0, 2.0], [900.0, -400.0, 2.0], [-300.0, 800.0, 2.0]]],
                   np.float32)
    frags = jax.jit(lambda v: rasterize(v, np.array([[0, 1, 2]], np.int32), (height, width)))(big)
    assert np.all(np.asarray(frags.tri_id) == 0)


def test_vmap_agrees_with_the_batched_call():
    """vmap over a leading axis (which turns lax.cond into select) gives the same fragments,
    with and without large triangles (the loop path)."""
    rng = np.random.default_rng(7)
    for max_size, budget in ((6.0, 2.5), (30.0, 0.2)):
        verts, triangles = random_soup(rng, 3, 15, 12, 14, max_size)
        batched = jax.jit(lambda v: rasterize(v, triangles, (12, 14), tasks_per_triangle=budget))
        mapped = jax.jit(jax.vmap(lambda v: rasterize(v[None], triangles, (12, 14),
                                                      tasks_per_triangle=budget)))
        a, b = batched(verts), mapped(verts)
        np.testing.assert_array_equal(np.asarray(b.tri_id).reshape(3, 12, 14),
                                      np.asarray(a.tri_id))
        np.testing.assert_allclose(np.asarray(b.bary).reshape(3, 12, 14, 3), np.asarray(a.bary),
                                   atol=1e-6)


def _loss_grad(verts, triangles, size):
    def loss(v):
        frags = rasterize(v, triangles, size)
        return jnp.sum(frags.bary[..., 0] * frags.depth) + jnp.sum(frags.bary[..., 2])
    return jax.jit(jax.grad(loss))(jnp.asarray(verts))


def test_degenerate_behind_camera_and_off_screen_triangles():
    verts = np.array([[
        [2.0, 2.0, 5.0], [12.0, 3.0, 5.0], [4.0, 11.0, 5.0],        # 0: normal
        [5.0, 5.0, 4.0], [5.0, 5.0, 4.0], [9.0, 9.0, 4.0],          # 1: degenerate (zero area)
        [0.0, 0.0, -1.0], [15.0, 0.0, 2.0], [0.0, 15.0, 2.0],       # 2: partly behind camera
        [50.0, 50.0, 3.0], [60.0, 50.0, 3.0], [50.0, 60.0, 3.0],    # 3: off-screen
        [1.0, 1.0, np.nan], [9.0, 1.0, 1.0], [1.0, 9.0, 1.0],       # 4: non-finite
    ]], np.float32)
    triangles = np.arange(15, dtype=np.int32).reshape(5, 3)
    frags = rasterize(verts, triangles, (14, 16))
    ids = np.asarray(frags.tri_id)
    assert set(np.unique(ids)) == {-1, 0}
    ref_id, _, _, tie = brute_force(verts, triangles, 14, 16)
    np.testing.assert_array_equal(ids[~tie], ref_id[~tie])
    for x in (frags.bary, frags.depth):
        assert np.all(np.isfinite(np.asarray(x)))
    grad = np.asarray(_loss_grad(verts, triangles, (14, 16)))
    assert np.all(np.isfinite(grad))
    assert np.any(grad[0, :3] != 0) and np.all(grad[0, 3:] == 0)


def test_entirely_off_screen_and_empty_inputs():
    verts = np.array([[[-50.0, 3.0, 2.0], [-40.0, 3.0, 2.0], [-45.0, 9.0, 2.0]]], np.float32)
    triangles = np.array([[0, 1, 2]], np.int32)
    frags = rasterize(verts, triangles, (8, 8))
    assert np.all(np.asarray(frags.tri_id) == -1)
    assert np.all(np.isfinite(np.asarray(_loss_grad(verts, triangles, (8, 8)))))
    empty = rasterize(np.zeros((0, 3, 3), np.float32), triangles, (8, 8))
    assert empty.tri_id.shape == (0, 8, 8) and empty.bary.shape == (0, 8, 8, 3)
    none = rasterize(verts, np.zeros((0, 3), np.int32), (8, 8))
    assert np.all(np.asarray(none.tri_id) == -1)


def test_bad_inputs_raise_clear_errors():
    tri = np.array([[0, 1, 2]], np.int32)
    with pytest.raises(ValueError, match=r"\[B, V, 3\]"):
        rasterize(np.zeros((3, 3), np.float32), tri, (4, 4))
    with pytest.raises(ValueError, match="integer"):
        rasterize(np.zeros((1, 3, 3), np.float32), tri.astype(np.float32), (4, 4))
    with pytest.raises(ValueError, match="outside"):
        rasterize(np.zeros((1, 3, 3), np.float32), tri + 1, (4, 4))
    with pytest.raises(ValueError, match="positive"):
        rasterize(np.zeros((1, 3, 3), np.float32), tri, (0, 4))
