"""Euler angles to rotation matrices.

Convention: angles = (pitch, yaw, roll) in radians, rotations about the model's x (right), y (up)
and z (toward the viewer) axes. The matrix is R = Rz(roll) @ Ry(yaw) @ Rx(pitch), applied to
column vectors (p' = R p): pitch first, then yaw, then roll, all about fixed (extrinsic) axes.
Signs (checked in tests/test_geometry.py): positive pitch turns the nose down (the face looks
down), positive yaw turns the nose toward +x (the subject's left, the image right in a frontal
view), positive roll tilts the top of the head toward -x (the subject's right).
"""
import jax.numpy as jnp


def _axis_rotation(c, s, axis: int, xp=jnp):
    """Rotation by an angle (given as cos c, sin s [...]) about one axis -> [..., 3, 3]."""
    one = xp.ones_like(c)
    zero = xp.zeros_like(c)
    if axis == 0:
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == 1:
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    else:
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    return xp.stack([xp.stack(r, axis=-1) for r in rows], axis=-2)


def euler_to_matrix(angles, xp=jnp):
    """angles [..., 3] (pitch, yaw, roll) radians -> R [..., 3, 3] = Rz(roll) Ry(yaw) Rx(pitch).

    `xp=numpy` evaluates the same formula in numpy (e.g. float64 for evaluation metrics).
    """
    c, s = xp.cos(angles), xp.sin(angles)
    rx = _axis_rotation(c[..., 0], s[..., 0], 0, xp)
    ry = _axis_rotation(c[..., 1], s[..., 1], 1, xp)
    rz = _axis_rotation(c[..., 2], s[..., 2], 2, xp)
    return rz @ ry @ rx


def matrix_to_euler(matrix: jnp.ndarray, xp=jnp) -> jnp.ndarray:
    """R [..., 3, 3] -> angles [..., 3] (pitch, yaw, roll), the inverse of `euler_to_matrix`.

    Exact for |yaw| < pi/2 (away from gimbal lock). `xp=numpy` evaluates it in numpy (host
    code that must not dispatch device operations one by one).
    """
    pitch = xp.arctan2(matrix[..., 2, 1], matrix[..., 2, 2])
    yaw = xp.arcsin(xp.clip(-matrix[..., 2, 0], -1.0, 1.0))
    roll = xp.arctan2(matrix[..., 1, 0], matrix[..., 0, 0])
    return xp.stack([pitch, yaw, roll], axis=-1)
