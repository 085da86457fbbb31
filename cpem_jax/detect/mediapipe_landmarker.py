"""MediaPipe FaceLandmarker: a 478-point face mesh, and the 68 iBUG points taken from it.

Needs the PyPI packages `mediapipe` (its Tasks API, `mediapipe.tasks.python.vision`) and
`ai-edge-litert` (Google's TensorFlow Lite runtime), and the model bundle `face_landmarker.task`
(a zip holding `face_detector.tflite`, a short-range BlazeFace detector, and
`face_landmarks_detector.tflite`, the 478-point mesh model). `find_task` says where the bundle is
looked for; `download_task` fetches Google's published copy.

Points: 478 (u, v) per face = the 468 vertices of MediaPipe's canonical face mesh + 10 iris points
(468-472 around the iris of the subject's right eye, the eye with mesh corners 33/133, which is
on the image left in a frontal view; 473-477 the subject's left; 468 and 473 are the iris
centres). The model also predicts a relative depth per point, which is not returned.

How it runs. `detect_boxes` is the bundle's face detector through the Tasks API (FaceDetector
with `face_detector.tflite` read from the bundle). `landmarks_in_boxes` / `dense_in_boxes` run the
bundle's mesh model directly (LiteRT) on a crop around each given box, the way MediaPipe's own
graph runs it on a region of interest: an upright square of `box_scale` x the box's longer side,
resized to the model's 256 x 256 input with RGB in [0, 1]; then `refine` more times on the region
MediaPipe derives from a mesh (rotated so that the outer eye corners 33 -> 263 are level,
centred on the mesh's extent, side 1.5 x its longer side). So a box from a tracker or from ground
truth gets landmarks where the detector misses the face (MediaPipe's FaceLandmarker task always
starts from its own detector: run on crops around the ground-truth boxes of the AFLW2000-3D
sample, it found no face in 7 of the 11 images beyond 60 degrees of yaw). The model also
gives a face-presence probability (`mesh_in_boxes`); `detect` drops detector boxes whose presence
is below `min_presence` (0.5), while `landmarks_in_boxes` trusts its caller that a face is in the
box and gates on `box_min_presence` (default 0: always points, like dlib's shape predictor), since
the model's presence falls for profile views whose points are still usable (on 27 300W-LP crops
of the demo set: presence 0.001-0.01 on the three lowest, their points 7-10% of the face size from
a 3D-style reference, against 5.7% on average). On a frontal photo the result agrees with the
FaceLandmarker task to 0.34% of the face size (tests/test_detect_mediapipe.py).

Pixel convention: the mesh model's outputs are continuous coordinates of its input tensor (a
horizontal flip of the input maps x to 256 - x, measured 256.46 +- 0.10 over 59 face crops, not
255), so points map back through the crop's affine unchanged and follow the project convention of
`cpem_jax.detect.base` (pixel centres at integer + 0.5). The FaceLandmarker task (VIDEO mode
below) instead returns normalised coordinates whose product with the image size counts pixel
indices: on 59 face crops upscaled 2x and 3x by pixel repetition its points moved by +0.25 and
+0.33 px per source pixel, as index coordinates must ((f - 1) / (2 f)); 0.5 is added there.

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

Video: the `FaceLandmarker` interface is per image, so MediaPipe's VIDEO running mode (its
FaceLandmarker task follows the faces from the previous frame's mesh and runs its detector only
when it has lost them) is a separate method, `detect_video(image, timestamp_s)`, for callers that
read frames in order with increasing timestamps; `reset_video()` starts a new video. The
project's own tracker (`cpem_jax.detect.FaceTracker`) can instead follow a face through
`landmarks_in_boxes`, which works on any frame order.
"""
from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
import weakref
import zipfile
from typing import List, Optional, Tuple

import numpy as np

from cpem_jax.detect.base import N_LANDMARKS, Detections, FaceLandmarker, check_rgb_uint8
from cpem_jax.detect.crop import apply_affine, invert_affine, warp_image

_LOG = logging.getLogger(__name__)

TASK_ENV = "CPEM_FACE_LANDMARKER_TASK"
TASK_FILENAME = "face_landmarker.task"
TASK_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
            "float16/1/face_landmarker.task")
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
INSTALL_HINT = "pip install -r requirements.txt"

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


class TaskFileError(FileNotFoundError):
    """The face_landmarker.task model bundle is missing, unreadable or not the expected file."""


def _import_mediapipe():
    try:
        import mediapipe  # noqa: PLC0415 (optional dependency, imported on use)
        from mediapipe.tasks.python import vision  # noqa: PLC0415
        from mediapipe.tasks.python.core.base_options import BaseOptions  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(f"mediapipe is not installed ({error}); run `{INSTALL_HINT}`.") \
            from error
    return mediapipe, vision, BaseOptions


def _import_litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(f"ai-edge-litert is not installed ({error}); run `{INSTALL_HINT}`.") \
            from error
    return Interpreter


def mediapipe_available() -> Tuple[bool, str]:
    """(True, version) when `mediapipe` and `ai-edge-litert` import, else (False, one-line why).

    Does not load mediapipe's native library (that happens when a task is created; it needs
    libEGL.so.1 and libGLESv2.so.2).
    """
    try:
        mediapipe, _, _ = _import_mediapipe()
        _import_litert_interpreter()
    except ImportError as error:
        return False, str(error)
    return True, getattr(mediapipe, "__version__", "unknown")


def _cache_dir() -> str:
    from cpem_jax.face_model.registry import cache_dir  # noqa: PLC0415 ($CPEM_CACHE)
    return cache_dir()


def _shared_dir() -> str:
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get("CPEM_SHARED") or os.path.join(os.path.dirname(repo_root), "shared")


def task_search_paths() -> List[str]:
    """Where the bundle is looked for, in order, when neither a path nor
    $CPEM_FACE_LANDMARKER_TASK is given: the project cache ($CPEM_CACHE, default
    ~/.cache/cpem_jax), then $CPEM_SHARED/assets (CPEM_SHARED defaults to ../shared beside the
    repository)."""
    return [os.path.join(_cache_dir(), TASK_FILENAME),
            os.path.join(_shared_dir(), "assets", TASK_FILENAME)]


def file_sha256(path: str) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_task_file(path: str, sha256: Optional[str] = TASK_SHA256) -> str:
    """Raises TaskFileError unless `path` is a readable bundle with the expected sha256.

    Args:
      path: the .task file.
      sha256: expected hex digest; None accepts any bundle that holds the two models.
    Returns:
      path.
    """
    if not os.path.isfile(path):
        raise TaskFileError(f"{path!r} does not exist; set {TASK_ENV} to a {TASK_FILENAME} or "
                            f"fetch it with cpem_jax.detect.download_task().")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise TaskFileError(f"{path}: sha256 {actual} is not the expected {sha256} (a "
                                f"different or damaged {TASK_FILENAME}); pass sha256=None to "
                                f"use it anyway.")
    try:
        names = set(zipfile.ZipFile(path).namelist())
    except zipfile.BadZipFile:
        raise TaskFileError(f"{path}: not a MediaPipe model bundle (not a zip archive).") \
            from None
    missing = {"face_detector.tflite", "face_landmarks_detector.tflite"} - names
    if missing:
        raise TaskFileError(f"{path}: the bundle lacks {sorted(missing)}; is it a "
                            f"FaceLandmarker {TASK_FILENAME}?")
    return path


def find_task(path: Optional[str] = None, sha256: Optional[str] = TASK_SHA256) -> str:
    """The model bundle: `path`, else $CPEM_FACE_LANDMARKER_TASK, else `task_search_paths()`.

    Args:
      path: an explicit .task file (the function argument of every constructor).
      sha256: expected digest of the file (None: any FaceLandmarker bundle).
    Raises:
      TaskFileError: the named file is missing or wrong, or no default location has one.
    """
    explicit = path or os.environ.get(TASK_ENV)
    if explicit:
        return check_task_file(os.fspath(explicit), sha256)
    for candidate in task_search_paths():
        if os.path.isfile(candidate):
            return check_task_file(candidate, sha256)
    raise TaskFileError(f"no {TASK_FILENAME} found (looked in {', '.join(task_search_paths())}); "
                        f"set {TASK_ENV}, or download it with "
                        f"cpem_jax.detect.download_task() where there is internet.")


def download_task(destination: Optional[str] = None, url: str = TASK_URL,
                  sha256: Optional[str] = TASK_SHA256, timeout_s: float = 60.0) -> str:
    """Downloads the model bundle and checks its sha256; returns its path.

    Args:
      destination: file or folder (default: the project cache folder, the first place
        `find_task` looks).
      url: where to download from (default: Google's published float16 bundle).
      sha256: expected digest (None: not checked).
      timeout_s: network timeout in seconds.
    Raises:
      TaskFileError: the download failed (e.g. offline) or gave a file with another sha256.
        A failed download never leaves a partial file behind.
    """
    destination = os.fspath(destination or os.path.join(_cache_dir(), TASK_FILENAME))
    if os.path.isdir(destination):
        destination = os.path.join(destination, TASK_FILENAME)
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    partial = destination + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, \
                open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        if os.path.exists(partial):
            os.remove(partial)
        reason = getattr(err, "reason", err)
        raise TaskFileError(f"could not download {TASK_FILENAME} from {url} ({reason}); "
                            f"without internet, copy the file to {destination} by hand, or "
                            f"anywhere and set {TASK_ENV} to it.") from None
    if sha256 is not None and file_sha256(partial) != sha256.lower():
        actual = file_sha256(partial)
        os.remove(partial)
        raise TaskFileError(f"downloaded {url} has sha256 {actual}, not the expected {sha256}; "
                            f"the published file changed or the download was altered.")
    os.replace(partial, destination)
    return destination


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


def _to_pixels(face, width: int, height: int) -> np.ndarray:
    """One face's NormalizedLandmark list (FaceLandmarker task) -> [P, 2] float64 pixels."""
    xy = np.array([(p.x, p.y) for p in face], np.float64).reshape(-1, 2)
    # The task's normalised x * width counts pixel indices; the project's centres are at +0.5.
    return xy * np.array([width, height], np.float64) + 0.5


def _tight_boxes(points: np.ndarray) -> np.ndarray:
    """[N, P, 2] -> [N, 4] tight boxes (NaN rows stay NaN)."""
    return np.concatenate([points.min(axis=1), points.max(axis=1)], axis=-1)


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


class _MeshModel:
    """The bundle's face_landmarks_detector.tflite, run by LiteRT on square RGB crops.

    Call with a crop [S, S, 3] uint8 (S = `size`, 256) -> (points [478, 2] float64 in crop
    pixels, continuous coordinates; face-presence probability).
    """

    def __init__(self, model: bytes, num_threads: Optional[int]) -> None:
        interpreter = _import_litert_interpreter()(model_content=model, num_threads=num_threads)
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][3] != 3 \
                or inputs[0]["shape"][1] != inputs[0]["shape"][2]:
            raise ValueError(f"the mesh model's input is {[d['shape'] for d in inputs]}, not one "
                             f"[1, S, S, 3] image.")
        self.size = int(inputs[0]["shape"][1])
        self._input = inputs[0]["index"]
        self._points = self._presence = None
        for detail in interpreter.get_output_details():
            count = int(np.prod(detail["shape"]))
            if count == N_DENSE * 3:
                self._points = detail["index"]
            elif count == 1 and len(detail["shape"]) == 4:
                self._presence = detail["index"]
        if self._points is None or self._presence is None:
            raise ValueError(f"the mesh model lacks a [{N_DENSE} x 3] point output or a face "
                             f"presence output; is this the FaceLandmarker bundle with iris?")
        self._interpreter = interpreter

    def __call__(self, crop: np.ndarray) -> Tuple[np.ndarray, float]:
        tensor = (crop.astype(np.float32) * np.float32(1.0 / 255.0))[None]
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        points = self._interpreter.get_tensor(self._points).reshape(N_DENSE, 3)[:, :2]
        logit = float(self._interpreter.get_tensor(self._presence).reshape(()))
        return points.astype(np.float64), float(1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60))))


class MediaPipeLandmarker(FaceLandmarker):
    """MediaPipe face detection + the 478-point face mesh, with 68 iBUG points derived from it.

    Args:
      task_path: the face_landmarker.task bundle (None: `find_task()`: $CPEM_FACE_LANDMARKER_TASK,
        the cache folder, $CPEM_SHARED/assets).
      sha256: expected digest of the bundle (None: any FaceLandmarker bundle).
      max_faces: most faces `detect_boxes` and `detect_video` return.
      min_detection_confidence: detector score threshold of `detect_boxes`, in [0, 1].
      min_presence: face-presence threshold of `detect` on detector boxes, in [0, 1].
      box_min_presence: face-presence threshold of `landmarks_in_boxes` / `dense_in_boxes` on
        given boxes, in [0, 1] (0: always points for a finite box).
      box_scale: first crop side of `dense_in_boxes` / the given box's longer side (> 1).
      refine: further passes of the mesh model on the region derived from the previous mesh.
      num_threads: threads of the LiteRT interpreter (None: the runtime's choice).
    Raises:
      ImportError: mediapipe or ai-edge-litert is not installed (names the pip command).
      TaskFileError: the bundle is missing or not the expected file.
      OSError: mediapipe's native library does not load (it needs libEGL.so.1, libGLESv2.so.2).
      ValueError: an option out of range.

    Attributes:
      task_path: the bundle in use.
    """

    def __init__(self, task_path: Optional[str] = None, sha256: Optional[str] = TASK_SHA256,
                 max_faces: int = 4, min_detection_confidence: float = 0.5,
                 min_presence: float = 0.5, box_min_presence: float = 0.0,
                 box_scale: float = 1.5, refine: int = 1,
                 num_threads: Optional[int] = None) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}.")
        for name, value in (("min_detection_confidence", min_detection_confidence),
                            ("min_presence", min_presence),
                            ("box_min_presence", box_min_presence)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}.")
        if box_scale <= 1.0:
            raise ValueError(f"box_scale must be > 1 (a margin around the box), got {box_scale}.")
        if refine < 0:
            raise ValueError(f"refine must be >= 0, got {refine}.")
        self._mp, self._vision, self._base_options = _import_mediapipe()
        self.task_path = find_task(task_path, sha256)
        self.max_faces = int(max_faces)
        self.min_presence = float(min_presence)
        self.box_min_presence = float(box_min_presence)
        self.box_scale = float(box_scale)
        self.refine = int(refine)
        with zipfile.ZipFile(self.task_path) as bundle:
            detector_model = bundle.read("face_detector.tflite")
            mesh_model = bundle.read("face_landmarks_detector.tflite")
        self._mesh = _MeshModel(mesh_model, num_threads)
        self._tasks: list = []
        # Close the native tasks before interpreter shutdown tears their modules down.
        self._finalizer = weakref.finalize(self, _close_all, self._tasks)
        vision = self._vision
        self._detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
            base_options=self._base_options(model_asset_buffer=detector_model),
            min_detection_confidence=float(min_detection_confidence)))
        self._tasks.append(self._detector)
        self._video_landmarker = None
        self._last_timestamp_ms: Optional[int] = None

    # -- images --------------------------------------------------------------------------------

    def _mp_image(self, image: np.ndarray):
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                              data=np.ascontiguousarray(image))

    def detect_boxes(self, image: np.ndarray) -> tuple:
        """Faces in `image [H, W, 3] uint8 RGB` -> (boxes [N, 4] float32, scores [N] float32).

        Boxes are the detector's (BlazeFace) square-ish boxes, about brow-to-chin high, whole
        pixels; scores in [0, 1]. At most `max_faces`, best first.
        """
        check_rgb_uint8(image)
        result = self._detector.detect(self._mp_image(image))
        boxes, scores = [], []
        for detection in result.detections:
            b = detection.bounding_box
            boxes.append([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height])
            scores.append(detection.categories[0].score if detection.categories else np.nan)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        order = np.argsort(-np.nan_to_num(scores, nan=-1.0), kind="stable")[:self.max_faces]
        return boxes[order], scores[order]

    def _mesh_in_roi(self, image: np.ndarray, centre, side: float, angle: float) -> tuple:
        affine = roi_affine(centre, side, angle, self._mesh.size)
        crop = warp_image(image, affine, (self._mesh.size, self._mesh.size), "constant")
        points, presence = self._mesh(crop)
        return apply_affine(invert_affine(affine), points), presence

    def mesh_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> tuple:
        """All 478 points and the face-presence probability of the faces in `boxes`.

        Args:
          image: [H, W, 3] uint8 RGB.
          boxes: [N, 4] face boxes [x0, y0, x1, y1] in image pixels (any face box: a detector's,
            a tracker's, or the tight box of ground-truth landmarks).
        Returns:
          (dense [N, 478, 2] float32 image pixels, NaN rows only for a non-finite box;
          presence [N] float32 in [0, 1], NaN for a non-finite box).
        """
        check_rgb_uint8(image)
        boxes = np.asarray(boxes, np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be [N, 4], got {boxes.shape}.")
        dense = np.full((len(boxes), N_DENSE, 2), np.nan, np.float32)
        presence = np.full(len(boxes), np.nan, np.float32)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            side = self.box_scale * max(x1 - x0, y1 - y0)
            if not np.isfinite([x0, y0, x1, y1]).all() or side <= 0:
                continue
            points, p = self._mesh_in_roi(image, ((x0 + x1) / 2, (y0 + y1) / 2), side, 0.0)
            for _ in range(self.refine):
                points, p = self._mesh_in_roi(image, *roi_from_mesh(points))
            presence[i] = p
            dense[i] = points
        return dense, presence

    def dense_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """[N, 478, 2] float32 points of the faces in `boxes [N, 4]` (see `mesh_in_boxes`).

        NaN rows where the face presence is below `box_min_presence`.
        """
        dense, presence = self.mesh_in_boxes(image, boxes)
        dense[~(presence >= self.box_min_presence)] = np.nan
        return dense

    @staticmethod
    def landmarks_from_dense(dense: np.ndarray) -> np.ndarray:
        """The 68 iBUG points [..., 68, 2] of dense points [..., 478, 2] (`ibug68_from_dense`)."""
        return ibug68_from_dense(dense)

    def landmarks_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The 68 iBUG points [N, 68, 2] float32 of the faces in `boxes [N, 4]` of `image`.

        NaN rows where the face presence is below `box_min_presence` (see `mesh_in_boxes`).
        """
        return ibug68_from_dense(self.dense_in_boxes(image, boxes))

    def detect(self, image: np.ndarray) -> Detections:
        """Every face in `image [H, W, 3] uint8 RGB` with its 68 points and all 478 (`dense`).

        Detector boxes where the mesh model finds no face are left out.
        """
        check_rgb_uint8(image)
        boxes, scores = self.detect_boxes(image)
        if len(boxes) == 0:
            return Detections.empty()
        dense, presence = self.mesh_in_boxes(image, boxes)
        found = presence >= self.min_presence
        return Detections(boxes[found], ibug68_from_dense(dense[found]), scores[found],
                          dense=dense[found])

    # -- video ---------------------------------------------------------------------------------

    def detect_video(self, image: np.ndarray, timestamp_s: float) -> Detections:
        """One frame of a video, with the FaceLandmarker task in MediaPipe's VIDEO mode.

        The task follows the faces from the previous frame's mesh and runs its detector only
        when it has lost them, so frames must come in order.

        Args:
          image: [H, W, 3] uint8 RGB frame.
          timestamp_s: the frame's time in seconds; must increase by at least 1 ms per call
            until `reset_video()`.
        Returns:
          Detections with up to `max_faces` faces: boxes = tight boxes of the 468 mesh points
          (not detector boxes), landmarks [N, 68, 2], dense [N, 478, 2], scores NaN (the task
          gives no per-face score).
        """
        check_rgb_uint8(image)
        timestamp_ms = int(round(float(timestamp_s) * 1000.0))
        if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
            raise ValueError(f"video timestamps must increase: got {timestamp_ms} ms after "
                             f"{self._last_timestamp_ms} ms; call reset_video() to start a new "
                             f"video.")
        if self._video_landmarker is None:
            vision = self._vision
            self._video_landmarker = vision.FaceLandmarker.create_from_options(
                vision.FaceLandmarkerOptions(
                    base_options=self._base_options(model_asset_path=self.task_path),
                    running_mode=vision.RunningMode.VIDEO, num_faces=self.max_faces))
            self._tasks.append(self._video_landmarker)
        result = self._video_landmarker.detect_for_video(self._mp_image(image), timestamp_ms)
        self._last_timestamp_ms = timestamp_ms
        height, width = image.shape[:2]
        dense = np.array([_to_pixels(face, width, height) for face in result.face_landmarks],
                         np.float32).reshape(-1, N_DENSE, 2)
        return Detections(_tight_boxes(dense[:, :N_MESH]), ibug68_from_dense(dense),
                          np.full(len(dense), np.nan, np.float32), dense=dense)

    def reset_video(self) -> None:
        """Forgets the followed faces and the last timestamp (the next frame starts a video)."""
        if self._video_landmarker is not None:
            self._tasks.remove(self._video_landmarker)
            self._video_landmarker.close()
            self._video_landmarker = None
        self._last_timestamp_ms = None

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Releases the native MediaPipe tasks; the landmarker cannot be used afterwards."""
        self._finalizer()

    def __enter__(self) -> "MediaPipeLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close_all(tasks: list) -> None:
    """Closes MediaPipe tasks (at `close()`, garbage collection, or interpreter exit)."""
    for task in tasks:
        try:
            task.close()
        except RuntimeError as err:
            # At interpreter exit the tasks' thread pools are already shut down ("cannot schedule
            # new futures after shutdown"); the process is ending, so only make sure the task's
            # own __del__ does not call into its torn-down dispatcher again.
            _LOG.debug("closing a MediaPipe task at exit: %s", err)
            task._handle = None  # noqa: SLF001
    tasks.clear()
