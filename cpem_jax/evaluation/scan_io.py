"""Reading ground-truth scans: OBJ, PLY (ASCII or binary) and VRML 2.0 (.wrl) meshes.

`read_scan(path)` -> (vertices [N, 3] float64 in the file's units, triangles [F, 3] int64;
[0, 3] for a point cloud). Polygons are fan-triangulated.
"""
from __future__ import annotations

import os
import re
from typing import Tuple

import numpy as np

from cpem_jax.face_model.obj_reader import ObjFormatError, read_polygons, read_vertices, triangulate

SCAN_EXTENSIONS = (".obj", ".ply", ".wrl")


class ScanFormatError(ValueError):
    """A scan file this reader cannot interpret."""


def read_scan(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """A mesh file (.obj, .ply, .wrl) -> (vertices [N, 3] float64, triangles [F, 3] int64)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"scan {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        data = f.read()
    if ext == ".obj":
        return _read_obj(data, path)
    if ext == ".ply":
        return _read_ply(data, path)
    if ext == ".wrl":
        return _read_wrl(data, path)
    raise ScanFormatError(f"{path}: unsupported scan format {ext!r}; convert it to one of "
                          f"{', '.join(SCAN_EXTENSIONS)}")


def _read_obj(data: bytes, path: str):
    vertices = read_vertices(data, path).astype(np.float64)
    try:
        triangles = triangulate(read_polygons(data, path)).astype(np.int64)
    except ObjFormatError:
        triangles = np.zeros((0, 3), np.int64)  # A point cloud.
    return vertices, _checked(triangles, len(vertices), path)


def _checked(triangles: np.ndarray, n_vertices: int, path: str) -> np.ndarray:
    triangles = np.asarray(triangles, np.int64).reshape(-1, 3)
    if len(triangles) and (triangles.min() < 0 or triangles.max() >= n_vertices):
        raise ScanFormatError(f"{path}: a face refers to a vertex outside 0..{n_vertices - 1}")
    return triangles


def _fan(polygons) -> np.ndarray:
    return triangulate([list(p) for p in polygons]).astype(np.int64)


# PLY ------------------------------------------------------------------------------------------
_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2",
              "int16": "i2", "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4",
              "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8",
              "float64": "f8"}


def _read_ply(data: bytes, path: str):
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ScanFormatError(f"{path}: not a PLY file (no 'ply' magic or 'end_header')")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    body_start = data.index(b"\n", end) + 1
    fmt, elements = None, []
    for line in header:
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append({"name": tok[1], "count": int(tok[2]), "props": []})
        elif tok[0] == "property":
            if tok[1] == "list":
                elements[-1]["props"].append((tok[4], "list", _ply_type(tok[2], path),
                                              _ply_type(tok[3], path)))
            else:
                elements[-1]["props"].append((tok[2], _ply_type(tok[1], path)))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ScanFormatError(f"{path}: unknown PLY format {fmt!r}")
    reader = _PlyAscii(data[body_start:]) if fmt == "ascii" else _PlyBinary(
        data[body_start:], "<" if fmt == "binary_little_endian" else ">")
    vertices, polygons = None, []
    for el in elements:
        rows = [reader.row(el["props"]) for _ in range(el["count"])]
        if el["name"] == "vertex":
            names = [p[0] for p in el["props"]]
            if not {"x", "y", "z"} <= set(names):
                raise ScanFormatError(f"{path}: PLY vertices lack x, y, z properties")
            cols = [names.index(a) for a in "xyz"]
            vertices = np.array([[r[c] for c in cols] for r in rows], np.float64).reshape(-1, 3)
        elif el["name"] == "face":
            names = [p[0] for p in el["props"]]
            key = "vertex_indices" if "vertex_indices" in names else "vertex_index"
            if key not in names:
                raise ScanFormatError(f"{path}: PLY faces lack a vertex_indices list")
            polygons = [r[names.index(key)] for r in rows]
    if vertices is None:
        raise ScanFormatError(f"{path}: PLY file has no vertex element")
    return vertices, _checked(_fan(polygons), len(vertices), path)


def _ply_type(name: str, path: str) -> str:
    if name not in _PLY_TYPES:
        raise ScanFormatError(f"{path}: unknown PLY property type {name!r}")
    return _PLY_TYPES[name]


class _PlyAscii:
    def __init__(self, body: bytes):
        self._tokens = iter(body.split())

    def row(self, props):
        out = []
        for prop in props:
            if prop[1] == "list":
                n = int(next(self._tokens))
                out.append([int(next(self._tokens)) for _ in range(n)])
            else:
                out.append(float(next(self._tokens)))
        return out


class _PlyBinary:
    def __init__(self, body: bytes, order: str):
        self._body, self._pos, self._order = body, 0, order

    def _take(self, dtype: str, count: int = 1):
        dt = np.dtype(self._order + dtype)
        values = np.frombuffer(self._body, dt, count, self._pos)
        self._pos += dt.itemsize * count
        return values

    def row(self, props):
        out = []
        for prop in props:
            if prop[1] == "list":
                n = int(self._take(prop[2])[0])
                out.append(self._take(prop[3], n).astype(np.int64).tolist())
            else:
                out.append(float(self._take(prop[1])[0]))
        return out


# VRML 2.0 -------------------------------------------------------------------------------------
_COORD = re.compile(rb"\bCoordinate\s*\{\s*point\s*\[([^\]]*)\]", re.S)
_INDEX = re.compile(rb"(?<![A-Za-z])coordIndex\s*\[([^\]]*)\]", re.S)


def _read_wrl(data: bytes, path: str):
    """Every IndexedFaceSet's Coordinate points and coordIndex (polygons end with -1)."""
    points = _COORD.findall(data)
    if not points:
        raise ScanFormatError(f"{path}: no 'Coordinate {{ point [...] }}' node; is this a VRML "
                              f"mesh?")
    indices = _INDEX.findall(data)
    vertices, polygons, offset = [], [], 0
    for k, block in enumerate(points):
        v = np.array(block.replace(b",", b" ").split(), np.float64)
        if v.size % 3:
            raise ScanFormatError(f"{path}: a point list has {v.size} numbers (not x y z triples)")
        v = v.reshape(-1, 3)
        if k < len(indices):
            flat = np.array(indices[k].replace(b",", b" ").split(), np.int64)
            poly = []
            for i in flat:
                if i < 0:
                    if poly:
                        polygons.append([p + offset for p in poly])
                    poly = []
                else:
                    poly.append(int(i))
            if poly:
                polygons.append([p + offset for p in poly])
        vertices.append(v)
        offset += len(v)
    vertices = np.concatenate(vertices)
    return vertices, _checked(_fan(polygons), len(vertices), path)
