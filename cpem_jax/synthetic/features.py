"""What a synthetic face shows besides smooth skin: eyeballs and a mouth behind the mesh's
openings, and darker brows, lash lines and lips.

ICT's narrow face area has holes where the eyes and the mouth interior are, so a plain render
shows the background through them, and its smooth albedo has no brows or lip colour. A
landmarker trained on real faces (MediaPipe) reads such renders poorly around the eyes, brows
and lips. The features here are drawn from MediaPipe's 478 points on the model
(`face_model.dense_landmarks`), so they exist only for a model with that table (ICT):

- Eyeballs: per eye a sphere through ICT's eyeball (centre and limbus of the dense table, with
  the identity's modes), its iris turned by the eyeLook* units exactly as the fit's iris points
  are (`dense_landmarks.dense_points`), ray-cast per pixel, lit by the frame's SH light and
  shaded under the upper lid. They are painted into the background inside each projected lid
  ring; the face render then covers them wherever the lids are.
- Mouth: a dark interior with upper and lower teeth inside the projected inner-lip ring.
- Brows, lash lines and lips: two extra albedo modes (`feature_albedo_basis`): a darkening of
  the brows and the upper lid margins, and a redder, darker lip. Each clip draws their weights.

Everything drawn here is appearance: the ground truth (shape, expression, pose, the model's own
albedo weights) is the same with and without it, and the skin mask stays the face's coverage.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import cv2
import numpy as np

from cpem_jax.face_model import dense_landmarks as dl
from cpem_jax.face_model.model import FaceModel
from cpem_jax.geometry.camera import Camera, project, transform
from cpem_jax.geometry.rotation import euler_to_matrix
from cpem_jax.geometry.shading import sh_basis

# MediaPipe face-mesh ids (its canonical topology), ordered along each contour.
LID_RING = ((263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
            (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7))
UPPER_LID = (LID_RING[0][:9], LID_RING[1][:9])          # Eye 0: the subject's left.
BROW_UPPER = ((300, 293, 334, 296, 336), (70, 63, 105, 66, 107))   # tail to head
BROW_LOWER = ((276, 283, 282, 295, 285), (46, 53, 52, 65, 55))
OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181,
             91, 146)
INNER_UPPER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER_LIP = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
LIMBUS_CENTRE = {0: 473, 1: 468}
LIMBUS_POINTS = {0: (474, 475, 476, 477), 1: (469, 470, 471, 472)}

IRIS_COLOURS = np.array([      # linear RGB: dark brown, brown, hazel, green, blue, grey
    (0.10, 0.05, 0.025), (0.22, 0.11, 0.05), (0.28, 0.20, 0.08),
    (0.16, 0.22, 0.12), (0.14, 0.24, 0.36), (0.26, 0.28, 0.30)], np.float32)


@dataclasses.dataclass(frozen=True)
class ClipFeatures:
    """One clip's drawn appearance of the features (colours linear RGB)."""
    iris: np.ndarray            # [3]
    sclera: np.ndarray          # [3]
    pupil_fraction: float       # pupil radius / iris radius
    mouth: np.ndarray           # [3] interior colour
    teeth: np.ndarray           # [3]
    hair: float                 # brow and lash darkening, fraction of the skin albedo removed
    lips: float                 # weight of the lip mode


def sample_features(rng: np.random.Generator) -> ClipFeatures:
    """Draws one clip's feature colours and weights."""
    iris = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.8, 1.2)
    return ClipFeatures(
        iris=iris.astype(np.float32),
        sclera=(np.array([0.80, 0.76, 0.72]) * rng.uniform(0.85, 1.05)).astype(np.float32),
        pupil_fraction=float(rng.uniform(0.3, 0.5)),
        mouth=(np.array([0.20, 0.05, 0.05]) * rng.uniform(0.6, 1.3)).astype(np.float32),
        teeth=(np.array([0.78, 0.74, 0.64]) * rng.uniform(0.8, 1.05)).astype(np.float32),
        hair=float(rng.uniform(0.35, 0.85)), lips=float(rng.uniform(0.4, 1.0)))


def _segment_distance(points: np.ndarray, polyline: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Distance of points [N, D] to a polyline [M, D], and where along it (0..M-1) the nearest
    point lies: ([N], [N])."""
    a, b = polyline[:-1], polyline[1:]                               # [M-1, D]
    ab = b - a
    t = np.einsum("nmd,md->nm", points[:, None] - a[None], ab) / np.maximum(
        np.einsum("md,md->m", ab, ab), 1e-12)
    t = np.clip(t, 0.0, 1.0)
    nearest = a[None] + t[..., None] * ab[None]
    dist = np.linalg.norm(points[:, None] - nearest, axis=-1)        # [N, M-1]
    seg = dist.argmin(axis=1)
    rows = np.arange(len(points))
    return dist[rows, seg], seg + t[rows, seg]


def _signed_distance_2d(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance of points [N, 2] to the closed polygon [M, 2], positive inside (even-odd rule)."""
    distance, _ = _segment_distance(points, np.concatenate([polygon, polygon[:1]]))
    a, b = polygon, np.roll(polygon, -1, axis=0)                      # edges a -> b, [M, 2]
    x, y = points[:, :1], points[:, 1:]                               # [N, 1]
    spans = (a[None, :, 1] > y) != (b[None, :, 1] > y)                # [N, M]
    dy = np.where(b[:, 1] == a[:, 1], 1.0, b[:, 1] - a[:, 1])
    x_cross = a[None, :, 0] + (y - a[None, :, 1]) * ((b[:, 0] - a[:, 0]) / dy)[None]
    inside = np.count_nonzero(spans & (x < x_cross), axis=1) % 2 == 1
    return np.where(inside, distance, -distance)


def _soft(distance: np.ndarray, inner: np.ndarray, fade: float) -> np.ndarray:
    """1 within `inner`, 0 beyond inner + fade, linear between."""
    return np.clip((inner + fade - distance) / fade, 0.0, 1.0)


def feature_weights(mesh_points: np.ndarray, vertices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-vertex weights of the hair (brows, lash lines) and lip modes on the mean shape.

    Args:
      mesh_points: [478, 3] MediaPipe's points on the mean shape, cm.
      vertices: [V, 3] the mean shape, cm.
    Returns:
      (hair [V], lips [V]) in [0, 1].
    """
    hair = np.zeros(len(vertices))
    for eye in (0, 1):
        upper, lower = mesh_points[list(BROW_UPPER[eye])], mesh_points[list(BROW_LOWER[eye])]
        centre = 0.5 * (upper + lower)
        half = 0.5 * np.linalg.norm(upper - lower, axis=-1)
        dist, along = _segment_distance(vertices, centre)
        width = np.interp(along, np.arange(len(half)), half)
        hair = np.maximum(hair, _soft(dist, width, 0.12))
        lid, _ = _segment_distance(vertices, mesh_points[list(UPPER_LID[eye])])
        hair = np.maximum(hair, 0.8 * _soft(lid, np.full_like(lid, 0.06), 0.08))
    ring = mesh_points[list(OUTER_LIP)]
    signed = _signed_distance_2d(vertices[:, :2], ring[:, :2])     # > 0 inside (cm)
    front = vertices[:, 2] > ring[:, 2].min() - 0.5
    lips = np.where(front, np.clip((signed + 0.08) / 0.16, 0.0, 1.0), 0.0)
    return hair, lips


def feature_albedo_basis(model: FaceModel, dense: dl.DenseLandmarks) -> np.ndarray:
    """The two extra albedo modes [V, 3, 2]: hair (weight = fraction of the mean albedo removed
    on brows and lash lines) and lips (weight 1: a redder, darker lip)."""
    mean_shape = np.asarray(model.mean_shape, np.float64)
    points = np.asarray(dl.dense_points(dense, np.zeros(model.n_identity, np.float32),
                                        np.zeros(model.n_expression, np.float32)), np.float64)
    hair, lips = feature_weights(points, mean_shape)
    albedo = np.asarray(model.albedo_mean, np.float64)
    hair_mode = -hair[:, None] * albedo
    lips_mode = lips[:, None] * albedo * np.array([-0.08, -0.42, -0.36])
    return np.stack([hair_mode, lips_mode], axis=-1).astype(np.float32)


class FeaturePainter:
    """Paints the eyeballs and the mouth of one frame into its background (numpy)."""

    def __init__(self, model: FaceModel, dense: dl.DenseLandmarks, camera: Camera, size: int):
        self.model, self.dense, self.size = model, dense, size
        scale = size / camera.width
        # The render's camera at the painted size, in Python floats for float64 numpy work.
        self.camera = Camera(focal=float(camera.focal) * scale, cx=float(camera.cx) * scale,
                             cy=float(camera.cy) * scale,
                             base_translation=np.asarray(camera.base_translation, np.float64),
                             width=size, height=size)
        v, u = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
        c = self.camera
        rays = np.stack([(u - c.cx) / c.focal, -(v - c.cy) / c.focal, -np.ones_like(u)], axis=-1)
        self.rays = rays / np.linalg.norm(rays, axis=-1, keepdims=True)   # [S, S, 3]

    def frame_points(self, identity, expression, rotation, translation):
        """One frame's dense points in camera space [478, 3] (cm), the eyeball centres [2, 3]
        (cm) and the dense points in pixels [478, 2]."""
        points = np.asarray(dl.dense_points(self.dense, identity, expression), np.float64)
        centres = np.asarray(dl.eye_centres(self.dense, identity), np.float64)
        matrix = np.asarray(euler_to_matrix(np.asarray(rotation, np.float64), xp=np), np.float64)
        shift = np.asarray(translation, np.float64)
        points, centres = (transform(p, matrix, shift, self.camera, xp=np)
                           for p in (points, centres))
        return points, centres, project(self.camera, points, xp=np)[0]

    def _polygon_mask(self, uv: np.ndarray, dilate: int = 0) -> np.ndarray:
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(mask, [np.round(uv * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
        if dilate:
            mask = cv2.dilate(mask, np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8))
        return mask.astype(bool)

    def _line_distance(self, uv: np.ndarray) -> np.ndarray:
        """Distance in pixels of every pixel to the polyline uv [M, 2]."""
        canvas = np.full((self.size, self.size), 255, np.uint8)
        cv2.polylines(canvas, [np.round(uv * 4).astype(np.int32)], False, 0, 1, cv2.LINE_8, 2)
        return cv2.distanceTransform(canvas, cv2.DIST_L2, 3)

    def paint(self, background: np.ndarray, identity, expression, rotation, translation,
              lighting: np.ndarray, look: ClipFeatures) -> np.ndarray:
        """background [S, S, 3] -> the same with eyeballs and mouth painted; the other args are
        one frame's coefficients ([K_id], [K_exp], [3] rad, [3] cm, [3, 9] SH)."""
        points, centres, uv = self.frame_points(identity, expression, rotation, translation)
        out = np.array(background, np.float32, copy=True)
        pixel_cm = self.camera.focal / max(float(-points[:, 2].mean()), 1e-3)   # pixels per cm
        for eye in (0, 1):
            self._paint_eye(out, eye, points, centres[eye], uv, lighting, look, pixel_cm)
        self._paint_mouth(out, uv, lighting, look, pixel_cm)
        return out

    def _irradiance(self, normals: np.ndarray, lighting: np.ndarray) -> np.ndarray:
        """normals [N, 3] (camera space) -> per-channel irradiance [N, 3]."""
        basis = sh_basis(np.asarray(normals, np.float64), xp=np)                # [N, 9]
        return np.clip(basis @ np.asarray(lighting, np.float64).T, 0.0, None)

    def _paint_eye(self, out, eye, points, centre, uv, lighting, look, pixel_cm):
        ring = uv[list(LID_RING[eye])]
        gate = self._polygon_mask(ring, dilate=2)
        if not gate.any():
            return
        limbus = points[LIMBUS_CENTRE[eye]]
        rim = points[list(LIMBUS_POINTS[eye])]
        radius = float(np.linalg.norm(rim - centre, axis=-1).mean())
        gaze = (limbus - centre) / max(float(np.linalg.norm(limbus - centre)), 1e-9)
        iris_angle = float(np.mean(np.arccos(np.clip(
            (rim - centre) @ gaze / radius, -1.0, 1.0))))
        rays = self.rays[gate]                                            # [N, 3]
        b = rays @ centre
        disc = b * b - (centre @ centre - radius * radius)
        hit = disc > 0.0
        t = b - np.sqrt(np.maximum(disc, 0.0))
        normal = (rays * t[:, None] - centre) / radius
        angle = np.arccos(np.clip(normal @ gaze, -1.0, 1.0))
        fuzz = 0.6 / max(pixel_cm * radius, 1e-3)      # about half a pixel, as an angle
        in_iris = np.clip((iris_angle - angle) / fuzz + 0.5, 0.0, 1.0)
        in_pupil = np.clip((look.pupil_fraction * iris_angle - angle) / fuzz + 0.5, 0.0, 1.0)
        ring_dark = 1.0 - 0.45 * np.clip((angle - 0.75 * iris_angle) / (0.25 * iris_angle),
                                         0.0, 1.0)
        iris = look.iris[None] * ring_dark[:, None]
        albedo = look.sclera[None] * (1.0 - in_iris[:, None]) + iris * in_iris[:, None]
        albedo = albedo * (1.0 - in_pupil[:, None]) + 0.015 * in_pupil[:, None]
        colour = albedo * self._irradiance(normal, lighting)
        # The upper lid and lashes shade the eyeball below them.
        lid_px = self._line_distance(uv[list(UPPER_LID[eye])])[gate]
        colour *= (0.45 + 0.55 * np.clip(lid_px / (0.25 * pixel_cm), 0.0, 1.0))[:, None]
        caruncle = np.array([0.55, 0.30, 0.28]) * self._irradiance(
            np.array([[0.0, 0.0, 1.0]]), lighting)
        colour = np.where(hit[:, None], colour, caruncle)
        region = out[gate]
        region[:] = colour
        out[gate] = region

    def _paint_mouth(self, out, uv, lighting, look, pixel_cm):
        inner = np.concatenate([uv[list(INNER_UPPER_LIP)], uv[list(INNER_LOWER_LIP[1:-1])]])
        gate = self._polygon_mask(inner, dilate=1)
        if not gate.any():
            return
        light = self._irradiance(np.array([[0.0, 0.0, 1.0]]), lighting)[0]
        edge = cv2.distanceTransform(gate.astype(np.uint8), cv2.DIST_L2, 3)[gate]
        depth_shade = 1.0 - 0.5 * np.clip(edge / (0.3 * pixel_cm), 0.0, 1.0)
        colour = look.mouth[None] * depth_shade[:, None]
        upper = self._line_distance(uv[list(INNER_UPPER_LIP)])[gate]
        lower = self._line_distance(uv[list(INNER_LOWER_LIP)])[gate]
        teeth = np.maximum(np.clip((0.35 * pixel_cm - upper) / 1.0, 0.0, 1.0),
                           np.clip((0.15 * pixel_cm - lower) / 1.0, 0.0, 1.0))
        teeth_colour = look.teeth[None] * (0.75 + 0.25 * np.clip(upper / (0.35 * pixel_cm),
                                                                  0.0, 1.0))[:, None]
        colour = colour * (1.0 - teeth[:, None]) + teeth_colour * teeth[:, None]
        out[gate] = (colour * light[None]).astype(np.float32)


def painter_for(model: FaceModel, camera: Camera, size: int) -> Optional[FeaturePainter]:
    """A painter for `model`, or None for a model without MediaPipe's table (not ICT)."""
    dense = dl.dense_landmarks_for(model)
    return None if dense is None else FeaturePainter(model, dense, camera, size)
