"""Tests for the differentiable dlib face-chip alignment (cpem_jax/recognition/alignment.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from cpem_jax.recognition import alignment

# Recorded from dlib 20.0.1: the 5 landmarks (dlib pixel convention) of a full_object_detection,
# and the affine map chip (column, row) -> image (x, y) that `dlib.extract_image_chip` applied
# for `get_face_chip_details(shape, 150, 0.25)`, read back from chips of coordinate-ramp images.
DLIB_LANDMARKS = np.array([[301., 179.], [263., 183.], [158., 181.], [205., 187.], [227., 255.]])
DLIB_CHIP_TO_IMAGE = np.array([[1.8894607862, -0.0029582969, 92.0658029973],
                               [0.0029582967, 1.8894607864, 93.1965414301]])


def test_fit_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2))
    angles = rng.uniform(-1, 1, size=3)
    scales = rng.uniform(0.5, 3, size=3)
    a_true = scales[:, None, None] * np.stack(
        [np.stack([np.cos(angles), -np.sin(angles)], -1),
         np.stack([np.sin(angles), np.cos(angles)], -1)], -2)
    t_true = rng.normal(size=(3, 2)) * 10
    dst = np.einsum("bij,nj->bni", a_true, src) + t_true[:, None]
    a, t = alignment.fit_similarity(jnp.asarray(src), jnp.asarray(dst))
    np.testing.assert_allclose(a, a_true, atol=1e-5)
    np.testing.assert_allclose(t, t_true, atol=1e-4)


def test_chip_geometry_matches_dlib_recording():
    lm = jnp.asarray(DLIB_LANDMARKS + alignment.PIXEL_CENTRE_OFFSET, jnp.float32)[None]
    m, t = alignment.chip_to_image(lm)
    # dlib's map in the project convention: both ends shift by half a pixel.
    np.testing.assert_allclose(m[0], DLIB_CHIP_TO_IMAGE[:, :2], atol=1e-5)
    np.testing.assert_allclose(t[0], DLIB_CHIP_TO_IMAGE[:, 2] + 0.5, atol=1e-3)


def test_chips_of_a_ramp_image_sample_the_mapped_coordinates():
    h, w = 60, 70
    v, u = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    image = jnp.asarray(np.stack([u / w, v / h, np.ones_like(u)], -1))[None]
    lm = jnp.asarray(alignment.chip_template(20) * 2.0 + np.array([-8.0, 30.0]), jnp.float32)[None]
    chips = alignment.extract_face_chips(image, lm, size=20)
    m, t = alignment.chip_to_image(lm, size=20)
    rows, cols = np.mgrid[0:20, 0:20]
    pts = np.einsum("ij,hwj->hwi", np.asarray(m[0]), np.stack([cols, rows], -1)) + np.asarray(t[0])
    inside = ((pts[..., 0] >= 0.5) & (pts[..., 0] <= w - 0.5)
              & (pts[..., 1] >= 0.5) & (pts[..., 1] <= h - 0.5))
    assert inside.mean() > 0.3 and (~inside).any()
    np.testing.assert_allclose(chips[0, ..., 0][inside], pts[..., 0][inside] / w, atol=1e-5)
    np.testing.assert_allclose(chips[0, ..., 1][inside], pts[..., 1][inside] / h, atol=1e-5)
    # Black where a neighbour falls off the image, as dlib.
    np.testing.assert_array_equal(chips[0, ..., 2][~inside], 0.0)


def test_check_grads_image_and_landmarks_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        image = jnp.asarray(rng.uniform(size=(1, 24, 24, 3)))
        lm = jnp.asarray(alignment.chip_template(12) * 1.3 + 3.1 + rng.normal(size=(5, 2)) * 0.3)
        f = jax.jit(lambda im, l: alignment.extract_face_chips(im, l, size=12))
        check_grads(f, (image, lm[None]), order=1, modes=("fwd", "rev"), eps=1e-6,
                    atol=1e-5, rtol=1e-5)


def test_landmarks5_from_68_and_bad_shapes():
    lm68 = jnp.arange(68 * 2, dtype=jnp.float32).reshape(68, 2)
    lm5 = alignment.landmarks5_from_68(lm68)
    np.testing.assert_array_equal(lm5, lm68[np.array([45, 42, 36, 39, 33])])
    with pytest.raises(ValueError, match="68, 2"):
        alignment.landmarks5_from_68(jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="landmarks5_from_68"):
        alignment.extract_face_chips(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 68, 2)))
    with pytest.raises(ValueError, match="B, H, W, 3"):
        alignment.extract_face_chips(jnp.zeros((8, 8, 3)), jnp.zeros((1, 5, 2)))


def test_halve_and_pyramid_level():
    flat = jnp.full((9, 8, 3), 0.3)
    half = alignment.halve(flat)
    assert half.shape == (5, 4, 3)
    np.testing.assert_allclose(half, 0.3, atol=1e-6)
    stripes = jnp.asarray(np.tile(np.array([0.0, 1.0]), 8)[None, :, None] * np.ones((4, 1, 1)))
    np.testing.assert_allclose(alignment.halve(stripes)[:, 1:-1], 0.5, atol=1e-6)  # no aliasing
    # Chip-to-image scales 1.5, 2.5 and 5 (rectangle sides ~225, ~375, ~750 for a 150 chip).
    m = jnp.asarray([1.5, 2.5, 5.0])[:, None, None] * jnp.eye(2)
    np.testing.assert_array_equal(alignment.pyramid_level(m, 150, 2), [0, 1, 2])
    np.testing.assert_array_equal(alignment.pyramid_level(m, 150, 0), [0, 0, 0])
