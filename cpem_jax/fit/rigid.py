"""The head pose of each frame before any shape is fitted: PnP of the mean face on the landmarks.

Fitting identity, expression and pose jointly from zero rotation lets the identity deform to
absorb a head turn (a turned head fitted as a narrow, asymmetric face, with the yaw under-
estimated). So every frame's rotation and translation start from the perspective-n-point
solution of the model's mean face (identity and expression 0) against the frame's landmarks:
SQPnP (Terzakis and Lourakis, ECCV 2020; a global solver, no initial guess) on the crop camera,
refined by Levenberg-Marquardt on the reprojection error (OpenCV's `solvePnP` and
`solvePnPRefineLM`). The landmarks are the dense points where there are any (all 478 are 3D
surface points, the far side included) or the inner 68 iBUG points 17-67 (the jaw contour of a 2D
detector follows the visible outline, which no fixed model point does).

Conventions: OpenCV's camera looks down +z with y down; the project's camera
(`cpem_jax.geometry.camera`) looks down -z with y up, so a camera-space point of OpenCV is
D x with D = diag(1, -1, -1), the rotation is R = D R_cv and the translation coefficient is
D t_cv - camera.base_translation. Pixels are the project's (centres at +0.5) on both sides.
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from cpem_jax.geometry.camera import Camera
from cpem_jax.geometry.rotation import matrix_to_euler

_FLIP = np.diag([1.0, -1.0, -1.0])
MIN_POINTS = 6
INNER_68 = np.arange(17, 68)  # The 68-point set without the jaw contour, for PnP.
# PnP uses the points that no expression unit moves by more than RIGID_MOTION_CM at weight 1 (on
# ICT: nose, forehead, temples, eye corners, upper cheeks; of the 68: the nose bridge and the eye
# corners and lower lids). A model with fewer than RIGID_MIN_POINTS such points gives PnP
# nothing rigid to stand on: its frames start at zero rotation and translation.
RIGID_MOTION_CM = 0.3
RIGID_MIN_POINTS = 12


def rigid_points(expression_basis: np.ndarray, candidates: np.ndarray) -> Optional[np.ndarray]:
    """The points of `candidates` that expressions barely move (see RIGID_MOTION_CM).

    Args:
      expression_basis: [P, 3, K] expression deltas of the points.
      candidates: [C] int indices into P.
    Returns:
      sorted int64 indices, or None when fewer than RIGID_MIN_POINTS qualify.
    """
    candidates = np.asarray(candidates)
    motion = np.linalg.norm(np.asarray(expression_basis)[candidates], axis=1).max(axis=-1)
    still = candidates[motion <= RIGID_MOTION_CM]
    return np.sort(still) if len(still) >= RIGID_MIN_POINTS else None


def solve_pose(model_points: np.ndarray, image_points: np.ndarray, camera: Camera
               ) -> Tuple[np.ndarray, np.ndarray]:
    """The rigid pose putting `model_points` onto `image_points` through `camera`.

    Args:
      model_points: [P, 3] model-space points, cm.
      image_points: [P, 2] pixels of the camera's image; rows with a NaN are left out.
    Returns:
      (rotation [3] (pitch, yaw, roll) radians, translation [3] cm) as the fit's coefficients
      (translation added to the camera's rest position); zeros when fewer than MIN_POINTS
      points are finite or the solver fails.
    """
    return _solve_pose(np.asarray(model_points, np.float64), image_points, _intrinsics(camera))


def _intrinsics(camera: Camera) -> Tuple[np.ndarray, np.ndarray]:
    """(OpenCV's camera matrix K [3, 3], the rest translation [3]) as host float64 arrays: read
    from the camera once, not once per frame (each read of a device scalar waits for it)."""
    focal, cx, cy = (float(v) for v in (camera.focal, camera.cx, camera.cy))
    k = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    return k, np.asarray(camera.base_translation, np.float64)


def _solve_pose(model_points: np.ndarray, image_points: np.ndarray, intrinsics
                ) -> Tuple[np.ndarray, np.ndarray]:
    """`solve_pose` on host arrays, with `_intrinsics` of the camera (numpy and OpenCV only)."""
    k, base_translation = intrinsics
    image_points = np.asarray(image_points, np.float64)
    ok = np.isfinite(image_points).all(axis=1) & np.isfinite(model_points).all(axis=1)
    if ok.sum() < MIN_POINTS:
        return np.zeros(3, np.float32), np.zeros(3, np.float32)
    obj, img = model_points[ok], image_points[ok]
    try:
        found, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
        if found:
            rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, None, rvec, tvec)
    except cv2.error:
        found = False
    if not found or not np.isfinite(rvec).all() or not np.isfinite(tvec).all() \
            or float(np.ravel(tvec)[2]) <= 0:
        return np.zeros(3, np.float32), np.zeros(3, np.float32)
    rotation = _FLIP @ cv2.Rodrigues(rvec)[0]
    translation = _FLIP @ tvec.reshape(3) - base_translation
    angles = matrix_to_euler(rotation, xp=np).astype(np.float32)
    return angles, translation.astype(np.float32)


def solve_poses(model_points: np.ndarray, image_points: np.ndarray, camera: Camera
                ) -> Tuple[np.ndarray, np.ndarray]:
    """`solve_pose` per frame: model_points [P, 3], image_points [N, P, 2] -> (rotation [N, 3],
    translation [N, 3]) float32."""
    intrinsics = _intrinsics(camera)
    model_points = np.asarray(model_points, np.float64)
    poses = [_solve_pose(model_points, frame, intrinsics) for frame in np.asarray(image_points)]
    if not poses:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    rotation, translation = zip(*poses)
    return np.stack(rotation), np.stack(translation)


def pose_keyframes(rotation: np.ndarray, count: int, near_frontal_deg: float = 30.0
                   ) -> np.ndarray:
    """Up to `count` frames for the identity, chosen by pose and spread over time.

    The frames whose turn (|yaw| + |pitch| / 2, degrees) is within `near_frontal_deg`, or, where
    fewer than `count` are, the `count` least turned frames, are the candidates; `count` of them
    are taken evenly over their time order. A profile-only video still gets its least turned
    frames, a mostly frontal one its frontal frames.

    Args:
      rotation: [N, 3] (pitch, yaw, roll) radians per frame.
      count: how many keyframes at most.
    Returns:
      [min(count, N)] int64 sorted frame indices.
    """
    rotation = np.asarray(rotation, np.float64).reshape(-1, 3)
    n = len(rotation)
    count = min(int(count), n)
    turn = np.abs(np.degrees(rotation[:, 1])) + 0.5 * np.abs(np.degrees(rotation[:, 0]))
    candidates = np.flatnonzero(turn <= near_frontal_deg)
    if len(candidates) < count:
        candidates = np.sort(np.argsort(turn, kind="stable")[:count])
    picks = np.unique(np.linspace(0, len(candidates) - 1, count).round().astype(int))
    return candidates[picks].astype(np.int64)


def rest_keyframes(expression: np.ndarray, pool: np.ndarray, count: int) -> np.ndarray:
    """The `count` frames of `pool` whose face rests most: those with the smallest sum of
    |expression weight| (ties: the earlier frame).

    Args:
      expression: [C, K] expression weights fitted on the C frames of `pool`.
      pool: [C] frame indices.
      count: how many frames.
    Returns:
      [min(count, C)] int64 sorted frame indices.
    """
    effort = np.abs(np.asarray(expression, np.float64)).sum(axis=-1)
    order = np.argsort(effort, kind="stable")[:int(count)]
    return np.sort(np.asarray(pool, np.int64)[order])
