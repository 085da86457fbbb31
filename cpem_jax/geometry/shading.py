"""Spherical-harmonics Lambertian shading, 3 bands (9 coefficients per colour channel).

Follows the real SH basis with the Lambertian convolution constants folded in, as in Ramamoorthi
and Hanrahan (2001) and Deng et al. (2019): colour = albedo * sum_k gamma_k * H_k(n), where H_k are
the 9 basis functions scaled by pi * A_l (A_0 = 1, A_1 = 2/3, A_2 = 1/4). A light with only the DC
coefficient gamma_0 shades every normal equally: colour = albedo * gamma_0 * pi / sqrt(4 pi).
"""
import math

import jax.numpy as jnp

_A = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)  # pi * A_l per band.
_C0 = 1.0 / math.sqrt(4.0 * math.pi)
_C1 = math.sqrt(3.0 / (4.0 * math.pi))
_C2 = 3.0 * math.sqrt(5.0 / (12.0 * math.pi))
_C2_Z = 0.5 * math.sqrt(5.0 / (4.0 * math.pi))


def sh_basis(normals: jnp.ndarray, xp=jnp) -> jnp.ndarray:
    """normals [..., N, 3] unit -> irradiance basis [..., N, 9] (Lambertian constants included).

    `xp=numpy` evaluates the same formula in numpy (no tracing, any dtype).
    """
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    one = xp.ones_like(x)
    return xp.stack([
        _A[0] * _C0 * one,
        -_A[1] * _C1 * y,
        _A[1] * _C1 * z,
        -_A[1] * _C1 * x,
        _A[2] * _C2 * x * y,
        -_A[2] * _C2 * y * z,
        _A[2] * _C2_Z * (3.0 * z * z - 1.0),
        -_A[2] * _C2 * x * z,
        _A[2] * _C2 * 0.5 * (x * x - y * y),
    ], axis=-1)


def sh_shade(normals: jnp.ndarray, albedo: jnp.ndarray, lighting: jnp.ndarray) -> jnp.ndarray:
    """Lambertian SH shading.

    Args:
      normals: [..., N, 3] unit normals (in the space the lighting is expressed in).
      albedo: [..., N, 3] linear RGB.
      lighting: [..., 3, 9] SH coefficients per colour channel (R, G, B).
    Returns:
      colours [..., N, 3].
    """
    irradiance = jnp.einsum("...nk,...ck->...nc", sh_basis(normals), lighting)
    return albedo * irradiance


def ambient_lighting(level: float = 1.0, batch_shape=()) -> jnp.ndarray:
    """DC-only lighting [*batch_shape, 3, 9] that multiplies the albedo by `level` everywhere."""
    gamma0 = level / (_A[0] * _C0)
    light = jnp.zeros(tuple(batch_shape) + (3, 9), jnp.float32)
    return light.at[..., 0].set(gamma0)
