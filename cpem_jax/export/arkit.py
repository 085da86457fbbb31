"""Apple ARKit blendshape names and the mapping from a face model's expression units onto them.

`ARKIT_NAMES` lists the 52 `ARFaceAnchor.BlendShapeLocation` names in the order Apple's
documentation groups them (left eye, right eye, mouth and jaw, eyebrows, cheeks, nose, tongue).

A face model's units reach ARKit through a table `ArkitMapping.sources`: ARKit name -> the units
whose weights are averaged into it. The table is built from the unit names by rules, never by a
chain of special cases:

1. Names are compared through `shape_name_key`: case, separators, namespace prefixes
   (`blendShape1.`, `rig:`) and side spellings (`_L`, `_l`, `.L`, `Left`, `_left`) are all
   folded, so ICT's `eyeBlink_L` and ARKit's `eyeBlinkLeft` share the key `eyeblinkleft`.
   ICT's `xxx_L` is the subject's left, as ARKit's `xxxLeft` is.
2. A unit whose key equals an ARKit name's key feeds that ARKit name.
3. A unit with a side (`browInnerUp_L`) whose side-free key is a side-free ARKit name
   (`browInnerUp`) feeds it too: ARKit's unsided shape is the mean of the model's halves. For
   ICT this merges browInnerUp_L/_R and cheekPuff_L/_R.
4. `aliases` (unit name -> ARKit name) override the rules, for models whose names differ (a
   BFM/FaceWarehouse FACS basis).

ARKit names that no unit feeds (ICT: tongueOut) are written as 0 and listed in
`ArkitMapping.missing_arkit`; units that feed no ARKit name are listed in
`ArkitMapping.unmapped_units` so a caller can report or export them, never dropped silently.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

ARKIT_NAMES: Tuple[str, ...] = (
    # Left eye.
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    # Right eye.
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    # Mouth and jaw.
    "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker",
    "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    # Eyebrows.
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    # Cheeks.
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    # Nose.
    "noseSneerLeft", "noseSneerRight",
    # Tongue.
    "tongueOut",
)
N_ARKIT = len(ARKIT_NAMES)

# A side written at the end of a name: "_L", ".l", "-Left", " right", or a bare "Left"/"Right".
_SIDE_SUFFIX = re.compile(r"(?:[._\-\s](l|r|left|right)|(left|right))$", re.IGNORECASE)
_SIDE_WORDS = {"l": "left", "left": "left", "r": "right", "right": "right"}
_NAMESPACE_SEPARATORS = re.compile(r"[.:|]")
_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def split_side(name: str) -> Tuple[str, Optional[str]]:
    """Splits a trailing side marker off a shape name.

    `eyeBlink_L` -> (`eyeBlink`, "left"); `EyeBlinkRight` -> (`EyeBlink`, "right");
    `blendShape1.eyeBlink.L` -> (`blendShape1.eyeBlink`, "left"); `jawOpen` -> (`jawOpen`, None).
    Note that ARKit's own `mouthLeft`/`jawLeft` split as (`mouth`, "left"); keys stay consistent
    because `shape_name_key` joins the two halves back.
    """
    match = _SIDE_SUFFIX.search(name)
    if match is None:
        return name, None
    word = (match.group(1) or match.group(2)).lower()
    return name[:match.start()], _SIDE_WORDS[word]


def shape_name_key(name: str) -> str:
    """A comparison key for blendshape names, tolerant of the usual spellings.

    Lower-case, side markers folded to `left`/`right`, namespace prefixes (anything up to the
    last `.`, `:` or `|`, e.g. `blendShape1.`, `Face:`) dropped, separators removed:
    `blendShape1.EyeBlink_L`, `eye_blink.L` and `eyeBlinkLeft` all give `eyeblinkleft`.
    """
    base, side = split_side(name.strip())
    base = _NAMESPACE_SEPARATORS.split(base)[-1]
    return _NOT_ALNUM.sub("", base.lower()) + (side or "")


def _side_free_key(name: str) -> str:
    """`shape_name_key` without the side: `browInnerUp_L` -> `browinnerup`."""
    base, _ = split_side(name.strip())
    return _NOT_ALNUM.sub("", _NAMESPACE_SEPARATORS.split(base)[-1].lower())


_ARKIT_BY_KEY: Dict[str, str] = {shape_name_key(n): n for n in ARKIT_NAMES}
# ARKit names that carry no side (browInnerUp, cheekPuff, jawOpen, ...), by their key.
_UNSIDED_ARKIT_BY_KEY: Dict[str, str] = {
    shape_name_key(n): n for n in ARKIT_NAMES if split_side(n)[1] is None}


def arkit_name_for(name: str) -> Optional[str]:
    """The ARKit name a shape/unit name stands for, or None (rules 2 and 3 of the module doc).

    `eyeBlink_L` -> `eyeBlinkLeft`; `browInnerUp_R` -> `browInnerUp` (a half of an unsided
    shape); `JawOpen` -> `jawOpen`; `cheekRaiser_L` -> None.
    """
    key = shape_name_key(name)
    if key in _ARKIT_BY_KEY:
        return _ARKIT_BY_KEY[key]
    if split_side(name.strip())[1] is not None:
        return _UNSIDED_ARKIT_BY_KEY.get(_side_free_key(name))
    return None


@dataclasses.dataclass(frozen=True)
class ArkitMapping:
    """How K model units map onto the 52 ARKit names.

    Attributes:
      unit_names: the K model unit names, in model order.
      sources: ARKit name -> tuple of unit names averaged into it (only ARKit names with sources).
      missing_arkit: ARKit names no unit feeds (written as 0).
      unmapped_units: unit names that feed no ARKit name.
    """
    unit_names: Tuple[str, ...]
    sources: Mapping[str, Tuple[str, ...]]
    missing_arkit: Tuple[str, ...]
    unmapped_units: Tuple[str, ...]

    def matrix(self) -> np.ndarray:
        """[K, 52] float32 averaging matrix: arkit_weights [..., 52] = unit_weights [..., K] @ M."""
        index = {name: k for k, name in enumerate(self.unit_names)}
        m = np.zeros((len(self.unit_names), N_ARKIT), np.float32)
        for a, arkit in enumerate(ARKIT_NAMES):
            units = self.sources.get(arkit, ())
            for unit in units:
                m[index[unit], a] = 1.0 / len(units)
        return m

    def to_arkit(self, weights: np.ndarray) -> np.ndarray:
        """weights [..., K] model units -> [..., 52] ARKit weights in `ARKIT_NAMES` order."""
        weights = np.asarray(weights, np.float32)
        if weights.shape[-1] != len(self.unit_names):
            raise ValueError(
                f"weights have {weights.shape[-1]} units but the mapping was built for "
                f"{len(self.unit_names)}; build it with build_arkit_mapping(track.unit_names)")
        return weights @ self.matrix()

    def merge_deltas(self, unit_deltas: np.ndarray) -> np.ndarray:
        """unit_deltas [K, ...] (e.g. [K, V, 3] morph target deltas) -> [52, ...] float32, one
        per ARKit name: the sum of its units' deltas (0 for `missing_arkit`).

        The sum, not the mean: weight 1 on a merged target then moves both halves fully, as
        weight 1 on each half does, and `to_arkit` gives the merged weight (the halves' mean).
        """
        unit_deltas = np.asarray(unit_deltas, np.float32)
        if unit_deltas.shape[0] != len(self.unit_names):
            raise ValueError(f"{unit_deltas.shape[0]} unit deltas for {len(self.unit_names)} "
                             "units; pass one per unit, in unit_names order")
        summed = (self.matrix() > 0).astype(np.float32)          # [K, 52] 0/1
        return np.tensordot(summed.T, unit_deltas, axes=1).astype(np.float32)


def build_arkit_mapping(unit_names: Sequence[str],
                        aliases: Optional[Mapping[str, str]] = None) -> ArkitMapping:
    """Builds the ARKit table for a list of model unit names.

    Args:
      unit_names: K unit names in model order (e.g. FaceModel.expression_names).
      aliases: optional unit name -> ARKit name overrides (an ARKit name from `ARKIT_NAMES`, or
        "" to exclude a unit); units not listed follow the naming rules.
    Returns:
      the `ArkitMapping`.
    """
    unit_names = tuple(unit_names)
    if len(set(unit_names)) != len(unit_names):
        raise ValueError(f"unit names must be unique, got duplicates in {unit_names}")
    aliases = dict(aliases or {})
    for unit, target in aliases.items():
        if target and target not in ARKIT_NAMES:
            raise ValueError(f"alias {unit!r} -> {target!r}: the target is not an ARKit name; "
                             f"use one of arkit.ARKIT_NAMES or '' to exclude the unit")
    sources: Dict[str, list] = {}
    unmapped = []
    for unit in unit_names:
        target = aliases[unit] if unit in aliases else arkit_name_for(unit)
        if target:
            sources.setdefault(target, []).append(unit)
        else:
            unmapped.append(unit)
    return ArkitMapping(
        unit_names=unit_names,
        sources={a: tuple(sources[a]) for a in ARKIT_NAMES if a in sources},
        missing_arkit=tuple(a for a in ARKIT_NAMES if a not in sources),
        unmapped_units=tuple(unmapped))
