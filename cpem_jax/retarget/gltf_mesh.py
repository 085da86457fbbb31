"""Reads the triangles and morph targets of a glTF 2.0 avatar into one `MorphMesh` (numpy).

Every node of the default scene that carries a mesh contributes its TRIANGLES primitives, moved
by the node's world transform (matrix or translation/rotation/scale, parents included). Skins
are ignored: a skinned character is shown in its bind pose, moved by its node transform. Morph
target POSITION deltas are moved by the linear part of the same transform. Points, lines, strips
and fans are skipped.

Targets are columns of `MorphMesh.deltas`, one per (mesh, target) pair; a mesh used by several
nodes shares its columns, as glTF's per-mesh target list and `retarget_avatar` (which animates
every node of a mesh with the same weights) do.

Accessors are read with their byte stride and byte offset, from a .glb's binary chunk, a
data: URI or an external .bin beside the file; sparse accessors (common for morph targets) and
normalized integer components are decoded.
"""
from __future__ import annotations

import base64
import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import pygltflib

from cpem_jax.export.avatar import AvatarError, load_avatar, mesh_target_names

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
               5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_TRIANGLES = 4


@dataclasses.dataclass(frozen=True)
class MorphMesh:
    """One triangle mesh with morph targets, in the file's units and axes (glTF: metres, +y up).

    Attributes:
      vertices: [V, 3] float32 rest positions (world space of the scene).
      triangles: [F, 3] int32 vertex ids.
      deltas: [T, V, 3] float32 per-target position deltas (0 on vertices a target leaves alone).
      target_keys: T (mesh name, target name) pairs, the names `retarget_avatar` reports.
      default_weights: [T] float32 the meshes' default weights.
    """
    vertices: np.ndarray
    triangles: np.ndarray
    deltas: np.ndarray
    target_keys: Tuple[Tuple[str, str], ...]
    default_weights: np.ndarray

    @property
    def n_targets(self) -> int:
        return len(self.target_keys)

    def posed(self, weights: np.ndarray) -> np.ndarray:
        """weights [N, T] -> vertices [N, V, 3] float32 (rest + weights @ deltas)."""
        weights = np.asarray(weights, np.float32)
        if weights.ndim != 2 or weights.shape[1] != self.n_targets:
            raise ValueError(f"weights must be [N, {self.n_targets}], got {weights.shape}")
        return self.vertices[None] + np.einsum("nt,tvc->nvc", weights, self.deltas)


def _buffer_bytes(gltf: pygltflib.GLTF2, index: int, folder: str) -> bytes:
    uri = gltf.buffers[index].uri
    if uri is None:
        blob = gltf.binary_blob()
        if blob is None:
            raise AvatarError(f"buffer {index} has no data (no URI and no binary chunk)")
        return blob
    if uri.startswith("data:"):
        return base64.b64decode(uri.split(",", 1)[1])
    path = os.path.join(folder, uri)
    if not os.path.isfile(path):
        raise AvatarError(f"the avatar's buffer file {path!r} is missing; keep the .bin next to "
                          "the .gltf or export a single .glb")
    with open(path, "rb") as f:
        return f.read()


class _Reader:
    """Decodes accessors of one glTF into numpy arrays (buffers read once)."""

    def __init__(self, gltf: pygltflib.GLTF2, folder: str):
        self.gltf = gltf
        self.folder = folder
        self._buffers: Dict[int, bytes] = {}

    def _view(self, view_index: int) -> Tuple[bytes, int, Optional[int]]:
        view = self.gltf.bufferViews[view_index]
        if view.buffer not in self._buffers:
            self._buffers[view.buffer] = _buffer_bytes(self.gltf, view.buffer, self.folder)
        return self._buffers[view.buffer], view.byteOffset or 0, view.byteStride

    def _dense(self, view_index, byte_offset, dtype, width, count) -> np.ndarray:
        data, start, stride = self._view(view_index)
        item = np.dtype(dtype).itemsize * width
        stride = stride or item
        start += byte_offset or 0
        if count and start + stride * (count - 1) + item > len(data):
            raise AvatarError("an accessor reads past the end of its buffer (damaged file)")
        raw = np.frombuffer(data, np.uint8, count=stride * (count - 1) + item if count else 0,
                            offset=start) if count else np.zeros(0, np.uint8)
        rows = np.lib.stride_tricks.as_strided(raw, shape=(count, item), strides=(stride, 1))
        return np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder("<")).reshape(
            count, width)

    def read(self, index: int) -> np.ndarray:
        """Accessor `index` -> [count, width] (float32 for float/normalized data)."""
        accessor = self.gltf.accessors[index]
        dtype = _COMPONENTS.get(accessor.componentType)
        width = _WIDTH.get(accessor.type)
        if dtype is None or width is None:
            raise AvatarError(f"accessor {index} has an unsupported layout "
                              f"({accessor.componentType}, {accessor.type})")
        if accessor.bufferView is None:
            values = np.zeros((accessor.count, width), dtype)
        else:
            values = self._dense(accessor.bufferView, accessor.byteOffset, dtype, width,
                                 accessor.count).copy()
        sparse = accessor.sparse
        if sparse is not None and sparse.count:
            ids = self._dense(sparse.indices.bufferView, sparse.indices.byteOffset,
                              _COMPONENTS[sparse.indices.componentType], 1, sparse.count)[:, 0]
            values[ids.astype(np.int64)] = self._dense(
                sparse.values.bufferView, sparse.values.byteOffset, dtype, width, sparse.count)
        if accessor.normalized and np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.maximum(values.astype(np.float32) / info.max, -1.0)
        return values


def _quaternion_matrix(q) -> np.ndarray:
    x, y, z, w = np.asarray(q, np.float64) / max(np.linalg.norm(q), 1e-12)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def node_matrix(node: pygltflib.Node) -> np.ndarray:
    """A node's local transform -> [4, 4] float64 (glTF stores matrices column-major)."""
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    out = np.eye(4)
    out[:3, :3] = _quaternion_matrix(node.rotation or [0, 0, 0, 1]) * np.asarray(
        node.scale or [1, 1, 1], np.float64)[None]
    out[:3, 3] = node.translation or [0, 0, 0]
    return out


def world_matrices(gltf: pygltflib.GLTF2) -> Dict[int, np.ndarray]:
    """Node index -> [4, 4] world transform, for the nodes of the default scene."""
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


def _target_position(target) -> Optional[int]:
    return target.get("POSITION") if isinstance(target, dict) else getattr(target, "POSITION", None)


def load_morph_mesh(path: os.PathLike | str) -> MorphMesh:
    """Reads an avatar .glb/.gltf into one MorphMesh (module doc).

    Raises:
      AvatarError: unreadable file, or no triangle mesh placed in the scene.
    """
    gltf = load_avatar(path)
    reader = _Reader(gltf, os.path.dirname(os.path.abspath(str(path))))
    matrices = world_matrices(gltf)
    mesh_columns: Dict[int, List[int]] = {}
    keys: List[Tuple[str, str]] = []
    defaults: List[float] = []
    parts = []  # (vertices [v, 3], triangles [f, 3], {column: deltas [v, 3]})
    for node_index, world in sorted(matrices.items()):
        mesh_index = gltf.nodes[node_index].mesh
        if mesh_index is None:
            continue
        mesh = gltf.meshes[mesh_index]
        if mesh_index not in mesh_columns:
            names = mesh_target_names(mesh)
            weights = list(mesh.weights or [])
            weights = weights if len(weights) == len(names) else [0.0] * len(names)
            mesh_columns[mesh_index] = list(range(len(keys), len(keys) + len(names)))
            keys.extend((mesh.name or f"mesh_{mesh_index}", n) for n in names)
            defaults.extend(weights)
        linear = world[:3, :3]
        for primitive in mesh.primitives:
            if primitive.mode not in (None, _TRIANGLES) or primitive.attributes.POSITION is None:
                continue
            local = reader.read(primitive.attributes.POSITION).astype(np.float64)
            if local.shape[1] != 3:
                continue
            if primitive.indices is None:
                triangles = np.arange(len(local) - len(local) % 3).reshape(-1, 3)
            else:
                triangles = reader.read(primitive.indices).reshape(-1)
                triangles = triangles[:len(triangles) - len(triangles) % 3].reshape(-1, 3)
            deltas = {}
            for column, target in zip(mesh_columns[mesh_index], primitive.targets or []):
                position = _target_position(target)
                if position is not None:
                    deltas[column] = reader.read(position).astype(np.float64) @ linear.T
            parts.append((local @ linear.T + world[:3, 3], triangles.astype(np.int64), deltas))
    if not parts:
        raise AvatarError(f"{path!s} holds no triangle mesh placed in its scene; export the "
                          "character's mesh as triangles")
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    vertices = np.concatenate([p[0] for p in parts]).astype(np.float32)
    triangles = np.concatenate([p[1] + o for p, o in zip(parts, offsets)]).astype(np.int32)
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise AvatarError(f"{path!s}: triangle indices point past the vertices (damaged file)")
    all_deltas = np.zeros((len(keys), len(vertices), 3), np.float32)
    for (_, _, deltas), begin, end in zip(parts, offsets[:-1], offsets[1:]):
        for column, values in deltas.items():
            all_deltas[column, begin:end] = values
    return MorphMesh(vertices=vertices, triangles=triangles, deltas=all_deltas,
                     target_keys=tuple(keys), default_weights=np.asarray(defaults, np.float32))
