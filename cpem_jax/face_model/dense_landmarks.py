"""MediaPipe's 478 face-mesh points as fixed points of the ICT face model, and the eyes' gaze.

A dense landmark is a fixed point of the model's surface: a point on a triangle (three vertex ids
and barycentric weights) or on the segment between two neighbouring vertices of a lid or lip ring
(two ids, the third weight 0). It moves with identity and expression like the vertices it is made
of, so each point is a small linear model (`DenseLandmarks.mean`, `id_basis`, `exp_basis`).
Mesh points are points of the 3D face, the far side of the face included: they do not slide
along the visible outline (unlike dlib's jaw).

The table for ICT-FaceKit (`data/mediapipe_ict.npz`, built once by
`benchmarks/build_mediapipe_ict.py` from MediaPipe's canonical face mesh and ICT's neutral mesh,
then refined by `benchmarks/refine_mediapipe_ict.py` from fits of real video; how and with which
checks is stored in the file's `method` and `checks` entries) covers ICT's
full face area; on the narrow area the points of the forehead and temples that lie outside it
are marked invalid. Other face models (BFM) have no table: `dense_landmarks_for` returns None
and fitting falls back to the 68 iBUG landmarks.

Eyes. ICT's eyeLook* shapes deform the lids but move no iris vertex, so the ten iris points
(468-472 the subject's right eye, 473-477 the left; the limbus centre, then the limbus points
toward +x, +y, -x, -y of the eye) sit on ICT's eyeball (sphere centre and limbus from ICT's
sclera and iris meshes, with their identity modes) and turn about the eyeball centre with the
gaze units:

    left eye  yaw   = (eyeLookOut_L - eyeLookIn_L) * GAZE_YAW      (toward +x, the subject's left)
    right eye yaw   = (eyeLookIn_R - eyeLookOut_R) * GAZE_YAW
    either    pitch = (eyeLookDown_X - eyeLookUp_X) * GAZE_PITCH   (positive: looking down)
    iris point      = centre + Ry(yaw) Rx(pitch) (rest point - centre)

GAZE_YAW = 30 and GAZE_PITCH = 25 degrees at weight 1 are the ranges the Live Link export uses to
turn eyeLook* weights into eye angles (`cpem_jax.export.livelink`), so a fitted gaze comes back
out of the export as the same angles. ARKit documents no angle for weight 1.

Axes are the face model's: cm, +x the subject's left, +y up, +z toward the viewer.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import flax.struct
import jax.numpy as jnp
import numpy as np

from cpem_jax.face_model.model import FaceModel

FORMAT_VERSION = 1
DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mediapipe_ict.npz")
N_DENSE = 478
# Region of each point (the landmark loss weighs them per region, `losses.landmark`).
REGIONS = ("surface", "contour", "brows", "nose", "eyelids", "lips", "iris")
GAZE_YAW = math.radians(30.0)
GAZE_PITCH = math.radians(25.0)
EYES = ("_L", "_R")  # Eye 0 is the subject's left (+x), eye 1 the right.
GAZE_UNITS = ("eyeLookIn", "eyeLookOut", "eyeLookUp", "eyeLookDown")
IRIS_POINTS = {1: tuple(range(468, 473)), 0: tuple(range(473, 478))}


class DenseTableError(ValueError):
    """The dense correspondence file is missing, unreadable or of another format version."""


@flax.struct.dataclass
class DenseLandmarks:
    """P dense landmarks of a face model (float32 unless said otherwise).

    Attributes:
      mean: [P, 3] the points on the model's mean shape, cm.
      id_basis: [P, 3, K_id] their identity basis.
      exp_basis: [P, 3, K_exp] their expression basis (0 on the iris points: the gaze turns them).
      normals: [P, 3] unit outward normals on the mean shape (the gaze axis on the iris points).
      valid: [P] bool, False where the model has no such point (outside its face area).
      region: [P] int32 index into `region_names`.
      eye: [P] int32 0 (the subject's left eye) or 1 (right) on iris points, -1 elsewhere.
      eye_centre: [2, 3] eyeball centres; eye_centre_id: [2, 3, K_id] their identity basis.
      gaze_units: [2, 4] int32 expression indices of eyeLookIn, Out, Up, Down per eye.
      aperture_pairs: [2, 3, 2] int32 (upper lid point, lower lid point) pairs per eye, for the
        eye opening of detected points; eye_corners: [2, 2] int32 (outer, inner) corner points.
      region_names: the region of each index (static).
    """
    mean: jnp.ndarray
    id_basis: jnp.ndarray
    exp_basis: jnp.ndarray
    normals: jnp.ndarray
    valid: jnp.ndarray
    region: jnp.ndarray
    eye: jnp.ndarray
    eye_centre: jnp.ndarray
    eye_centre_id: jnp.ndarray
    gaze_units: jnp.ndarray
    aperture_pairs: jnp.ndarray
    eye_corners: jnp.ndarray
    region_names: Tuple[str, ...] = flax.struct.field(pytree_node=False, default=REGIONS)

    @property
    def n_points(self) -> int:
        return int(self.mean.shape[0])


def read_table(path: str = DATA_FILE) -> dict:
    """The correspondence file as a dict of numpy arrays (see benchmarks/build_mediapipe_ict.py).

    Raises DenseTableError when the file is missing, unreadable or of another format version.
    """
    return read_versioned_npz(path, FORMAT_VERSION, "dense correspondence",
                              "benchmarks/build_mediapipe_ict.py", DenseTableError)


def read_versioned_npz(path: str, version: int, what: str, builder: str,
                       error: type = DenseTableError) -> dict:
    """A packaged table (.npz with a `format_version`) as a dict of numpy arrays; `error` (a
    ValueError class) names what is wrong: missing, unreadable, or another version, each with
    the fix (rebuild it with the script `builder`)."""
    fix = f"rebuild it with `python {builder}`"
    if not os.path.isfile(path):
        raise error(f"{what} {path!r} does not exist; {fix}")
    try:
        with np.load(path, allow_pickle=False) as data:
            table = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise error(f"{path!r} is not a readable .npz ({err}); {fix}") from None
    found = int(table.get("format_version", -1))
    if found != version:
        raise error(f"{path!r} has format version {found}, this code reads {version}; {fix}")
    return table


def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals [V, 3] (numpy, once per model)."""
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64)
    face = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, t[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def is_ict(model: FaceModel) -> bool:
    """True for an ICT-FaceKit model (either face area), the topology the table is built on."""
    return model.name.startswith("ict-facekit") and model.n_vertices in (6706, 9409)


def dense_landmarks_for(model: FaceModel, path: str = DATA_FILE) -> Optional[DenseLandmarks]:
    """MediaPipe's 478 points on `model`, or None for a model without a table (not ICT).

    Raises DenseTableError when the model is ICT but the packaged table is unusable.
    """
    if not is_ict(model):
        return None
    table = read_table(path)
    ids = np.asarray(table["vertex_ids"], np.int64)              # [468, 3]
    weights = np.asarray(table["vertex_weights"], np.float64)    # [468, 3]
    n_vertices = model.n_vertices
    inside = np.all((ids < n_vertices) | (weights == 0), axis=1) & table["valid"].astype(bool)
    ids = np.where(ids < n_vertices, ids, 0)
    mean_shape = np.asarray(model.mean_shape, np.float64)
    gather = lambda array: np.einsum("pj,pj...->p...", weights, np.asarray(array)[ids])
    mesh_mean = gather(mean_shape)
    mesh_id = gather(model.id_basis)
    mesh_exp = gather(model.exp_basis)
    normals = gather(_vertex_normals(mean_shape, model.triangles))
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)

    k_id = model.n_identity
    def identity_rows(array):  # [..., 3, K_table] -> [..., 3, K_id], zero beyond the table.
        out = np.zeros(array.shape[:-1] + (k_id,), np.float64)
        k = min(k_id, array.shape[-1])
        out[..., :k] = array[..., :k]
        return out

    iris = np.asarray(table["iris"], np.float64)                 # [10, 3]
    iris_id = identity_rows(np.asarray(table["iris_identity"]))
    centre = np.asarray(table["eye_centre"], np.float64)         # [2, 3]
    centre_id = identity_rows(np.asarray(table["eye_centre_identity"]))
    eye = np.full(N_DENSE, -1, np.int32)
    for e, points in IRIS_POINTS.items():
        eye[list(points)] = e
    iris_eye = eye[468:]
    iris_normals = iris - centre[iris_eye]
    iris_normals /= np.linalg.norm(iris_normals, axis=1, keepdims=True)
    gaze_units = gaze_unit_indices(model)
    iris_valid = np.full(10, gaze_units is not None)  # Without gaze units: no iris points.
    if gaze_units is None:
        gaze_units = np.zeros((2, 4), np.int32)
    names = tuple(str(n) for n in table["region_names"])
    as32 = lambda a: jnp.asarray(np.asarray(a, np.float32))
    return DenseLandmarks(
        mean=as32(np.concatenate([mesh_mean, iris])),
        id_basis=as32(np.concatenate([mesh_id, iris_id])),
        exp_basis=as32(np.concatenate([mesh_exp, np.zeros((10,) + mesh_exp.shape[1:])])),
        normals=as32(np.concatenate([normals, iris_normals])),
        valid=jnp.asarray(np.concatenate([inside, iris_valid])),
        region=jnp.asarray(np.asarray(table["region"], np.int32)),
        eye=jnp.asarray(eye), eye_centre=as32(centre), eye_centre_id=as32(centre_id),
        gaze_units=jnp.asarray(gaze_units),
        aperture_pairs=jnp.asarray(np.asarray(table["eye_aperture_pairs"], np.int32)),
        eye_corners=jnp.asarray(np.asarray(table["eye_corners"], np.int32)),
        region_names=names)


def gaze_unit_indices(model: FaceModel) -> Optional[np.ndarray]:
    """[2, 4] int32 eyeLookIn/Out/Up/Down indices of the subject's left and right eye, or None
    where the model lacks any of the eight units."""
    names = model.expression_names
    wanted = [[unit + side for unit in GAZE_UNITS] for side in EYES]
    if any(name not in names for row in wanted for name in row):
        return None
    return np.array([[names.index(name) for name in row] for row in wanted], np.int32)


def gaze_angles(dense: DenseLandmarks, expression: jnp.ndarray) -> jnp.ndarray:
    """expression [..., K_exp] -> (yaw, pitch) per eye [..., 2, 2] radians (module docstring)."""
    look = expression[..., dense.gaze_units]                      # [..., 2, 4] in/out/up/down
    side = jnp.array([1.0, -1.0], jnp.float32)                    # left eye: out is +x
    yaw = (look[..., 1] - look[..., 0]) * side * GAZE_YAW
    pitch = (look[..., 3] - look[..., 2]) * GAZE_PITCH
    return jnp.stack([yaw, pitch], axis=-1)


def _gaze_rotation(angles: jnp.ndarray) -> jnp.ndarray:
    """(yaw, pitch) [..., 2] -> Ry(yaw) Rx(pitch) [..., 3, 3]."""
    cy, sy = jnp.cos(angles[..., 0]), jnp.sin(angles[..., 0])
    cp, sp = jnp.cos(angles[..., 1]), jnp.sin(angles[..., 1])
    zero = jnp.zeros_like(cy)
    # Ry @ Rx written out: Ry = [[cy,0,sy],[0,1,0],[-sy,0,cy]], Rx = [[1,0,0],[0,cp,-sp],[0,sp,cp]].
    rows = ((cy, sy * sp, sy * cp), (zero, cp, -sp), (-sy, cy * sp, cy * cp))
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def eye_centres(dense: DenseLandmarks, identity: jnp.ndarray) -> jnp.ndarray:
    """The eyeball centres in model space: identity [..., K_id] -> [..., 2, 3] (left, right)."""
    return dense.eye_centre + jnp.einsum("eck,...k->...ec", dense.eye_centre_id, identity)


def dense_points(dense: DenseLandmarks, identity: jnp.ndarray,
                 expression: jnp.ndarray) -> jnp.ndarray:
    """The P points in model space: identity [..., K_id], expression [..., K_exp] -> [..., P, 3].

    Surface points are linear in the coefficients; iris points turn about their eyeball centre
    by the gaze (module docstring).
    """
    points = (dense.mean
              + jnp.einsum("pck,...k->...pc", dense.id_basis, identity)
              + jnp.einsum("pck,...k->...pc", dense.exp_basis, expression))
    centres = eye_centres(dense, identity)
    rotation = _gaze_rotation(gaze_angles(dense, expression))       # [..., 2, 3, 3]
    eye = jnp.maximum(dense.eye, 0)
    centre_p = jnp.take(centres, eye, axis=-2)                      # [..., P, 3]
    rotation_p = jnp.take(rotation, eye, axis=-3)                   # [..., P, 3, 3]
    turned = centre_p + jnp.einsum("...pij,...pj->...pi", rotation_p, points - centre_p)
    return jnp.where((dense.eye >= 0)[:, None], turned, points)


def eye_openness(dense: DenseLandmarks, points, xp=np):
    """How open each eye is in points: points [..., P, 2] -> [..., 2] (left, right).

    The mean distance of the three upper/lower lid pairs over the corner-to-corner distance
    (about 0.25-0.35 for an open eye, under 0.1 for a closed one); NaN where points are NaN.
    `xp=numpy` (detected points, float64) or `jax.numpy` (inside a traced objective).
    """
    points = xp.asarray(points, np.float64 if xp is np else None)
    pairs = xp.asarray(dense.aperture_pairs)
    corners = xp.asarray(dense.eye_corners)
    gap = xp.linalg.norm(points[..., pairs[:, :, 0], :] - points[..., pairs[:, :, 1], :],
                         axis=-1).mean(axis=-1)
    width = xp.linalg.norm(points[..., corners[:, 0], :] - points[..., corners[:, 1], :], axis=-1)
    return gap / xp.maximum(width, 1e-9)
