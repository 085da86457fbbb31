"""Our face model as a morph mesh: the `face.glb` of a retargeted video and the preview's model.

`face_model_mesh` is the model with one identity, one morph target per expression unit (cm);
`write_face_glb` writes it with the animation of a track (`gltf.write_glb`) and reads it back.
"""
from __future__ import annotations

import numpy as np
import pygltflib

from cpem_jax.export.avatar import MorphMesh
from cpem_jax.export.gltf import write_glb
from cpem_jax.export.schema import FrameTrack
from cpem_jax.face_model.model import FaceModel
from cpem_jax.geometry.shape import face_shape


def face_model_mesh(model: FaceModel, identity: np.ndarray) -> MorphMesh:
    """Our model with one identity as a MorphMesh: vertices [V, 3] cm, one target per unit."""
    identity = np.nan_to_num(np.asarray(identity, np.float32))
    coeffs = model.layout().zeros().replace(identity=identity)
    return MorphMesh(vertices=np.asarray(face_shape(model, coeffs), np.float32),
                     triangles=np.asarray(model.triangles, np.int32),
                     deltas=np.moveaxis(np.asarray(model.exp_basis, np.float32), -1, 0),
                     target_keys=tuple(("face", u) for u in model.expression_names),
                     default_weights=np.zeros(model.n_expression, np.float32))


def write_face_glb(path: str, model: FaceModel, identity: np.ndarray, track: FrameTrack) -> dict:
    """Writes our face (`identity`) animated by `track` as a .glb and reads it back to check it.

    Returns:
      {"targets", "keyframes", "vertices"} as read back from the file.
    Raises:
      RuntimeError: the file read back does not hold what was written.
    """
    mesh = face_model_mesh(model, identity)
    write_glb(path, mesh.vertices, mesh.triangles, mesh.deltas, model.expression_names, track)
    gltf = pygltflib.GLTF2.load(path)
    primitive = gltf.meshes[0].primitives[0]
    targets = len(primitive.targets or [])
    animation = gltf.animations[0] if gltf.animations else None
    keyframes = gltf.accessors[animation.samplers[0].input].count if animation else 0
    vertices = gltf.accessors[primitive.attributes.POSITION].count
    if targets != len(model.expression_names) or keyframes != track.n_frames:
        raise RuntimeError(f"{path} reads back with {targets} targets and {keyframes} keyframes, "
                           f"expected {len(model.expression_names)} and {track.n_frames}")
    return {"targets": targets, "keyframes": keyframes, "vertices": vertices}
