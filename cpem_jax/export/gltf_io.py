"""glTF 2.0 data both ways (numpy <-> pygltflib): buffers, accessors, quaternions, transforms.

Writing: `BinaryBuilder` appends bufferViews and accessors to a `pygltflib.GLTF2`, all in one new
buffer (the GLB binary chunk, or an embedded data: URI when the file already has buffers).

Reading: `AccessorReader` decodes accessors into numpy arrays, honouring byte stride and byte
offset, from a .glb's binary chunk, a data: URI or an external .bin beside the file; sparse
accessors (common for morph targets) and normalized integer components are decoded.
`check_buffers` verifies, before anything is read or written, that every buffer exists and holds
the bytes its bufferViews need.

Transforms: `node_matrix` (a node's local matrix or translation/rotation/scale) and
`world_matrices` (parents included). Quaternions are (x, y, z, w), as glTF stores them; head
rotations use R = Rz(roll) Ry(yaw) Rx(pitch) as in cpem_jax.geometry.rotation.

Everything here raises `GltfError` on inconsistent data; callers add the file name.
"""
from __future__ import annotations

import base64
import os
import urllib.parse
from typing import Dict, List, Optional, Tuple

import numpy as np
import pygltflib

# glTF componentType -> numpy dtype (little-endian in the file).
COMPONENT_DTYPES = {pygltflib.BYTE: np.int8, pygltflib.UNSIGNED_BYTE: np.uint8,
                    pygltflib.SHORT: np.int16, pygltflib.UNSIGNED_SHORT: np.uint16,
                    pygltflib.UNSIGNED_INT: np.uint32, pygltflib.FLOAT: np.float32}
_COMPONENT_TYPES = {np.dtype(dtype): code for code, dtype in COMPONENT_DTYPES.items()}
# Accessor type -> components per element.
TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
# bufferViews start on 4-byte boundaries (required for float data).
_ALIGN = 4


class GltfError(ValueError):
    """A glTF file's buffers or accessors are missing or inconsistent."""


# ---------------------------------------------------------------- quaternions and transforms


def euler_to_quaternion(angles: np.ndarray) -> np.ndarray:
    """angles [N, 3] radians (pitch, yaw, roll) -> [N, 4] unit quaternions (x, y, z, w) of
    R = Rz(roll) Ry(yaw) Rx(pitch)."""
    angles = np.asarray(angles, np.float64)
    half = angles / 2.0
    cx, cy, cz = np.cos(half[:, 0]), np.cos(half[:, 1]), np.cos(half[:, 2])
    sx, sy, sz = np.sin(half[:, 0]), np.sin(half[:, 1]), np.sin(half[:, 2])
    # Hamilton product qz * qy * qx written out.
    x = cz * cy * sx - sz * sy * cx
    y = cz * sy * cx + sz * cy * sx
    z = sz * cy * cx - cz * sy * sx
    w = cz * cy * cx + sz * sy * sx
    return np.stack([x, y, z, w], axis=-1)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions a [..., 4] and b [..., 4] (x, y, z, w): rotate by b, then
    by a."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz], axis=-1)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions q [..., 4] (x, y, z, w; normalised here) -> rotation matrices [..., 3, 3]."""
    q = np.asarray(q, np.float64)
    x, y, z, w = np.moveaxis(q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12),
                             -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def node_matrix(node: pygltflib.Node) -> np.ndarray:
    """A node's local transform -> [4, 4] float64 (glTF stores matrices column-major)."""
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(node.rotation or [0, 0, 0, 1]) * np.asarray(
        node.scale or [1, 1, 1], np.float64)[None]
    out[:3, 3] = node.translation or [0, 0, 0]
    return out


def world_matrices(gltf: pygltflib.GLTF2) -> Dict[int, np.ndarray]:
    """Node index -> [4, 4] float64 world transform, for the nodes of the default scene (every
    root node when the file has no scene)."""
    if gltf.scenes:
        roots = gltf.scenes[gltf.scene or 0].nodes or []
    else:
        children = {c for n in gltf.nodes for c in (n.children or [])}
        roots = [i for i in range(len(gltf.nodes)) if i not in children]
    out: Dict[int, np.ndarray] = {}
    stack = [(r, np.eye(4)) for r in roots]
    while stack:
        index, parent = stack.pop()
        if index in out:  # A malformed file with a cycle: visit each node once.
            continue
        out[index] = parent @ node_matrix(gltf.nodes[index])
        stack.extend((c, out[index]) for c in gltf.nodes[index].children or [])
    return out


# ---------------------------------------------------------------- buffers


def _external_path(uri: str, folder: str) -> str:
    """The file an external buffer URI names: as written, else percent-decoded (the spec's form)."""
    path = os.path.join(folder, uri)
    decoded = os.path.join(folder, urllib.parse.unquote(uri))
    return path if os.path.isfile(path) or not os.path.isfile(decoded) else decoded


def _is_external(uri: Optional[str]) -> bool:
    return uri is not None and not uri.startswith("data:")


def _data_uri(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def buffer_bytes(gltf: pygltflib.GLTF2, index: int, folder: str) -> bytes:
    """The bytes of buffer `index`: the GLB binary chunk, a data: URI or a file in `folder`.

    Raises:
      GltfError: the buffer has no data, or its file is missing.
    """
    uri = gltf.buffers[index].uri
    if uri is None:
        blob = gltf.binary_blob()
        if blob is None:
            raise GltfError(f"buffer {index} has no data (no URI and no binary chunk)")
        return blob
    if not _is_external(uri):
        return base64.b64decode(uri.split(",", 1)[1])
    path = _external_path(uri, folder)
    if not os.path.isfile(path):
        raise GltfError(f"buffer {index}'s file {path!r} is missing; keep the .bin next to the "
                        ".gltf or export a single .glb")
    with open(path, "rb") as f:
        return f.read()


def check_buffers(gltf: pygltflib.GLTF2, folder: str) -> None:
    """Checks that every buffer exists and holds its byteLength, and every bufferView lies
    inside its buffer (external files are only sized, not read).

    Raises:
      GltfError: naming the missing file, or the buffer or view that is too short.
    """
    lengths: List[int] = []
    for index, buffer in enumerate(gltf.buffers):
        path = _external_path(buffer.uri, folder) if _is_external(buffer.uri) else None
        if path is not None and os.path.isfile(path):
            have = os.path.getsize(path)
        else:  # embedded, or a missing file (buffer_bytes says which)
            have = len(buffer_bytes(gltf, index, folder))
        if have < (buffer.byteLength or 0):
            raise GltfError(f"buffer {index} holds {have} bytes but declares {buffer.byteLength}"
                            " (the file was cut short); export or copy the avatar again")
        lengths.append(have)
    for index, view in enumerate(gltf.bufferViews):
        if not 0 <= view.buffer < len(lengths):
            raise GltfError(f"bufferView {index} names buffer {view.buffer}, but the file has "
                            f"{len(lengths)}; export the avatar again")
        end = (view.byteOffset or 0) + view.byteLength
        if end > lengths[view.buffer]:
            raise GltfError(f"bufferView {index} ends at byte {end}, past the "
                            f"{lengths[view.buffer]} bytes of buffer {view.buffer} (the file was "
                            "cut short); export or copy the avatar again")


def embed_buffers(gltf: pygltflib.GLTF2, folder: str) -> None:
    """Replaces external-file buffers by data: URIs, so saving no longer needs the files."""
    for index, buffer in enumerate(gltf.buffers):
        if _is_external(buffer.uri):
            buffer.uri = _data_uri(buffer_bytes(gltf, index, folder))


# ---------------------------------------------------------------- accessors


class AccessorReader:
    """Decodes accessors of one glTF into numpy arrays (each buffer read once).

    Args:
      gltf: the loaded file.
      folder: where its external buffers are (the .gltf's folder).
    """

    def __init__(self, gltf: pygltflib.GLTF2, folder: str):
        self.gltf = gltf
        self.folder = folder
        self._buffers: Dict[int, bytes] = {}

    def _view(self, view_index: int) -> Tuple[bytes, int, Optional[int]]:
        view = self.gltf.bufferViews[view_index]
        if view.buffer not in self._buffers:
            self._buffers[view.buffer] = buffer_bytes(self.gltf, view.buffer, self.folder)
        return self._buffers[view.buffer], view.byteOffset or 0, view.byteStride

    def _dense(self, view_index, byte_offset, dtype, width, count) -> np.ndarray:
        data, start, stride = self._view(view_index)
        item = np.dtype(dtype).itemsize * width
        stride = stride or item
        start += byte_offset or 0
        if count and start + stride * (count - 1) + item > len(data):
            raise GltfError("an accessor reads past the end of its buffer (damaged file)")
        raw = np.frombuffer(data, np.uint8, count=stride * (count - 1) + item if count else 0,
                            offset=start) if count else np.zeros(0, np.uint8)
        rows = np.lib.stride_tricks.as_strided(raw, shape=(count, item), strides=(stride, 1))
        return np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder("<")).reshape(
            count, width)

    def read(self, index: int) -> np.ndarray:
        """Accessor `index` -> [count, width] (float32 for float and normalized data, else the
        stored integer type)."""
        accessor = self.gltf.accessors[index]
        dtype = COMPONENT_DTYPES.get(accessor.componentType)
        width = TYPE_WIDTHS.get(accessor.type)
        if dtype is None or width is None:
            raise GltfError(f"accessor {index} has an unsupported layout "
                            f"({accessor.componentType}, {accessor.type})")
        if accessor.bufferView is None:
            values = np.zeros((accessor.count, width), dtype)
        else:
            values = self._dense(accessor.bufferView, accessor.byteOffset, dtype, width,
                                 accessor.count).copy()
        sparse = accessor.sparse
        if sparse is not None and sparse.count:
            ids = self._dense(sparse.indices.bufferView, sparse.indices.byteOffset,
                              COMPONENT_DTYPES[sparse.indices.componentType], 1,
                              sparse.count)[:, 0]
            if ids.size and ids.max() >= accessor.count:
                raise GltfError(f"accessor {index}: a sparse index points past its "
                                f"{accessor.count} elements (damaged file)")
            values[ids.astype(np.int64)] = self._dense(
                sparse.values.bufferView, sparse.values.byteOffset, dtype, width, sparse.count)
        if accessor.normalized and np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.maximum(values.astype(np.float32) / info.max, -1.0)
        return values


# ---------------------------------------------------------------- writing


class BinaryBuilder:
    """Appends bufferViews and accessors to a GLTF2 whose data go into one new buffer."""

    def __init__(self, gltf: pygltflib.GLTF2):
        self.gltf = gltf
        self.buffer_index = len(gltf.buffers)
        self.data = bytearray()

    def add_view(self, array: np.ndarray, target: Optional[int] = None) -> int:
        """Stores a contiguous little-endian array; returns the bufferView index."""
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        self.data += b"\0" * (-len(self.data) % _ALIGN)
        self.gltf.bufferViews.append(pygltflib.BufferView(
            buffer=self.buffer_index, byteOffset=len(self.data), byteLength=len(raw),
            target=target))
        self.data += raw
        return len(self.gltf.bufferViews) - 1

    def add_accessor(self, array: np.ndarray, type_: str, target: Optional[int] = None,
                     min_max: bool = False) -> int:
        """Stores array [count, n] (or [count] for SCALAR) of a glTF component type (float32,
        uint32, ...); returns the accessor index."""
        component = _COMPONENT_TYPES.get(array.dtype)
        if component is None:
            raise GltfError(f"glTF cannot store {array.dtype} data; cast to float32 or uint32")
        flat = array.reshape(array.shape[0], -1)
        accessor = pygltflib.Accessor(
            bufferView=self.add_view(array, target), byteOffset=0, componentType=component,
            count=int(array.shape[0]), type=type_)
        if min_max:
            accessor.min = flat.min(axis=0).astype(float).tolist()
            accessor.max = flat.max(axis=0).astype(float).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def finish_as_blob(self) -> None:
        """Makes the data the GLB binary chunk (buffer index must be 0)."""
        if self.buffer_index != 0:
            raise ValueError("the GLB binary chunk must be buffer 0; use finish_as_data_uri")
        self.gltf.buffers.append(pygltflib.Buffer(byteLength=len(self.data)))
        self.gltf.set_binary_blob(bytes(self.data))

    def finish_as_data_uri(self) -> None:
        """Adds the data as an embedded buffer (pygltflib packs it into the GLB on save)."""
        self.gltf.buffers.append(pygltflib.Buffer(byteLength=len(self.data),
                                                  uri=_data_uri(bytes(self.data))))
