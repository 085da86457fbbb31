"""Expression-unit vocabulary: the contradictory pairs in ICT/ARKit names.

Pairs of units that cannot both fire in a real face (the CPEM paper's expression-exclusive
constraint, AAAI 2022), written with X standing for the side (_L and _R). Our refinements of the method's starting list:
- eyeLookIn/eyeLookOut and eyeLookUp/eyeLookDown are per eye, as in the paper's "eye slide".
- mouthFrown is contradictory with mouthSmile, mouthDimple and mouthStretch per side (the paper's
  lip-corner depressor vs lip-corner pull strong/weak and stretch).
- mouthRollUpper vs mouthUpperUp_X and mouthRollLower vs mouthLowerDown_X (lip suck vs lip raise
  or depress), the paper's lip-suck pairs; its lower-lip-close pairs have no separate ICT unit.
- jawOpen vs mouthClose is NOT a pair: in ICT, mouthClose is applied on top of jawOpen
  (lips sealed with the jaw open).
"""
from __future__ import annotations

import logging
from typing import List, Sequence, Tuple

import numpy as np

SIDES = ("_L", "_R")

# (unit a, unit b); "X" is replaced by each side.
CONTRADICTORY_PAIRS_ICT: Tuple[Tuple[str, str], ...] = (
    ("eyeBlinkX", "eyeWideX"),
    ("eyeSquintX", "eyeWideX"),
    ("eyeLookInX", "eyeLookOutX"),
    ("eyeLookUpX", "eyeLookDownX"),
    ("browDownX", "browOuterUpX"),
    ("browDownX", "browInnerUpX"),
    ("jawLeft", "jawRight"),
    ("mouthLeft", "mouthRight"),
    ("mouthFrownX", "mouthSmileX"),
    ("mouthFrownX", "mouthDimpleX"),
    ("mouthFrownX", "mouthStretchX"),
    ("mouthRollUpper", "mouthUpperUpX"),
    ("mouthRollLower", "mouthLowerDownX"),
)


def expand_sides(pairs: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """Replaces the side placeholder X with _L and _R; pairs without X are kept once."""
    out = []
    for a, b in pairs:
        if "X" in a or "X" in b:
            for side in SIDES:
                out.append((a.replace("X", side), b.replace("X", side)))
        else:
            out.append((a, b))
    return out


def pair_indices(names: Sequence[str], pairs: Sequence[Tuple[str, str]],
                 model_name: str = "face model") -> np.ndarray:
    """Unit-name pairs -> index pairs [P, 2] int32; pairs naming absent units are skipped (logged)."""
    position = {n: i for i, n in enumerate(names)}
    out, missing = [], []
    for a, b in pairs:
        if a in position and b in position:
            out.append((position[a], position[b]))
        else:
            missing.append(f"{a}/{b}")
    if missing:
        logging.info("%s: %d contradictory pairs skipped (units absent): %s", model_name,
                     len(missing), ", ".join(missing))
    return np.asarray(out, dtype=np.int32).reshape(-1, 2)
