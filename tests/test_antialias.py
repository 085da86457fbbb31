"""antialias: silhouette gradients (finite differences), topology, interior edges untouched."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.render.antialias import antialias, edge_neighbors
from cpem_jax.render.interpolate import interpolate
from cpem_jax.render.rasterize import rasterize

SIZE = (16, 16)
# A quad (two triangles) over a black background: every vertex is a silhouette vertex.
VERTS = np.array([[[3.12, 2.58, 5.0], [12.59, 4.07, 6.0], [6.52, 13.07, 4.0], [14.45, 12.59, 5.0]]],
                 np.float32)
TRIANGLES = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
COLORS = np.array([[1.0, 0.2, 0.1], [0.3, 0.9, 0.2], [0.1, 0.4, 1.0], [0.8, 0.8, 0.1]],
                  np.float32)


def render(verts, colors=COLORS, aa=True):
    frags = rasterize(verts, TRIANGLES, SIZE)
    image = interpolate(colors, frags, TRIANGLES)
    return antialias(image, frags, verts, TRIANGLES) if aa else image


def edge_distance(verts, triangles, height, width):
    """Smallest distance in pixels from any pixel centre to any triangle edge."""
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    best = np.inf
    for tri in triangles:
        for k in range(3):
            a, b = verts[0, tri[(k + 1) % 3], :2], verts[0, tri[(k + 2) % 3], :2]
            d = b - a
            t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / (d @ d), 0, 1)
            best = min(best, np.min(np.hypot(xs - a[0] - t * d[0], ys - a[1] - t * d[1])))
    return best


def test_photometric_gradient_matches_finite_differences_at_silhouette_vertices():
    eps = 1e-2
    assert edge_distance(VERTS, TRIANGLES, *SIZE) > 3 * eps  # no pixel centre is crossed
    weights = jax.random.uniform(jax.random.PRNGKey(0), (1,) + SIZE + (3,))

    @functools.partial(jax.jit, static_argnames="aa")
    def loss(v, aa=True):
        return jnp.sum(render(v, aa=aa) * weights)

    grad = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(VERTS)))
    fd = np.zeros_like(grad)
    for i in range(4):
        for j in range(3):
            step = np.zeros_like(VERTS)
            step[0, i, j] = eps
            fd[0, i, j] = (loss(VERTS + step) - loss(VERTS - step)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=2e-2)
    # Silhouette motion is most of the screen-space gradient: without antialiasing it is lost.
    no_aa = np.asarray(jax.grad(lambda v: loss(v, aa=False))(jnp.asarray(VERTS)))
    assert np.all(np.abs(grad[0, :, :2]) > 1.0)
    assert np.all(np.abs(no_aa[0, :, :2]) < 0.5 * np.abs(grad[0, :, :2]))


def test_image_loss_pulls_a_flat_silhouette_toward_its_target():
    """A flat-coloured quad has no interior gradient at all: only the silhouette can move it."""
    flat = np.ones((4, 3), np.float32)
    target = render(VERTS + np.array([1.3, -0.8, 0.0], np.float32), flat)

    @jax.jit
    def grads(shift):
        def loss(s, aa):
            return jnp.mean((render(VERTS + s, flat, aa=aa) - target) ** 2)
        return jax.grad(loss)(shift, True), jax.grad(loss)(shift, False)

    grad, no_aa = (np.asarray(g) for g in grads(jnp.zeros(3)))
    assert grad[0] < 0 and grad[1] > 0   # descent moves right (+u) and up (-v)
    assert np.all(np.abs(no_aa[:2]) < 1e-6 * np.abs(grad[:2]))


def test_interior_edges_are_not_blended():
    flat = np.full((4, 3), 0.7, np.float32)
    frags = rasterize(VERTS, TRIANGLES, SIZE)
    image = np.asarray(render(VERTS, flat))[0, ..., 0]
    covered = np.asarray(frags.mask)[0]
    padded = np.pad(covered, 1)
    interior = (covered & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2]
                & padded[1:-1, 2:])
    ids = np.asarray(frags.tri_id)[0]
    assert len(np.unique(ids[interior])) == 2   # the shared diagonal runs through the interior
    np.testing.assert_allclose(image[interior], 0.7, atol=1e-6)
    outline = covered & ~interior
    assert np.any(image[outline] < 0.7 - 1e-3)  # silhouette pixels are blended with black


def grid_triangles(n):
    quads = [(j * n + i, j * n + i + 1, (j + 1) * n + i + 1, (j + 1) * n + i)
             for j in range(n - 1) for i in range(n - 1)]
    return np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], np.int32)


def test_edge_neighbors_matches_a_dictionary_reference_jit_or_not():
    triangles = grid_triangles(5)
    owners = {}
    for f, tri in enumerate(triangles):
        for k in range(3):
            owners.setdefault(frozenset((tri[(k + 1) % 3], tri[(k + 2) % 3])), []).append(f)
    expected = np.full(triangles.shape, -1)
    for f, tri in enumerate(triangles):
        for k in range(3):
            others = [g for g in owners[frozenset((tri[(k + 1) % 3], tri[(k + 2) % 3]))] if g != f]
            expected[f, k] = others[0] if others else -1
    np.testing.assert_array_equal(np.asarray(edge_neighbors(triangles)), expected)
    np.testing.assert_array_equal(np.asarray(jax.jit(edge_neighbors)(triangles)), expected)
    assert (expected == -1).sum() == 4 * 4  # the grid's outline


def test_no_nan_with_degenerate_and_behind_camera_triangles():
    verts = np.concatenate([VERTS, np.array([[[5.0, 5.0, 3.0], [5.0, 5.0, 3.0], [8.0, 8.0, 3.0],
                                              [1.0, 1.0, -2.0], [15.0, 2.0, 2.0],
                                              [2.0, 15.0, 2.0]]], np.float32)], axis=1)
    triangles = np.concatenate([TRIANGLES, [[4, 5, 6], [7, 8, 9]]]).astype(np.int32)
    colors = np.ones((10, 3), np.float32)

    def loss(v):
        frags = rasterize(v, triangles, SIZE)
        image = antialias(interpolate(colors, frags, triangles), frags, v, triangles)
        return jnp.sum(image ** 2)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(verts)))
    assert np.all(np.isfinite(grad))
    assert np.any(grad[0, :4] != 0) and np.all(grad[0, 4:] == 0)


def test_bad_color_shape_raises():
    frags = rasterize(VERTS, TRIANGLES, SIZE)
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        antialias(np.zeros(SIZE + (3,), np.float32), frags, VERTS, TRIANGLES)


def folded_grid(rng, batch, n, height, width):
    """Perspective grids with random depth and a few vertices pulled across their neighbours
    (folds: silhouette edges inside the mesh), [B, n*n, 3], plus triangles."""
    gx, gy = np.meshgrid(np.linspace(1.3, width - 1.7, n), np.linspace(1.1, height - 1.4, n))
    base = np.stack([gx, gy, 3.0 + np.zeros_like(gx)], -1).reshape(-1, 3)
    verts = np.repeat(base[None], batch, 0)
    verts = verts + rng.uniform(-0.6, 0.6, verts.shape) * np.array([1.0, 1.0, 1.5])
    for b in range(batch):
        pulled = rng.choice(n * n, 3, replace=False)
        verts[b, pulled, :2] += rng.uniform(-4.0, 4.0, (3, 2))
    return verts.astype(np.float32), grid_triangles(n)


@pytest.mark.parametrize("capacity", [0.5, 1e-6])
def test_compacted_pairs_match_the_dense_blend_values_and_gradients(capacity):
    """The compacted silhouette list (and, at a tiny capacity, its dense fallback) gives the
    dense blend's colours and the plain-jnp autodiff gradients of it."""
    from cpem_jax.render.antialias import (_pair_candidates, _silhouette_table,
                                           _silhouette_triangles)
    rng = np.random.default_rng(11)
    height, width = 14, 17
    verts, triangles = folded_grid(rng, 2, 6, height, width)
    neighbors = edge_neighbors(triangles)
    frags = rasterize(verts, triangles, (height, width))
    color = jnp.asarray(rng.uniform(0, 1, (2, height, width, 2)), jnp.float32)
    weights = jnp.asarray(rng.uniform(-1, 1, color.shape), jnp.float32)
    table = _silhouette_table(jnp.asarray(verts), triangles, neighbors, 1e-3)
    count = int(jnp.sum(_pair_candidates(frags.tri_id, frags.depth,
                                         _silhouette_triangles(table))))
    slots = int(np.ceil(capacity * 2 * 2 * height * width))
    assert 10 < count <= slots if capacity == 0.5 else count > slots  # the path under test

    def blended(c, v, cap):
        return antialias(c, frags, v, triangles, neighbors, pair_capacity=cap)

    @functools.partial(jax.jit, static_argnums=2)
    def value_and_grads(c, v, cap):
        return jax.value_and_grad(lambda c_, v_: jnp.sum(blended(c_, v_, cap) * weights),
                                  argnums=(0, 1))(c, v)

    dense_value, dense_grads = value_and_grads(color, jnp.asarray(verts), None)
    value, grads = value_and_grads(color, jnp.asarray(verts), capacity)
    image = jax.jit(blended, static_argnums=2)
    np.testing.assert_allclose(np.asarray(image(color, verts, capacity)),
                               np.asarray(image(color, verts, None)), atol=1e-6)
    np.testing.assert_allclose(float(value), float(dense_value), rtol=1e-6)
    for g, ref in zip(grads, dense_grads):
        assert np.any(np.asarray(ref) != 0)
        np.testing.assert_allclose(np.asarray(g), np.asarray(ref), rtol=1e-5, atol=1e-5)


def test_compacted_blend_under_vmap_matches_the_batched_call():
    """vmap turns the fallback's lax.cond into a select; values and gradients are unchanged."""
    rng = np.random.default_rng(12)
    height, width = 12, 13
    verts, triangles = folded_grid(rng, 3, 5, height, width)
    neighbors = edge_neighbors(triangles)
    color = jnp.asarray(rng.uniform(0, 1, (3, height, width, 3)), jnp.float32)

    def loss(c, v):
        frags = rasterize(v, triangles, (height, width))
        return jnp.sum(antialias(c, frags, v, triangles, neighbors) ** 2)

    batched = jax.jit(jax.grad(loss, argnums=(0, 1)))(color, jnp.asarray(verts))
    mapped = jax.jit(jax.vmap(jax.grad(lambda c, v: loss(c[None], v[None]), argnums=(0, 1))))(
        color, jnp.asarray(verts))
    for a, b in zip(batched, mapped):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)
