"""An avatar's triangles and morph targets as one numpy mesh (`MorphMesh`), for the preview.

`load_morph_mesh` reads an avatar (.glb/.gltf, checked by `avatar.load_avatar`) into one
`MorphMesh`: every node of the default scene that carries a mesh contributes its TRIANGLES
primitives, moved by the node's world transform (matrix or translation/rotation/scale, parents included). Skins are
ignored: a skinned character is shown in its bind pose, moved by its node transform. Morph target
POSITION deltas are moved by the linear part of the same transform. Points, lines, strips and
fans are skipped. Targets are columns of `MorphMesh.deltas`, one per (mesh, target) pair; a mesh
used by several nodes shares its columns, as glTF's per-mesh target list and `retarget_avatar`
(which animates every node of a mesh with the same weights) do.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import pygltflib

from cpem_jax.export.avatar import AvatarError, file_folder, load_avatar, mesh_target_names
from cpem_jax.export.gltf_io import AccessorReader, GltfError, world_matrices


_TRIANGLES = 4  # glTF primitive mode


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


def _target_position(target) -> Optional[int]:
    """The POSITION accessor of a morph target (pygltflib gives a dict or an Attributes)."""
    return target.get("POSITION") if isinstance(target, dict) else getattr(target, "POSITION", None)


def load_morph_mesh(path: os.PathLike | str) -> MorphMesh:
    """Reads an avatar .glb/.gltf into one MorphMesh (module doc).

    Raises:
      AvatarError: unreadable or damaged file, or no triangle mesh placed in the scene.
    """
    gltf = load_avatar(path)
    try:
        return _read_morph_mesh(gltf, AccessorReader(gltf, file_folder(path)), str(path))
    except GltfError as error:
        raise AvatarError(f"{path}: {error}") from error


def _read_morph_mesh(gltf: pygltflib.GLTF2, reader: AccessorReader, path: str) -> MorphMesh:
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
            if triangles.size and triangles.max() >= len(local):
                raise AvatarError(f"{path}: mesh {mesh.name or mesh_index!r} has triangle "
                                  f"indices past its {len(local)} vertices (damaged file); "
                                  "export the avatar again")
            deltas = {}
            for column, target in zip(mesh_columns[mesh_index], primitive.targets or []):
                position = _target_position(target)
                if position is not None:
                    deltas[column] = reader.read(position).astype(np.float64) @ linear.T
            parts.append((local @ linear.T + world[:3, 3], triangles.astype(np.int64), deltas))
    if not parts:
        raise AvatarError(f"{path} holds no triangle mesh placed in its scene; export the "
                          "character's mesh as triangles")
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    vertices = np.concatenate([p[0] for p in parts]).astype(np.float32)
    triangles = np.concatenate([p[1] + o for p, o in zip(parts, offsets)]).astype(np.int32)
    all_deltas = np.zeros((len(keys), len(vertices), 3), np.float32)
    for (_, _, deltas), begin, end in zip(parts, offsets[:-1], offsets[1:]):
        for column, values in deltas.items():
            all_deltas[column, begin:end] = values
    return MorphMesh(vertices=vertices, triangles=triangles, deltas=all_deltas,
                     target_keys=tuple(keys), default_weights=np.asarray(defaults, np.float32))
