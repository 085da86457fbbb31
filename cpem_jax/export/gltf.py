"""glTF 2.0 binary (.glb) of a face mesh with expression morph targets and its animation.

The file holds one scene with one node ("face") carrying one mesh: POSITION, NORMAL and uint32
indices, one morph target per name (POSITION deltas, and NORMAL deltas unless turned off), the
target names in `mesh.extras.targetNames` (read by Blender's and three.js's importers) and one
animation ("cpem_retarget") with LINEAR samplers keyed at the track's timestamps (shifted to start
at 0): a `weights` channel (N x T floats) and a `rotation` channel (unit quaternions, x y z w) on
the node, plus an optional `translation` channel.

Frame timing: glTF keys animations in seconds, and importers turn seconds into frames at their
own scene rate (Blender: the scene's frame rate, 24 by default), so keys of a 25 or 30 fps video
land between frames unless the scene runs at the video's rate. The source rate is recorded as
`extras.fps` on the animation (`FPS_EXTRAS`, with the frame count) and on the asset, for
importers and scripts to set the scene rate from; key k is at k / fps seconds exactly when the
source's frames are evenly spaced.

Units: the face model is in cm, glTF in metres: positions, deltas and translations are multiplied
by `scale` (default 0.01). Axes need no change: both the model and glTF use +y up with the face
toward +z. Head rotation: R = Rz(roll) Ry(yaw) Rx(pitch) as in cpem_jax.geometry.rotation.

The writer takes plain numpy arrays, so it needs no face model object. Buffers, accessors and
quaternions are `gltf_io`'s; `add_track_animation` is shared with the avatar writer (`avatar`).
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np
import pygltflib

from cpem_jax.export.gltf_io import BinaryBuilder, euler_to_quaternion, quaternion_multiply
from cpem_jax.export.schema import FrameTrack
from cpem_jax.geometry.mesh import vertex_normals

CM_TO_M = 0.01
ANIMATION_NAME = "cpem_retarget"


def add_track_animation(builder: BinaryBuilder, track: FrameTrack,
                        weight_channels: Sequence[tuple], rotation_node: Optional[int] = None,
                        rest_rotation: Optional[Sequence[float]] = None,
                        translation_node: Optional[int] = None,
                        rest_translation: Optional[Sequence[float]] = None,
                        scale: float = CM_TO_M, name: str = ANIMATION_NAME) -> int:
    """Adds one animation driven by a track to builder.gltf.

    Args:
      builder: where the keyframe data go.
      track: N frames; keys at track.timestamps - track.timestamps[0].
      weight_channels: (node index, weights [N, T] float32) per node whose mesh has T targets.
      rotation_node: node whose rotation follows the head (rest_rotation * head), or None.
      rest_rotation: the node's rest quaternion (x, y, z, w); default identity.
      translation_node: node whose translation follows the head (rest + scale * translation).
      rest_translation: the node's rest translation, metres; default 0.
      scale: track translation unit -> glTF metres.
      name: animation name.
    Returns:
      the animation index.
    """
    times = (track.timestamps - track.timestamps[0]).astype(np.float32)
    time_accessor = builder.add_accessor(times, "SCALAR", min_max=True)
    animation = pygltflib.Animation(name=name, extras=fps_extras(track))

    def add_channel(node: int, path: str, output: int) -> None:
        animation.samplers.append(pygltflib.AnimationSampler(
            input=time_accessor, output=output, interpolation=pygltflib.ANIM_LINEAR))
        animation.channels.append(pygltflib.AnimationChannel(
            sampler=len(animation.samplers) - 1,
            target=pygltflib.AnimationChannelTarget(node=node, path=path)))

    for node, weights in weight_channels:
        weights = np.asarray(weights, np.float32)
        if weights.ndim != 2 or weights.shape[0] != track.n_frames:
            raise ValueError(f"weights for node {node} must be [N={track.n_frames}, T], "
                             f"got {weights.shape}")
        add_channel(node, "weights", builder.add_accessor(weights.reshape(-1), "SCALAR"))
    if rotation_node is not None:
        quats = euler_to_quaternion(track.rotation)
        if rest_rotation is not None:
            quats = quaternion_multiply(np.asarray(rest_rotation)[None], quats)
        quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
        add_channel(rotation_node, "rotation",
                    builder.add_accessor(quats.astype(np.float32), "VEC4"))
    if translation_node is not None:
        rest = np.zeros(3) if rest_translation is None else np.asarray(rest_translation)
        moved = (rest[None] + scale * track.translation).astype(np.float32)
        add_channel(translation_node, "translation", builder.add_accessor(moved, "VEC3"))
    builder.gltf.animations.append(animation)
    return len(builder.gltf.animations) - 1


def fps_extras(track: FrameTrack) -> dict:
    """The frame timing recorded in `extras` of the animation and the asset (module doc)."""
    return {"fps": round(float(track.fps), 6), "frame_count": int(track.n_frames),
            "time_unit": "seconds from the first frame"}


def _check_mesh(vertices, triangles, target_deltas, target_names):
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got {vertices.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.shape[0] == 0:
        raise ValueError(f"triangles must be [F, 3] with F >= 1, got {triangles.shape}")
    if triangles.min() < 0 or triangles.max() >= vertices.shape[0]:
        raise ValueError(f"triangle ids must lie in [0, {vertices.shape[0]}), got "
                         f"[{triangles.min()}, {triangles.max()}]")
    if target_deltas.ndim != 3 or target_deltas.shape[1:] != vertices.shape:
        raise ValueError(f"target_deltas must be [K, V={vertices.shape[0]}, 3], got "
                         f"{target_deltas.shape}; transpose a [V, 3, K] exp_basis with "
                         "np.moveaxis(exp_basis, -1, 0)")
    if len(target_names) != target_deltas.shape[0] or len(set(target_names)) != len(target_names):
        raise ValueError(f"need {target_deltas.shape[0]} unique target names, got "
                         f"{len(target_names)} ({len(set(target_names))} unique)")


def track_weights_for_targets(track: FrameTrack, target_names: Sequence[str]) -> np.ndarray:
    """track.expression columns reordered to the targets -> [N, len(target_names)] float32."""
    index = {u: k for k, u in enumerate(track.unit_names)}
    missing = [n for n in target_names if n not in index]
    if missing:
        raise ValueError(f"the track has no units named {missing}; the mesh's target names "
                         "must be the track's unit names (use retarget_avatar for other rigs)")
    return track.expression[:, [index[n] for n in target_names]]


def write_glb(path: os.PathLike | str, vertices: np.ndarray, triangles: np.ndarray,
              target_deltas: np.ndarray, target_names: Sequence[str],
              track: Optional[FrameTrack] = None, scale: float = CM_TO_M,
              target_normals: bool = True, animate_translation: bool = False,
              target_weights: Optional[np.ndarray] = None) -> None:
    """Writes the face mesh, its morph targets and (given a track) the animation as a .glb.

    Args:
      path: output .glb path (parent folders are created).
      vertices: [V, 3] neutral positions, model units (cm for ICT).
      triangles: [F, 3] vertex ids, counter-clockwise from the front.
      target_deltas: [K, V, 3] per-target position deltas, model units.
      target_names: K names (the track's unit names when a track is given without weights).
      track: optional N frames to animate (target weights, head rotation, timing).
      target_weights: [N, K] per-frame weights of the targets; default: the track's units of
        the targets' names.
      scale: model unit -> metres (0.01 for cm).
      target_normals: also store per-target NORMAL deltas (better shading in three.js).
      animate_translation: also animate the node translation (scale * track.translation).
    """
    vertices = np.asarray(vertices, np.float64)
    triangles = np.asarray(triangles, np.int64)
    target_deltas = np.asarray(target_deltas, np.float64)
    target_names = [str(n) for n in target_names]
    _check_mesh(vertices, triangles, target_deltas, target_names)

    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(
        generator="cpem-jax", extras=fps_extras(track) if track is not None else None))
    builder = BinaryBuilder(gltf)
    positions = (vertices * scale).astype(np.float32)
    normals = np.asarray(vertex_normals(vertices.astype(np.float32), triangles))
    attributes = pygltflib.Attributes(
        POSITION=builder.add_accessor(positions, "VEC3", pygltflib.ARRAY_BUFFER, min_max=True),
        NORMAL=builder.add_accessor(normals, "VEC3", pygltflib.ARRAY_BUFFER))
    indices = builder.add_accessor(triangles.reshape(-1).astype(np.uint32), "SCALAR",
                                   pygltflib.ELEMENT_ARRAY_BUFFER)
    if target_normals and len(target_deltas):
        # Every target's normals in one batched call: [K, V, 3] minus the neutral's.
        target_normal_deltas = np.asarray(vertex_normals(
            (vertices + target_deltas).astype(np.float32), triangles)) - normals
    targets: List[pygltflib.Attributes] = []
    for k, deltas in enumerate(target_deltas):
        target = pygltflib.Attributes(POSITION=builder.add_accessor(
            (deltas * scale).astype(np.float32), "VEC3", pygltflib.ARRAY_BUFFER, min_max=True))
        if target_normals:
            target.NORMAL = builder.add_accessor(target_normal_deltas[k], "VEC3",
                                                 pygltflib.ARRAY_BUFFER)
        targets.append(target)
    gltf.materials.append(pygltflib.Material(
        name="skin", pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[0.8, 0.62, 0.52, 1.0], metallicFactor=0.0, roughnessFactor=0.6)))
    gltf.meshes.append(pygltflib.Mesh(
        name="face", weights=[0.0] * len(targets), extras={"targetNames": target_names},
        primitives=[pygltflib.Primitive(attributes=attributes, indices=indices, material=0,
                                        mode=pygltflib.TRIANGLES, targets=targets)]))
    gltf.nodes.append(pygltflib.Node(name="face", mesh=0))
    gltf.scenes.append(pygltflib.Scene(nodes=[0]))
    gltf.scene = 0
    if track is not None:
        if target_weights is None:
            target_weights = track_weights_for_targets(track, target_names)
        add_track_animation(builder, track, [(0, target_weights)],
                            rotation_node=0, translation_node=0 if animate_translation else None,
                            scale=scale)
    builder.finish_as_blob()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    gltf.save_binary(str(path))

