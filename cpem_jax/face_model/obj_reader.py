"""A fast reader for the parts of Wavefront OBJ files a morphable model needs."""
from __future__ import annotations

import re
from typing import List

import numpy as np

_VERTEX_LINE = re.compile(rb"^v\s+([^\n]*)", re.MULTILINE)
_FACE_LINE = re.compile(rb"^f\s+([^\n]*)", re.MULTILINE)


class ObjFormatError(ValueError):
    """An OBJ file that cannot be read as a mesh."""


def read_vertices(data: bytes, source: str = "<obj>") -> np.ndarray:
    """OBJ bytes -> vertex positions [V, 3] float32 (the first three numbers of each `v` line)."""
    lines = _VERTEX_LINE.findall(data)
    if not lines:
        raise ObjFormatError(f"{source}: no vertex ('v x y z') lines; is this an OBJ mesh file?")
    tokens = [line.split() for line in lines]
    if any(len(t) < 3 for t in tokens):
        raise ObjFormatError(f"{source}: a vertex line has fewer than 3 numbers")
    try:
        # Extra numbers (vertex colours, w) are dropped.
        return np.array([t[:3] for t in tokens], dtype=np.float32)
    except ValueError as err:
        raise ObjFormatError(f"{source}: malformed vertex line ({err})") from None


def read_polygons(data: bytes, source: str = "<obj>") -> List[List[int]]:
    """OBJ bytes -> polygons as lists of 0-based vertex ids (texture/normal ids dropped)."""
    polygons = []
    for line in _FACE_LINE.findall(data):
        try:
            polygons.append([int(token.split(b"/")[0]) - 1 for token in line.split()])
        except ValueError:
            raise ObjFormatError(f"{source}: malformed face line {line[:60]!r}") from None
    if not polygons:
        raise ObjFormatError(f"{source}: no face ('f ...') lines")
    return polygons


def triangulate(polygons: List[List[int]]) -> np.ndarray:
    """Fan-triangulates polygons (quads become two triangles) -> [F, 3] int32.

    A polygon (a, b, c, d) gives (a, b, c) and (a, c, d), which keeps its winding.
    """
    triangles = []
    for poly in polygons:
        if len(poly) < 3:
            continue
        for k in range(1, len(poly) - 1):
            triangles.append((poly[0], poly[k], poly[k + 1]))
    return np.asarray(triangles, dtype=np.int32).reshape(-1, 3)
