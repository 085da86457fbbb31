"""Our face model as a morph mesh: the `face.glb` of a retargeted video and the preview's model.

`face_model_mesh` is the model with one identity, one morph target per expression unit (cm).

`write_face_glb` writes it with the animation of a track (`gltf.write_glb`) and reads it back.
Its targets are named one of two ways (`GLB_NAMES`):
  * "arkit" (default): the 52 ARKit blendshapes in `arkit.ARKIT_NAMES` order, so an ARKit
    importer (Blender add-ons, three.js, Unreal) matches every one, then one target per model
    unit with no ARKit name (none for ICT). Targets and weights are merged as in the CSV
    (`arkit.build_arkit_mapping`): an ARKit shape fed by several units (ICT's browInnerUp_L/_R,
    cheekPuff_L/_R) has the sum of their deltas as its target and the mean of their weights as
    its animated weight, so weight 1 raises both halves; an ARKit shape no unit feeds
    (tongueOut for ICT) is a zero target with weight 0.
  * "units": one target per model unit under the model's own names (ICT: `eyeBlink_L`, split
    `browInnerUp_L`/`_R`), animated with the units' weights exactly.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pygltflib

from cpem_jax.export.arkit import ARKIT_NAMES, ArkitMapping, build_arkit_mapping
from cpem_jax.export.morph_mesh import MorphMesh
from cpem_jax.export.gltf import write_glb
from cpem_jax.export.schema import FrameTrack
from cpem_jax.face_model.model import FaceModel
from cpem_jax.geometry.shape import face_shape

GLB_NAMES = ("arkit", "units")


def face_model_mesh(model: FaceModel, identity: np.ndarray) -> MorphMesh:
    """Our model with one identity as a MorphMesh: vertices [V, 3] cm, one target per unit."""
    identity = np.nan_to_num(np.asarray(identity, np.float32))
    coeffs = model.layout().zeros().replace(identity=identity)
    return MorphMesh(vertices=np.asarray(face_shape(model, coeffs), np.float32),
                     triangles=np.asarray(model.triangles, np.int32),
                     deltas=np.moveaxis(np.asarray(model.exp_basis, np.float32), -1, 0),
                     target_keys=tuple(("face", u) for u in model.expression_names),
                     default_weights=np.zeros(model.n_expression, np.float32))


def arkit_targets(unit_deltas: np.ndarray, track: FrameTrack,
                  mapping: Optional[ArkitMapping] = None
                  ) -> Tuple[Tuple[str, ...], np.ndarray, np.ndarray]:
    """ARKit-named targets from per-unit ones (module doc).

    Args:
      unit_deltas: [K, V, 3] one delta per unit of `track.unit_names`.
      track: N frames of the K units.
      mapping: default: build_arkit_mapping(track.unit_names).
    Returns:
      (names: 52 ARKit names then the U unmapped units, deltas [52 + U, V, 3] float32,
       weights [N, 52 + U] float32).
    """
    mapping = mapping or build_arkit_mapping(track.unit_names)
    index = [track.unit_names.index(u) for u in mapping.unmapped_units]
    unit_deltas = np.asarray(unit_deltas, np.float32)
    deltas = np.concatenate([mapping.merge_deltas(unit_deltas), unit_deltas[index]])
    weights = np.concatenate([mapping.to_arkit(track.expression), track.expression[:, index]],
                             axis=-1)
    return (*ARKIT_NAMES, *mapping.unmapped_units), deltas, weights


def write_face_glb(path: str, model: FaceModel, identity: np.ndarray, track: FrameTrack,
                   names: str = "arkit") -> dict:
    """Writes our face (`identity`) animated by `track` as a .glb and reads it back to check it.

    Args:
      names: "arkit" or "units", how the targets are named and merged (module doc).
    Returns:
      {"targets", "keyframes", "vertices", "names"} as read back from the file.
    Raises:
      RuntimeError: the file read back does not hold what was written.
    """
    if names not in GLB_NAMES:
        raise ValueError(f"names must be one of {GLB_NAMES}, got {names!r}")
    mesh = face_model_mesh(model, identity)
    if names == "arkit":
        target_names, deltas, weights = arkit_targets(mesh.deltas, track)
    else:
        target_names, deltas, weights = model.expression_names, mesh.deltas, None
    write_glb(path, mesh.vertices, mesh.triangles, deltas, target_names, track,
              target_weights=weights)
    gltf = pygltflib.GLTF2.load(path)
    primitive = gltf.meshes[0].primitives[0]
    targets = len(primitive.targets or [])
    animation = gltf.animations[0] if gltf.animations else None
    keyframes = gltf.accessors[animation.samplers[0].input].count if animation else 0
    vertices = gltf.accessors[primitive.attributes.POSITION].count
    if targets != len(target_names) or keyframes != track.n_frames:
        raise RuntimeError(f"{path} reads back with {targets} targets and {keyframes} keyframes, "
                           f"expected {len(target_names)} and {track.n_frames}")
    return {"targets": targets, "keyframes": keyframes, "vertices": vertices, "names": names}
