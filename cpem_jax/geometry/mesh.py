"""Mesh quantities: face and vertex normals."""
import jax
import jax.numpy as jnp


def face_normals(vertices: jnp.ndarray, triangles: jnp.ndarray,
                 normalize: bool = True) -> jnp.ndarray:
    """vertices [..., V, 3], triangles [F, 3] -> normals [..., F, 3].

    Counter-clockwise triangles (seen from the front) give normals pointing to the front.
    With normalize=False the length is twice the triangle area.
    """
    a = vertices[..., triangles[:, 0], :]
    b = vertices[..., triangles[:, 1], :]
    c = vertices[..., triangles[:, 2], :]
    n = jnp.cross(b - a, c - a)
    return _safe_normalize(n) if normalize else n


def vertex_normals(vertices: jnp.ndarray, triangles: jnp.ndarray) -> jnp.ndarray:
    """Area-weighted vertex normals: vertices [..., V, 3], triangles [F, 3] -> [..., V, 3].

    Vertices used by no triangle get a zero normal (never NaN).
    """
    n_vertices = vertices.shape[-2]
    fn = face_normals(vertices, triangles, normalize=False)  # [..., F, 3]
    fn = jnp.moveaxis(fn, -2, 0)  # [F, ..., 3]
    acc = jnp.zeros((n_vertices,) + fn.shape[1:], fn.dtype)
    for corner in range(3):
        acc = acc.at[triangles[:, corner]].add(fn)
    return _safe_normalize(jnp.moveaxis(acc, 0, -2))


def _safe_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
    """Normalises the last axis; zero vectors stay zero with finite gradients."""
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    safe_sq = jnp.where(sq > eps, sq, 1.0)
    return jnp.where(sq > eps, x * jax.lax.rsqrt(safe_sq), 0.0)
