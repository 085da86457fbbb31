"""MediaPipe's face mesh: its point numbering, the 68 iBUG points taken from it, its canonical
shape, the pairing of its points under a horizontal flip (`mirror_permutation`), and the region
of interest MediaPipe derives from a mesh.

Points: 478 (u, v) per face = the 468 vertices of MediaPipe's canonical face mesh + 10 iris points
(468-472 around the iris of the subject's right eye, the eye with mesh corners 33/133, which is
on the image left in a frontal view; 473-477 the subject's left; 468 and 473 are the iris
centres). The model also predicts a relative depth per point, which is not returned.

The 68 iBUG points (`IBUG68_FROM_MESH`): each iBUG point is one fixed mesh vertex. The vertices
were chosen on 194 face crops of the demo training set (VoxCeleb2 and 300W-LP frames) as the
vertex whose position, averaged over the crops and normalised by the face size, lies closest to
two 68-point references at once: a 3D-style landmark network (points on the 3D face, the
convention of 300W-LP and AFLW2000-3D) and dlib's 2D predictor, choosing left/right points as
mirror pairs of the mesh so that the table is symmetric. The jaw uses vertices of the face oval
chosen against the 3D-style reference alone (dlib's jaw follows the visible outline, which no
fixed vertex can), and the upper-lip peaks (iBUG 50, 52) use the outer-lip vertices 37/267. The
eyes' outer corners (36, 45) are the mesh's corners 33/263; their inner corners (39, 42) came out
as 173/398, upper-lid vertices by the inner corner, closer to both references than the mesh's
inner corners 133/362. Mean
distance of the chosen vertices to the references on those crops, in % of sqrt(w * h) of the
reference's box: 3.2 (3D-style) and 3.3 (dlib) over all 68 points; the jaw is the loosest
(2.4-7.7 per point against the 3D-style reference), brows, eyes, nose and mouth 2.5 and 2.1 on
average. Fixed vertices do not slide along the visible outline with the head turn, so on profile
faces the jaw points follow the 3D face rather than its silhouette.

Region of interest (`roi_from_mesh`, `roi_affine`): the rotated square the mesh model is run on
next, as MediaPipe's face graph derives it from a mesh (rotated so that the outer eye corners
33 -> 263 are level, centred on the mesh's extent, side 1.5 x its longer side).
"""
from __future__ import annotations

import zipfile
from typing import Optional, Tuple

import numpy as np

from cpem_jax.detect.base import N_LANDMARKS
from cpem_jax.detect.mediapipe_task import TASK_SHA256, TaskFileError, find_task

N_DENSE = 478
N_MESH = 468
# Iris points: centre first, then four points on the iris outline.
IRIS_RIGHT = tuple(range(468, 473))   # the subject's right eye (image left in a frontal view)
IRIS_LEFT = tuple(range(473, 478))

# iBUG 68 point k = mesh vertex IBUG68_FROM_MESH[k] (see the module docstring for the choice).
IBUG68_FROM_MESH = np.array([
    # Jaw 0-16, from the subject's right (image left) over the chin (8) to the subject's left.
    127, 234, 93, 132, 172, 136, 150, 176, 152, 400, 379, 365, 397, 361, 323, 454, 356,
    # Right brow 17-21 (outer to inner), left brow 22-26 (inner to outer).
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # Nose bridge 27-30 (top to tip), lower nose 31-35 (right wing, centre 33, left wing).
    168, 197, 5, 4, 240, 97, 2, 326, 460,
    # Right eye 36-41: outer corner, upper lid x2, inner corner, lower lid x2.
    33, 160, 158, 173, 153, 144,
    # Left eye 42-47: inner corner, upper lid x2, outer corner, lower lid x2.
    398, 385, 387, 263, 373, 380,
    # Outer lip 48-59: right corner, upper lip to the left corner (54), lower lip back.
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    # Inner lip 60-67: right corner, upper inner lip, left corner (64), lower inner lip.
    78, 81, 13, 311, 308, 402, 14, 178,
], dtype=np.int64)
assert IBUG68_FROM_MESH.shape == (N_LANDMARKS,)


def ibug68_from_dense(dense: np.ndarray) -> np.ndarray:
    """The 68 iBUG points of MediaPipe points: [..., 478 (or 468), 2] -> [..., 68, 2]."""
    dense = np.asarray(dense)
    if dense.ndim < 2 or dense.shape[-2] not in (N_MESH, N_DENSE) or dense.shape[-1] != 2:
        raise ValueError(f"dense points must be [..., 478, 2] (or 468), got {dense.shape}.")
    return dense[..., IBUG68_FROM_MESH, :]


# The canonical face mesh inside the bundle: `geometry_pipeline_metadata_landmarks.binarypb`, a
# serialised `GeometryPipelineMetadata` protocol buffer (MediaPipe's
# modules/face_geometry/protos/geometry_pipeline_metadata.proto and mesh_3d.proto): field 1
# `canonical_mesh` (Mesh3d: 1 vertex_type, 2 primitive_type, 3 vertex_buffer float x, y, z, u, v
# per vertex, 4 index_buffer uint32 triangles), field 2 the Procrustes landmark basis.
GEOMETRY_METADATA = "geometry_pipeline_metadata_landmarks.binarypb"
_VERTEX_FLOATS = 5  # VERTEX_PT: position x, y, z and texture u, v.


def _varint(buffer: bytes, at: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _proto_fields(buffer: bytes):
    """Yields (field number, wire type, value) of one protocol-buffer message (wire format)."""
    at = 0
    while at < len(buffer):
        key, at = _varint(buffer, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(buffer, at)
        elif wire == 1:
            value, at = buffer[at:at + 8], at + 8
        elif wire == 5:
            value, at = buffer[at:at + 4], at + 4
        elif wire == 2:
            length, at = _varint(buffer, at)
            value, at = buffer[at:at + length], at + length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def canonical_face_mesh(task_path: Optional[str] = None,
                        sha256: Optional[str] = TASK_SHA256) -> Tuple[np.ndarray, np.ndarray]:
    """MediaPipe's canonical face mesh, as shipped in the bundle's geometry metadata.

    The mean face of the 468-point mesh model, in centimetres (+x the subject's left, +y up, +z
    toward the viewer: the project's model axes), vertex i being mesh point i.

    Args:
      task_path: the face_landmarker.task bundle (None: `find_task()`).
      sha256: expected digest of the bundle (None: any FaceLandmarker bundle).
    Returns:
      (vertices [468, 3] float64 cm, triangles [T, 3] int64 vertex ids).
    Raises:
      TaskFileError: the bundle is missing, or its metadata is not a 468-vertex triangle mesh.
    """
    import struct  # noqa: PLC0415

    path = find_task(task_path, sha256)
    try:
        with zipfile.ZipFile(path) as bundle:
            metadata = bundle.read(GEOMETRY_METADATA)
        mesh = next(v for n, w, v in _proto_fields(metadata) if n == 1 and w == 2)
        floats, indices = [], []
        for number, wire, value in _proto_fields(mesh):
            if number == 3:
                floats.extend(struct.unpack("<f", value) if wire == 5
                              else np.frombuffer(value, "<f4").tolist())
            elif number == 4:
                if wire == 0:
                    indices.append(value)
                else:  # Packed.
                    at = 0
                    while at < len(value):
                        index, at = _varint(value, at)
                        indices.append(index)
    except (KeyError, StopIteration, ValueError, struct.error) as err:
        raise TaskFileError(f"{path}: no readable canonical face mesh in {GEOMETRY_METADATA} "
                            f"({err!r}); is it a FaceLandmarker bundle?") from None
    vertices = np.asarray(floats, np.float64)
    triangles = np.asarray(indices, np.int64)
    if vertices.size != N_MESH * _VERTEX_FLOATS or triangles.size % 3 \
            or triangles.min(initial=0) < 0 or triangles.max(initial=0) >= N_MESH:
        raise TaskFileError(f"{path}: the canonical mesh has {vertices.size} vertex floats and "
                            f"{triangles.size} indices, not {N_MESH} x {_VERTEX_FLOATS} floats and "
                            f"triangles over them.")
    return vertices.reshape(N_MESH, _VERTEX_FLOATS)[:, :3].copy(), triangles.reshape(-1, 3)


# The iris points under a horizontal flip: a flipped right iris is the left one, its centre the
# left centre, its +x point (toward the subject's left) the left iris's -x point and its +y / -y
# points the left's +y / -y (each iris in `IRIS_RIGHT` / `IRIS_LEFT`: centre, +x, +y, -x, -y, so
# slot k goes to slot _IRIS_SLOT_MIRROR[k]). Checked on a frontal photo: each flipped prediction
# lands within 0.4-0.8 px (of a 256 px crop) of its partner.
_IRIS_SLOT_MIRROR = (0, 3, 2, 1, 4)
_IRIS_MIRROR = tuple(IRIS_LEFT[k] for k in _IRIS_SLOT_MIRROR) + tuple(
    IRIS_RIGHT[k] for k in _IRIS_SLOT_MIRROR)


def mirror_permutation(task_path: Optional[str] = None,
                       sha256: Optional[str] = TASK_SHA256) -> np.ndarray:
    """[478] int64 `perm`: point i of a face's horizontal mirror image is point `perm[i]` of
    the face (the subject's left and right swapped; an involution).

    The 468 mesh points pair off by mirroring MediaPipe's canonical mesh (`canonical_face_mesh`,
    exactly left-right symmetric: each mirrored vertex falls on a vertex; 28 midline vertices
    map to themselves); the iris points by `_IRIS_MIRROR`.

    Raises:
      TaskFileError: the bundle's canonical mesh is missing or not left-right symmetric.
    """
    vertices, _ = canonical_face_mesh(task_path, sha256)
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distance = np.linalg.norm(mirrored[:, None] - vertices[None], axis=-1)
    mesh = np.argmin(distance, axis=1)
    perm = np.concatenate([mesh, np.asarray(_IRIS_MIRROR)]).astype(np.int64)
    if distance[np.arange(N_MESH), mesh].max() > 1e-3 or np.any(perm[perm] != np.arange(N_DENSE)):
        raise TaskFileError(f"{find_task(task_path, sha256)}: the canonical mesh is not "
                            f"left-right symmetric; is it a FaceLandmarker bundle?")
    return perm


# Region of interest from a mesh, as MediaPipe's face graph derives it: side = 1.5 x the longer
# side of the mesh extent, rotated so that the outer eye corners (33 -> 263) are level.
ROI_SCALE = 1.5
_EYE_OUTER = (33, 263)


def roi_affine(centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """[2, 3] float64 map from image pixels to a `size` x `size` crop of a rotated square.

    Args:
      centre: [2] square centre in image pixels.
      side: square side in image pixels.
      angle: rotation of the square in radians (image axes, v down); the crop shows the image
        turned by -angle, so a line at `angle` in the image is level in the crop.
      size: crop side in pixels.
    """
    k = size / float(side)
    c, s = np.cos(angle), np.sin(angle)
    linear = k * np.array([[c, s], [-s, c]])
    shift = size / 2.0 - linear @ np.asarray(centre, np.float64)
    return np.concatenate([linear, shift[:, None]], axis=1)


def roi_from_mesh(points: np.ndarray) -> tuple:
    """MediaPipe's region of interest for a mesh: points [478 or 468, 2] -> (centre [2], side,
    angle): angle of the eye-corner line 33 -> 263, extent taken in the rotated frame."""
    mesh = np.asarray(points, np.float64)[:N_MESH]
    d = mesh[_EYE_OUTER[1]] - mesh[_EYE_OUTER[0]]
    angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])          # image -> level frame
    level = mesh @ rot.T
    lo, hi = level.min(axis=0), level.max(axis=0)
    centre = rot.T @ ((lo + hi) / 2)
    return centre, ROI_SCALE * float((hi - lo).max()), angle


# Two regions agree (`regions_agree`) within these: angle 5 degrees, centre and side 5 % of the
# side.
STEADY_ANGLE = float(np.deg2rad(5.0))
STEADY_FRACTION = 0.05


def regions_agree(roi: tuple, following: tuple) -> bool:
    """Whether two regions (centre [2], side, angle radians; `roi_from_mesh`) agree to
    `STEADY_ANGLE` and `STEADY_FRACTION` of the second's side: the refinement of a mesh stops
    once the region derived from a pass's mesh agrees with the region that pass ran on."""
    turn = abs(np.angle(np.exp(1j * (following[2] - roi[2]))))
    side = following[1]
    return bool(turn <= STEADY_ANGLE
                and np.hypot(*np.subtract(following[0], roi[0])) <= STEADY_FRACTION * side
                and abs(side - roi[1]) <= STEADY_FRACTION * side)
