"""interpolate: gradients (check_grads), perspective correctness, shared vs batched attributes."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from cpem_jax.render.interpolate import interpolate
from cpem_jax.render.rasterize import rasterize

# Two triangles of a quad, pixel centres kept well away from the edges so that small vertex
# perturbations (the finite differences of check_grads) do not change which triangle a pixel sees.
VERTS = np.array([[[2.15, 1.9, 4.0], [9.8, 2.3, 5.0], [2.4, 9.85, 3.0], [10.3, 10.1, 6.0]]],
                 np.float32)
TRIANGLES = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
SIZE = (12, 12)


def test_check_grads_wrt_attributes_and_positions():
    rng = np.random.default_rng(0)
    attrs = jnp.asarray(rng.uniform(0, 1, (1, 4, 2)), jnp.float32)
    weights = jnp.asarray(rng.uniform(0, 1, SIZE + (2,)), jnp.float32)
    tri_id = np.asarray(rasterize(VERTS, TRIANGLES, SIZE).tri_id)

    @jax.jit
    def image_loss(attributes, verts):
        frags = rasterize(verts, TRIANGLES, SIZE)
        return jnp.sum(interpolate(attributes, frags, TRIANGLES)[0] * weights)

    check_grads(image_loss, (attrs, jnp.asarray(VERTS)), order=1, modes=["rev"], eps=1e-2,
                atol=2e-2, rtol=2e-2)
    # The perturbations above must not have changed visibility (else the check is meaningless).
    moved = np.asarray(rasterize(VERTS + 1e-2, TRIANGLES, SIZE).tri_id)
    np.testing.assert_array_equal(moved, tri_id)
    grad_pos = jax.grad(image_loss, argnums=1)(attrs, jnp.asarray(VERTS))
    assert np.all(np.abs(np.asarray(grad_pos)[0, :, :2]) > 0)


def test_interpolation_is_perspective_correct():
    """A camera-space coordinate, interpolated, equals the 3D point seen through the pixel."""
    focal, cx, cy = 20.0, 6.0, 6.0
    points = np.array([[-0.4, -0.5, 2.0], [0.5, -0.3, 4.0], [-0.3, 0.6, 3.0]], np.float64)
    uv = np.stack([cx + focal * points[:, 0] / points[:, 2],
                   cy + focal * points[:, 1] / points[:, 2]], -1)
    verts = np.concatenate([uv, points[:, 2:]], -1)[None].astype(np.float32)
    tri = np.array([[0, 1, 2]], np.int32)
    frags = rasterize(verts, tri, SIZE)
    xyz = np.asarray(interpolate(points.astype(np.float32), frags, tri))[0]
    mask = np.asarray(frags.mask)[0]
    assert mask.sum() > 10
    ys, xs = np.nonzero(mask)
    depth = np.asarray(frags.depth)[0][mask]
    np.testing.assert_allclose(xyz[mask][:, 2], depth, rtol=1e-5)
    np.testing.assert_allclose(xyz[mask][:, 0], (xs + 0.5 - cx) * depth / focal, atol=1e-5)
    np.testing.assert_allclose(xyz[mask][:, 1], (ys + 0.5 - cy) * depth / focal, atol=1e-5)
    # And the points lie on the triangle's plane.
    normal = np.cross(points[1] - points[0], points[2] - points[0])
    np.testing.assert_allclose((xyz[mask] - points[0]) @ normal, 0.0, atol=1e-5)


def test_shared_and_batched_attributes_agree_and_background_is_zero():
    verts = np.concatenate([VERTS, VERTS + np.array([1.0, 0.5, 0.0], np.float32)])
    frags = rasterize(verts, TRIANGLES, SIZE)
    attrs = np.random.default_rng(1).uniform(size=(4, 3)).astype(np.float32)
    shared = np.asarray(interpolate(attrs, frags, TRIANGLES))
    batched = np.asarray(interpolate(np.stack([attrs, attrs]), frags, TRIANGLES))
    np.testing.assert_allclose(shared, batched, atol=1e-6)
    assert np.all(shared[~np.asarray(frags.mask)] == 0)
    assert np.all(np.isfinite(np.asarray(jax.grad(
        lambda a: jnp.sum(interpolate(a, frags, TRIANGLES)))(jnp.asarray(attrs)))))
