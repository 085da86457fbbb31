"""Retarget a track onto a user's character (.glb/.gltf) through its morph target names.

Every mesh of the avatar that has morph targets gets one `weights` channel in a new animation
("cpem_retarget"); existing content (meshes, skins, materials, other animations) is kept and the
result is written as a new .glb.

Target names come from `mesh.extras.targetNames` (Blender, three.js, most exporters) or, failing
that, from the first primitive's `extras.targetNames`. Each target is matched, by
`arkit.shape_name_key` (case, separators, `_L`/`.L`/`Left` sides and `prefix.` namespaces are
folded), in this order:
  1. to one of the track's units of the same name (an ICT-topology rig gets ICT's own units);
  2. to an ARKit name (`eyeBlinkLeft`, `EyeBlink_L`, `blendShape1.eyeBlinkLeft` ...), weighted
     with the ARKit value merged from our units (a rig with browInnerUp_L/_R gets the merged
     browInnerUp on both halves).
`target_map` ({their target name: ARKit name or one of our unit names}, from `--avatar-map
map.json`, read by `load_avatar_map`) is consulted first, for rigs named otherwise (`Smile`,
`Blink_Left`). Targets that match nothing keep the mesh's default weight and are reported as
unused; units of ours that drive no target are reported as missing on the avatar. An avatar of
which no target matches anything is refused (`AvatarError`): its animation would not move.
`check_avatar` runs every check (readable, morph targets, at least one match, the head node)
without the track, so a command can refuse a useless avatar before any work.

The head: with `head_node` naming a node (a bone), its rotation is animated as
rest rotation * head rotation (track convention, see `schema`); otherwise no pose is written.

`load_avatar` refuses, before anything is written, a file whose buffers are missing or short (a
.gltf without its .bin, a .glb cut off while copying).

The preview reads the same avatar as one numpy mesh with `morph_mesh.load_morph_mesh`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pygltflib

from cpem_jax.export.arkit import (ARKIT_NAMES, ArkitMapping, arkit_name_for,
                                   build_arkit_mapping, shape_name_key)
from cpem_jax.export.gltf import ANIMATION_NAME, add_track_animation, fps_extras
from cpem_jax.export.gltf_io import BinaryBuilder, GltfError, check_buffers, embed_buffers
from cpem_jax.export.schema import FrameTrack



class AvatarError(ValueError):
    """The avatar file cannot be retargeted (unreadable, damaged, or no morph targets)."""


@dataclasses.dataclass(frozen=True)
class TargetMatch:
    """What drives one avatar target: kind "unit" or "arkit" and the source name."""
    mesh: str
    target: str
    kind: str
    source: str


@dataclasses.dataclass(frozen=True)
class RetargetReport:
    """The outcome of `retarget_avatar`.

    Attributes:
      matched: one entry per driven target.
      unused_targets: "mesh/target" names nothing drives (they keep their default weight).
      missing_units: our units that drive no target (the avatar lacks them).
      missing_arkit: ARKit names our units feed that the avatar has no target for.
      meshes: names of the meshes with morph targets, in file order.
      animated_nodes: names of the nodes given a weights channel.
      head_node: the node whose rotation is animated, or None.
    """
    matched: Tuple[TargetMatch, ...]
    unused_targets: Tuple[str, ...]
    missing_units: Tuple[str, ...]
    missing_arkit: Tuple[str, ...]
    meshes: Tuple[str, ...]
    animated_nodes: Tuple[str, ...]
    head_node: Optional[str]

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"retargeted {len(self.matched)} morph targets on {len(self.meshes)} mesh(es): "
                 f"{', '.join(self.meshes)}"]
        if self.missing_units:
            lines.append(f"the avatar lacks {len(self.missing_units)} of our units: "
                         f"{', '.join(self.missing_units)}")
        if self.unused_targets:
            lines.append(f"{len(self.unused_targets)} avatar targets stay unused: "
                         f"{', '.join(self.unused_targets)}")
        head = f"node {self.head_node}" if self.head_node else "not written"
        lines.append(f"head rotation: {head}")
        return "\n".join(lines)


def load_avatar(path: os.PathLike | str) -> pygltflib.GLTF2:
    """Reads a .glb or .gltf and checks its buffers, raising `AvatarError` with the fix when it
    cannot (missing or short buffers included)."""
    path = str(path)
    if not os.path.isfile(path):
        raise AvatarError(f"avatar file {path!r} does not exist; pass --avatar "
                          "path/to/character.glb")
    try:
        gltf = pygltflib.GLTF2.load(path)
    except Exception as error:  # pygltflib raises many kinds on bad input
        raise AvatarError(f"could not read {path!r} as glTF 2.0 ({type(error).__name__}: "
                          f"{error}); export the character as glTF Binary (.glb)") from error
    if gltf is None or not isinstance(getattr(gltf, "meshes", None), list):
        raise AvatarError(f"{path!r} is not a glTF 2.0 file; export the character as glTF "
                          "Binary (.glb)")
    try:
        check_buffers(gltf, file_folder(path))
    except GltfError as error:
        raise AvatarError(f"{path}: {error}") from error
    return gltf


def file_folder(path: os.PathLike | str) -> str:
    """The folder a .gltf's external buffers are relative to."""
    return os.path.dirname(os.path.abspath(str(path)))


def mesh_target_names(mesh: pygltflib.Mesh) -> List[str]:
    """The morph target names of a mesh ("target_<i>" where the file names none)."""
    count = len(mesh.primitives[0].targets or []) if mesh.primitives else 0
    names = (mesh.extras or {}).get("targetNames")
    if not names and mesh.primitives:
        names = (mesh.primitives[0].extras or {}).get("targetNames")
    if not names or len(names) != count:
        return [f"target_{i}" for i in range(count)]
    return [str(n) for n in names]


def _source_for(name: str, unit_keys: Dict[str, str],
                mapping: ArkitMapping) -> Optional[Tuple[str, str]]:
    """A name by the rules of the module doc -> ("unit", unit) | ("arkit", ARKit name) | None."""
    key = shape_name_key(name)
    if key in unit_keys:
        return "unit", unit_keys[key]
    arkit = arkit_name_for(name)
    if arkit is not None and arkit in mapping.sources:
        return "arkit", arkit
    return None


def match_target(name: str, unit_keys: Dict[str, str], mapping: ArkitMapping,
                 target_map: Optional[Mapping[str, str]] = None) -> Optional[Tuple[str, str]]:
    """One avatar target name -> ("unit", unit name) | ("arkit", ARKit name) | None.

    `target_map` (their name -> ARKit or unit name) is looked up first, by exact name then by
    `shape_name_key`; its value is then matched by the rules, as a name of ours.
    """
    if target_map:
        value = target_map.get(name)
        if value is None:
            folded = {shape_name_key(k): v for k, v in target_map.items()}
            value = folded.get(shape_name_key(name))
        if value is not None:
            return _source_for(value, unit_keys, mapping)
    return _source_for(name, unit_keys, mapping)


def load_avatar_map(path: os.PathLike | str, unit_names: Sequence[str]) -> Dict[str, str]:
    """Reads `--avatar-map`: a JSON object {their target name: ARKit name or one of our units}.

    Values are checked against `ARKIT_NAMES` and `unit_names` (spellings folded as in
    `shape_name_key`), so a typo is refused before any work.
    Raises:
      AvatarError: a missing or malformed file, or a value that names nothing, with the fix.
    """
    path = str(path)
    example = 'write a JSON object {"Smile": "mouthSmileLeft", "Blink_L": "eyeBlinkLeft"}'
    if not os.path.isfile(path):
        raise AvatarError(f"avatar map {path!r} does not exist; {example}")
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except (OSError, UnicodeDecodeError) as error:
        raise AvatarError(f"avatar map {path!r} cannot be read ({error}); {example}") from None
    except json.JSONDecodeError as error:
        raise AvatarError(f"avatar map {path!r} is not valid JSON ({error.msg} at line "
                          f"{error.lineno}); {example}") from None
    if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise AvatarError(f"avatar map {path!r} must be one object of names to names; {example}")
    known = {shape_name_key(n) for n in (*ARKIT_NAMES, *unit_names)}
    unknown = sorted(v for v in set(table.values())
                     if shape_name_key(v) not in known and arkit_name_for(v) is None)
    if unknown:
        raise AvatarError(f"avatar map {path!r}: {', '.join(map(repr, unknown))} is neither an "
                          f"ARKit blendshape name (eyeBlinkLeft, jawOpen, mouthSmileLeft, ...) "
                          f"nor a unit of the face model; map each shape key to one of those")
    return table


@dataclasses.dataclass(frozen=True)
class AvatarPlan:
    """What drives each morph target of an avatar (`plan_avatar`).

    Attributes:
      meshes: indices of the meshes with morph targets, in file order.
      targets: per mesh index, its target names.
      sources: (mesh index, target index) -> ("unit" | "arkit", source name), matched targets only.
    """
    meshes: Tuple[int, ...]
    targets: Dict[int, List[str]]
    sources: Dict[Tuple[int, int], Tuple[str, str]]


def plan_avatar(gltf: pygltflib.GLTF2, unit_names: Sequence[str], path: str,
                mapping: Optional[ArkitMapping] = None,
                target_map: Optional[Mapping[str, str]] = None) -> AvatarPlan:
    """Matches every morph target of a loaded avatar to our units (module doc).

    Raises:
      AvatarError: no morph targets, or none of them matches anything (naming the fix).
    """
    mapping = mapping or build_arkit_mapping(unit_names)
    meshes = tuple(i for i, m in enumerate(gltf.meshes) if m.primitives and m.primitives[0].targets)
    if not meshes:
        raise AvatarError(
            f"{path} has no morph targets (blend shapes / shape keys), so there is nothing to "
            "retarget onto; give the character ARKit-named shape keys and export them (Blender "
            "glTF export: Data > Shape Keys)")
    unit_keys = {shape_name_key(u): u for u in unit_names}
    targets = {i: mesh_target_names(gltf.meshes[i]) for i in meshes}
    sources = {}
    for i in meshes:
        for t, name in enumerate(targets[i]):
            source = match_target(name, unit_keys, mapping, target_map)
            if source is not None:
                sources[(i, t)] = source
    if not sources:
        names = [n for i in meshes for n in targets[i]]
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        how = ("fix --avatar-map so its values name ARKit shapes this face model drives"
               if target_map else
               f"pass --avatar-map map.json mapping them to ARKit's, e.g. "
               f'{{"{names[0]}": "jawOpen"}}')
        raise AvatarError(f"{path}: none of its {len(names)} morph targets ({shown}) matches an "
                          f"ARKit blendshape name or a unit of the face model, so the animation "
                          f"would not move it; rename the shape keys to ARKit names (eyeBlinkLeft,"
                          f" jawOpen, mouthSmileLeft, ...) or {how}")
    return AvatarPlan(meshes=meshes, targets=targets, sources=sources)


def check_avatar(path: os.PathLike | str, unit_names: Sequence[str],
                 target_map: Optional[Mapping[str, str]] = None,
                 head_node: Optional[str] = None) -> AvatarPlan:
    """Every check `retarget_avatar` makes, without a track: readable, morph targets, at least
    one target matched, the head node present. Returns the plan; raises `AvatarError`."""
    gltf = load_avatar(path)
    plan = plan_avatar(gltf, unit_names, str(path), target_map=target_map)
    if head_node is not None:
        _find_node(gltf, head_node)
    return plan


def _find_node(gltf: pygltflib.GLTF2, name: str) -> int:
    exact = [i for i, n in enumerate(gltf.nodes) if n.name == name]
    loose = [i for i, n in enumerate(gltf.nodes) if (n.name or "").lower() == name.lower()]
    found = exact or loose
    if not found:
        names = sorted({n.name for n in gltf.nodes if n.name})
        raise AvatarError(f"the avatar has no node named {name!r}; pick the head bone among "
                          f"{names[:40]}")
    return found[0]


def retarget_avatar(avatar_path: os.PathLike | str, track: FrameTrack,
                    out_path: os.PathLike | str, head_node: Optional[str] = None,
                    mapping: Optional[ArkitMapping] = None,
                    animation_name: str = ANIMATION_NAME,
                    target_map: Optional[Mapping[str, str]] = None) -> RetargetReport:
    """Writes the track into an avatar's morph targets by name (module doc).

    Args:
      avatar_path: the user's .glb (or .gltf).
      track: N frames of our units.
      out_path: the new .glb to write (parent folders are created).
      head_node: name of the node whose rotation follows the head, or None for no pose.
      mapping: default: build_arkit_mapping(track.unit_names).
      animation_name: name of the added animation.
      target_map: their target name -> ARKit or unit name, consulted first (`load_avatar_map`).
    Returns:
      the `RetargetReport`.
    Raises:
      AvatarError: the avatar cannot be read, has no morph targets, none matches, or the head
        node is missing.
    """
    gltf = load_avatar(avatar_path)
    mapping = mapping or build_arkit_mapping(track.unit_names)
    plan = plan_avatar(gltf, track.unit_names, str(avatar_path), mapping, target_map)
    arkit = mapping.to_arkit(track.expression)
    unit_index = {u: k for k, u in enumerate(track.unit_names)}

    matched: List[TargetMatch] = []
    unused: List[str] = []
    weights_by_mesh: Dict[int, np.ndarray] = {}
    for mesh_id in plan.meshes:
        mesh = gltf.meshes[mesh_id]
        mesh_name = mesh.name or f"mesh_{mesh_id}"
        names = plan.targets[mesh_id]
        defaults = list(mesh.weights or [])
        if len(defaults) != len(names):
            defaults = [0.0] * len(names)
        weights = np.tile(np.asarray(defaults, np.float32)[None], (track.n_frames, 1))
        for t, name in enumerate(names):
            source = plan.sources.get((mesh_id, t))
            if source is None:
                unused.append(f"{mesh_name}/{name}")
                continue
            kind, source_name = source
            matched.append(TargetMatch(mesh_name, name, kind, source_name))
            weights[:, t] = (track.expression[:, unit_index[source_name]] if kind == "unit"
                             else arkit[:, ARKIT_NAMES.index(source_name)])
        weights_by_mesh[mesh_id] = weights

    channels = [(node_id, weights_by_mesh[node.mesh]) for node_id, node in enumerate(gltf.nodes)
                if node.mesh in weights_by_mesh]
    if not channels:
        raise AvatarError(f"{avatar_path!s}: the meshes with morph targets are used by no node; "
                          "place the character's mesh in the scene before exporting")
    rotation_node, rest = None, None
    if head_node is not None:
        rotation_node = _find_node(gltf, head_node)
        node = gltf.nodes[rotation_node]
        if node.matrix:
            raise AvatarError(f"node {head_node!r} stores a matrix, which glTF cannot animate; "
                              "re-export the avatar with TRS transforms")
        rest = node.rotation or [0.0, 0.0, 0.0, 1.0]

    builder = BinaryBuilder(gltf)
    add_track_animation(builder, track, channels, rotation_node=rotation_node,
                        rest_rotation=rest, name=animation_name)
    gltf.asset.extras = {**(gltf.asset.extras or {}), animation_name: fps_extras(track)}
    builder.finish_as_data_uri()
    embed_buffers(gltf, file_folder(avatar_path))  # the .glb carries every buffer
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    if not gltf.save_binary(str(out_path)):
        raise AvatarError(f"could not write {out_path!s}")

    used_units = set()
    for m in matched:
        used_units.update([m.source] if m.kind == "unit" else mapping.sources[m.source])
    driven_arkit = {m.source for m in matched if m.kind == "arkit"}
    driven_arkit |= {arkit_name_for(m.source) for m in matched if m.kind == "unit"}
    return RetargetReport(
        matched=tuple(matched), unused_targets=tuple(unused),
        missing_units=tuple(u for u in track.unit_names if u not in used_units),
        missing_arkit=tuple(a for a in ARKIT_NAMES if a in mapping.sources
                            and a not in driven_arkit),
        meshes=tuple(gltf.meshes[i].name or f"mesh_{i}" for i in plan.meshes),
        animated_nodes=tuple(gltf.nodes[n].name or f"node_{n}" for n, _ in channels),
        head_node=None if rotation_node is None else (gltf.nodes[rotation_node].name or head_node))
