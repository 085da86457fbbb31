"""Builds `cpem_jax/face_model/data/mediapipe_ict.npz`: MediaPipe's 478 face-mesh points as fixed
points of the ICT-FaceKit face model (format and use: `cpem_jax/face_model/dense_landmarks.py`).

Method (once, from the two published meshes; no fitting to any image):
  1. MediaPipe's canonical face mesh (the mean face of its 468-point mesh model, in cm, shipped in
     face_landmarker.task, `detect.mediapipe_landmarker.canonical_face_mesh`) is brought onto
     ICT's neutral mean shape by the least-squares similarity (Umeyama) of the inner-face iBUG
     points both tables name (brows, nose, eyes, mouth: `IBUG68_FROM_MESH[17:68]` on the
     MediaPipe mesh, ICT's `idx_to_landmark_verts[17:68]`; the jaw is left out, the two tables
     define it differently).
  2. The lid and inner-lip contours, which decide blinks and mouth opening, are matched as
     curves: MediaPipe's eye contour (16 points, `FACE_LANDMARKS_{LEFT,RIGHT}_EYE`) goes onto
     ICT's lid-margin edge ring (the ring of vertices 2 edges from the eye opening, the ring that
     holds ICT's own eye landmarks), and MediaPipe's inner-lip contour (20 points) onto ICT's
     inner-lip rings (8 edges from the mouth opening for the upper lip, 7 for the lower, the
     rings of ICT's inner-lip landmarks). Each contour is split at its two corners into an upper
     and a lower arc, and each MediaPipe point takes the place at the same fraction of arc length
     on ICT's arc: a point on the segment between two neighbouring ring vertices.
  3. The chin: MediaPipe's mean face has a longer lower face than ICT's (its chin point 152
     lands about 1 cm below ICT's chin after step 1), so its lowest chin point is anchored on
     ICT's chin bottom, the midline vertex where the surface turns under the chin
     (`chin_vertex`).
  4. Every other mesh point is moved by a smooth warp (a thin-plate spline through the anchor
     displacements of steps 1-3, lightly smoothed) and then projected to the nearest point of
     ICT's full-area surface (a triangle and barycentric weights). Points further than
     `MAX_DISTANCE_CM` from the surface after the warp are marked invalid.
  5. The points of the nose, the lips (but the inner-lip contour) and the rest of the surface
     (not the brows, the lids or the face oval) move to where MediaPipe puts them on shaded
     renders of ICT faces: 8 faces (the mean and 7 random identities) in 15 poses (yaw
     -0.4..0.4, pitch -0.15..0.15 rad); each detection is carried back to the surface under it
     (front-most triangle, barycentric weights), over the renders where that surface faces the
     camera (normal z > 0.5, at least 10 renders), and the per-coordinate median of those points
     on the mean shape, made left-right symmetric, is projected to the surface. Without this
     step MediaPipe's points on a neutral render of ICT sit 2 % of the face size from the table
     (surface), and a landmark fit reads them as cheekPuff and mouthPress of 0.3-0.8 on a face
     with no expression. The renders have no eyes, brows or face outline that MediaPipe can rely
     on, so the lids, brows and oval keep their geometric placement.
  6. Iris points (468-477): ICT moves no iris vertex with its eyeLook* shapes (they only deform
     the lids), so the iris is placed on ICT's eyeball: the centre of a least-squares sphere
     through each sclera, the gaze straight ahead (ARKit's zero), and the limbus as
     the circle of radius 0.585 cm on that sphere (MediaPipe Iris: the horizontal iris diameter
     of the human eye is roughly constant at 11.7 mm). Point 468 / 473 is the limbus centre,
     469 / 474 the limbus point toward +x, then +y, -x, -y (the order measured on a frontal
     photo: the image right, up, left, down of the centre). These points follow identity
     (each identity mode's sphere and gaze axis) and rotate with the gaze units in the fit.

Checks written to the file and printed: the similarity's residual, the projection distances,
the symmetry of the result (mirror pairs of the MediaPipe mesh must land on mirror points of
ICT's symmetric mean shape), the distance of MediaPipe's 68 iBUG vertices from ICT's own 68
landmarks on the mean shape (the jaw is not an anchor: the two tables define it differently),
and MediaPipe run on 16 renders held out from step 5 (two other random identities, yaw +-0.1,
+-0.3 and pitch +-0.1 rad) against the table's points projected in the same views: the mean
distance per region in % of the face size, over the points whose surface faces the camera (the
renders have no eyes, brows or lip colour, so MediaPipe guesses those from shape alone; its face
oval on such renders moves with the view by several cm in 3D, which is why the oval is not taken
from renders). A picture goes to experiments/dense_fit/correspondence.png.

Run (from the repo root; needs mediapipe for its contour tables, scipy):
  CPEM_SHARED=/work/shared python benchmarks/build_mediapipe_ict.py
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict, deque
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cpem_jax.detect.mediapipe_mesh import (IBUG68_FROM_MESH, N_MESH,  # noqa: E402
                                            canonical_face_mesh)
from cpem_jax.detect.mediapipe_task import file_sha256, find_task  # noqa: E402
from cpem_jax.evaluation.geometry_error import umeyama  # noqa: E402
from cpem_jax.face_model import dense_landmarks as dl  # noqa: E402
from cpem_jax.face_model import ict  # noqa: E402
from cpem_jax.face_model.archive import ModelSource  # noqa: E402
from cpem_jax.face_model.obj_reader import read_polygons, read_vertices  # noqa: E402

FULL_AREA = ict.FACE_AREAS["full"]
# ICT's eyeball vertex ranges (ICT README, "Eyeball Details"): sclera and iris, left (+x) first.
SCLERA = {"left": (21451, 22221), "right": (23021, 23791)}
IRIS = {"left": (22221, 23021), "right": (23791, 24591)}
IRIS_RADIUS_CM = 0.585   # MediaPipe Iris: horizontal iris diameter 11.7 mm.
LID_RING = 2             # ICT's eye landmarks lie 2 edges from the eye opening.
LIP_RINGS = {"upper": 8, "lower": 7}  # ICT's inner-lip landmarks: 61-63 ring 8, 65-67 ring 7.
MAX_DISTANCE_CM = 1.0
WARP_SMOOTHING = 1e-3
INNER_IBUG = np.arange(17, 68)


# -- MediaPipe contours ------------------------------------------------------------------------

def _mp_connections():
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C
    as_pairs = lambda name: [(c.start, c.end) for c in getattr(C, name)]
    return {name: as_pairs(f"FACE_LANDMARKS_{name.upper()}") for name in (
        "left_eye", "right_eye", "lips", "left_eyebrow", "right_eyebrow", "nose", "face_oval")}


def mp_arcs(connections, corners):
    """The two arcs of a closed MediaPipe contour (its edges) between its two corners, each a list
    of mesh point ids from corners[0] to corners[1]."""
    adj = defaultdict(list)
    for a, b in connections:
        adj[a].append(b)
        adj[b].append(a)
    if any(len(n) != 2 for n in adj.values()) or corners[0] not in adj:
        raise ValueError(f"the contour is not one closed loop through {corners}")
    arcs = []
    for first in adj[corners[0]]:
        arc, prev, cur = [corners[0]], corners[0], first
        while cur != corners[1]:
            arc.append(cur)
            prev, cur = cur, [n for n in adj[cur] if n != prev][0]
            if cur == corners[0]:
                raise ValueError(f"corner {corners[1]} is not on the contour")
        arcs.append(arc + [corners[1]])
    return arcs


# -- ICT rings -----------------------------------------------------------------------------------

def boundary_loops(triangles):
    count = defaultdict(int)
    for t in triangles:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            count[(min(a, b), max(a, b))] += 1
    adj = defaultdict(list)
    for (a, b), c in count.items():
        if c == 1:
            adj[a].append(b)
            adj[b].append(a)
    seen, loops = set(), []
    for s in adj:
        if s in seen:
            continue
        loop, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [n for n in adj[cur] if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return loops


def vertex_adjacency(triangles):
    adj = defaultdict(set)
    for t in triangles:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            adj[a].add(b)
            adj[b].add(a)
    return adj


def ring(adj, sources, k):
    """Vertices exactly k edges from `sources`."""
    dist = {s: 0 for s in sources}
    queue = deque(sources)
    while queue:
        u = queue.popleft()
        if dist[u] >= k:
            continue
        for v in adj[u]:
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return [v for v, d in dist.items() if d == k]


def ict_arc(vertices, ring_ids, centre, corner_a, corner_b, upper: bool):
    """The ring's vertices from the one nearest corner_a to the one nearest corner_b, over the
    upper (or lower) side, ordered by angle about `centre` in the frontal (x, y) plane."""
    ids = np.asarray(ring_ids)
    angle = np.arctan2(vertices[ids, 1] - centre[1], vertices[ids, 0] - centre[0])
    ids = ids[np.argsort(angle)]
    ang = np.sort(angle)
    near = lambda p: int(np.argmin(np.linalg.norm(vertices[ids] - p, axis=1)))
    ia, ib = near(corner_a), near(corner_b)
    # Walk from a to b in increasing angle, and the other way; keep the side asked for.
    n = len(ids)
    forward = [ids[(ia + s) % n] for s in range((ib - ia) % n + 1)]
    backward = [ids[(ia - s) % n] for s in range((ia - ib) % n + 1)]
    mean_y = lambda arc: vertices[arc, 1].mean()
    arc = max(forward, backward, key=mean_y) if upper else min(forward, backward, key=mean_y)
    del ang
    return np.asarray(arc)


def arc_fractions(points):
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return cum / cum[-1]


def place_on_arc(vertices, arc, fraction):
    """A point at `fraction` of the arc length of ICT vertex chain `arc` -> (ids [2], w [2])."""
    frac = arc_fractions(vertices[arc])
    j = int(np.clip(np.searchsorted(frac, fraction, side="right") - 1, 0, len(arc) - 2))
    t = (fraction - frac[j]) / max(frac[j + 1] - frac[j], 1e-12)
    t = float(np.clip(t, 0.0, 1.0))
    return np.array([arc[j], arc[j + 1]]), np.array([1.0 - t, t])


# -- closest point on a triangle mesh ----------------------------------------------------------

def closest_point_on_triangles(p, a, b, c):
    """Closest points of triangles (a, b, c) [T, 3] to p [3] -> (barycentric [T, 3], dist [T]).

    Ericson, Real-Time Collision Detection, 5.1.5 (vectorised over triangles).
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    bary = np.zeros((len(a), 3))
    denom = np.where(np.abs(va + vb + vc) > 1e-20, va + vb + vc, 1e-20)
    v, w = vb / denom, vc / denom
    bary[:] = np.stack([1 - v - w, v, w], 1)
    # Edge and vertex regions (order as in Ericson).
    cases = [
        ((d1 <= 0) & (d2 <= 0), lambda: np.array([1.0, 0, 0])),
        ((d3 >= 0) & (d4 <= d3), lambda: np.array([0, 1.0, 0])),
        ((d6 >= 0) & (d5 <= d6), lambda: np.array([0, 0, 1.0])),
    ]
    done = np.zeros(len(a), bool)
    for mask, value in cases:
        m = mask & ~done
        bary[m] = value()
        done |= m
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0) & ~done
    t = d1 / np.where(d1 - d3 != 0, d1 - d3, 1e-20)
    bary[m] = np.stack([1 - t, t, 0 * t], 1)[m]
    done |= m
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0) & ~done
    t = d2 / np.where(d2 - d6 != 0, d2 - d6, 1e-20)
    bary[m] = np.stack([1 - t, 0 * t, t], 1)[m]
    done |= m
    m = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0) & ~done
    t = (d4 - d3) / np.where((d4 - d3) + (d5 - d6) != 0, (d4 - d3) + (d5 - d6), 1e-20)
    bary[m] = np.stack([0 * t, 1 - t, t], 1)[m]
    q = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
    return bary, np.linalg.norm(q - p, axis=1)


def project_to_surface(points, vertices, triangles):
    """points [P, 3] -> (triangle vertex ids [P, 3], barycentric [P, 3], distance [P])."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    ids, weights, dist = [], [], []
    for p in points:
        bary, d = closest_point_on_triangles(p, a, b, c)
        best = int(np.argmin(d))
        ids.append(triangles[best])
        weights.append(bary[best])
        dist.append(d[best])
    return np.asarray(ids), np.asarray(weights), np.asarray(dist)


# -- eyes -----------------------------------------------------------------------------------------

def sphere_fit(points):
    """Least-squares sphere through points [M, 3] -> (centre [3], radius)."""
    a = np.concatenate([2 * points, np.ones((len(points), 1))], axis=1)
    b = (points ** 2).sum(1)
    sol = np.linalg.lstsq(a, b, rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def eye_points(mesh, side):
    """(eyeball centre [3], iris points [5, 3]: limbus centre, +x, +y, -x, -y) of one eye.

    The rest gaze (all eyeLook* weights 0) looks straight ahead (+z), the eyes parallel, as
    ARKit's zero: ICT's eyeball meshes turn their corneas about 7 degrees outward (the bulge of
    the sclera), which would read a face looking into the camera as eyeLookIn of about 0.25.
    """
    sclera = mesh[slice(*SCLERA[side])]
    centre, radius = sphere_fit(sclera)
    gaze = np.array([0.0, 0.0, 1.0])
    theta = np.arcsin(IRIS_RADIUS_CM / radius)
    limbus = centre + radius * np.cos(theta) * gaze
    e1 = np.cross([0.0, 1.0, 0.0], gaze)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(gaze, e1)
    rho = IRIS_RADIUS_CM
    return centre, np.stack([limbus, limbus + rho * e1, limbus + rho * e2, limbus - rho * e1,
                             limbus - rho * e2])


# -- renders ----------------------------------------------------------------------------------

RENDER_SIZE = 512
RENDER_YAWS = (-0.4, -0.2, 0.0, 0.2, 0.4)
RENDER_PITCHES = (-0.15, 0.0, 0.15)
CHIN_MP = 152            # MediaPipe's lowest chin point (iBUG 8 in IBUG68_FROM_MESH).
CHIN_SEARCH_BELOW = -6.0  # cm: the midline below the mouth.
REFINE_REGIONS = ("surface", "nose", "lips")
REFINE_IDENTITIES = 8
REFINE_FACING = 0.5
REFINE_MIN_VIEWS = 10
CHECK_YAWS = (-0.3, -0.1, 0.1, 0.3)
CHECK_PITCHES = (-0.1, 0.1)
CHECK_IDENTITIES = 2
SEEN_FACING = 0.3   # A point counts as seen in a view where its normal's camera z is above this.


def _normals(vertices, triangles):
    face = np.cross(vertices[triangles[:, 1]] - vertices[triangles[:, 0]],
                    vertices[triangles[:, 2]] - vertices[triangles[:, 0]])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def paint_mesh(vertices, triangles, rotation, size=RENDER_SIZE):
    """A shaded render of a mesh turned by `rotation` [3, 3] (painter's algorithm, skin colour,
    a light from above the camera) -> (image [size, size, 3] uint8, uv [V, 2], depth [V],
    camera-space normals [V, 3])."""
    import cv2
    import jax.numpy as jnp

    from cpem_jax.geometry.camera import crop_camera, project, transform

    camera = crop_camera(size)
    cam_pts = transform(jnp.asarray(vertices, jnp.float32), jnp.asarray(rotation, jnp.float32),
                        jnp.zeros(3), camera)
    uv, depth = (np.asarray(a, np.float64) for a in project(camera, cam_pts))
    n_cam = _normals(vertices, triangles) @ np.asarray(rotation).T
    light = np.array([0.0, 0.5, 1.0]) / np.linalg.norm([0.0, 0.5, 1.0])
    shade = 0.35 + 0.65 * np.clip(n_cam @ light, 0, None)
    colour = np.clip(np.array([0.80, 0.62, 0.52])[None] * shade[:, None], 0, 1) ** (1 / 2.2)
    facing = n_cam[triangles, 2].mean(1) > 0
    order = np.argsort(-depth[triangles].mean(1))
    image = np.full((size, size, 3), 60, np.uint8)
    pts = np.round(uv * 16 - 8).astype(np.int32)
    tri_colour = (colour[triangles].mean(1) * 255).astype(np.int32)
    for t in order:
        if facing[t]:
            cv2.fillConvexPoly(image, pts[triangles[t]], tuple(int(c) for c in tri_colour[t]),
                               cv2.LINE_AA, 4)
    return image, uv, depth, n_cam


def render_views(vertices, triangles, landmarks, yaws=RENDER_YAWS, pitches=RENDER_PITCHES):
    """Shaded renders of a mesh in yaws x pitches (radians) with MediaPipe's 478 points detected
    in each: a list of dicts (image, uv [V, 2], depth [V], normals_cam [V, 3], detected
    [478, 2], presence, rotation [3, 3])."""
    import jax.numpy as jnp

    from cpem_jax.detect.mediapipe_landmarker import MediaPipeLandmarker
    from cpem_jax.geometry.rotation import euler_to_matrix

    views = []
    with MediaPipeLandmarker() as landmarker:
        for yaw in yaws:
            for pitch in pitches:
                rot = np.asarray(euler_to_matrix(jnp.asarray([pitch, yaw, 0.0])), np.float64)
                image, uv, depth, n_cam = paint_mesh(vertices, triangles, rot)
                lm = uv[landmarks]
                box = np.array([[*lm.min(0), *lm.max(0)]])
                detected, presence = landmarker.mesh_in_boxes(image, box)
                views.append({"image": image, "uv": uv, "depth": depth, "normals_cam": n_cam,
                              "detected": detected[0].astype(np.float64),
                              "presence": float(presence[0]), "rotation": rot})
    return views


def back_project(q, uv, depth, triangles, front):
    """The front-most surface point under pixel q [2] -> (triangle index, barycentric [3]) or
    None."""
    a, b, c = (uv[triangles[:, i]] for i in range(3))
    v0, v1, v2 = b - a, c - a, q - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    w0 = 1 - w1 - w2
    inside = ok & front & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    if not inside.any():
        return None
    z = (np.stack([w0, w1, w2], 1) * depth[triangles]).sum(1)
    best = int(np.argmin(np.where(inside, z, np.inf)))
    return best, np.array([w0[best], w1[best], w2[best]])


def renders_of_identities(vertices, triangles, landmarks, identity_deltas, count, seed, yaws,
                          pitches):
    """render_views of `count` faces: the mean (seed 0 only) and random N(0, 1) identities."""
    rng = np.random.default_rng(seed)
    views = []
    for r in range(count):
        weights = (np.zeros(len(identity_deltas)) if (r == 0 and seed == 0)
                   else rng.normal(0.0, 1.0, len(identity_deltas)))
        mesh = vertices + np.einsum("kvc,k->vc", identity_deltas, weights)
        views += render_views(mesh, triangles, landmarks, yaws, pitches)
    return views


def refine_from_renders(views, vertices, triangles, points):
    """{mesh point: 3D point on the mean shape} for `points`: the mean, over the renders where
    the point's surface faces the camera (normal z > REFINE_FACING), of the surface location
    under MediaPipe's detection, carried to the mean shape by its triangle and barycentric
    weights; points seen in fewer than REFINE_MIN_VIEWS renders are left out."""
    hits = defaultdict(list)
    for view in views:
        if view["presence"] < 0.5:
            continue
        front = view["normals_cam"][triangles, 2].mean(1) > 0
        for p in points:
            hit = back_project(view["detected"][p], view["uv"], view["depth"], triangles, front)
            if hit is None:
                continue
            t, w = hit
            normal = (view["normals_cam"][triangles[t]] * w[:, None]).sum(0)
            if normal[2] / np.linalg.norm(normal) <= REFINE_FACING:
                continue
            hits[p].append((vertices[triangles[t]] * w[:, None]).sum(0))
    # The per-coordinate median: robust to the odd detection that lands across a fold.
    return {p: np.median(np.asarray(h), axis=0) for p, h in hits.items()
            if len(h) >= REFINE_MIN_VIEWS}


def symmetrize(points, mirror, mirror_error):
    """{point: 3D} -> each point averaged with its mirror point's mirror image (x -> -x), where
    both are present (ICT's mean shape and MediaPipe's mesh are left-right symmetric)."""
    flip = np.array([-1.0, 1.0, 1.0])
    out = {}
    for p, x in points.items():
        q = int(mirror[p])
        out[p] = (x + points[q] * flip) / 2 if (q in points and mirror_error[p] < 0.05) else x
    return out


def chin_vertex(vertices, triangles):
    """ICT's chin bottom: going down ICT's midline from the mouth, the first vertex whose normal
    points within 15 degrees of straight down (the fold between the chin's front and its
    underside, where the chin's outline lies in a frontal view)."""
    normals = _normals(vertices, triangles)
    mid = np.flatnonzero((np.abs(vertices[:, 0]) < 0.05) & (vertices[:, 1] < CHIN_SEARCH_BELOW))
    mid = mid[np.argsort(-vertices[mid, 1])]
    down = mid[normals[mid, 1] < -np.cos(np.radians(15.0))]
    if not len(down):
        raise ValueError("no chin fold on the midline")
    return int(down[0])


def render_agreement(views, points, normals, region, valid):
    """Mean distance (% of sqrt(w * h) of the detected mesh's box) between MediaPipe's detections
    on the renders and the table's points projected in the same view, per region, over points
    seen in the view; iris excluded (the renders have no eyes)."""
    errors = defaultdict(list)
    for view in views:
        if view["presence"] < 0.5:
            continue
        det = view["detected"][:N_MESH]
        box = np.concatenate([det.min(0), det.max(0)])
        face = np.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        seen = (normals @ view["rotation"].T)[:, 2] > SEEN_FACING
        uv = project_points(points, view["rotation"])
        for p in np.flatnonzero(valid[:N_MESH] & seen):
            errors[dl.REGIONS[int(region[p])]].append(np.linalg.norm(uv[p] - det[p]) / face)
    return {name: round(100 * float(np.mean(e)), 2) for name, e in errors.items()}


def project_points(points, rotation, size=RENDER_SIZE):
    import jax.numpy as jnp

    from cpem_jax.geometry.camera import crop_camera, project, transform
    camera = crop_camera(size)
    cam = transform(jnp.asarray(points, jnp.float32), jnp.asarray(rotation, jnp.float32),
                    jnp.zeros(3), camera)
    return np.asarray(project(camera, cam)[0], np.float64)


# -- build ------------------------------------------------------------------------------------------

def mesh_regions(conn):
    """[468] int8 region index (`dense_landmarks.REGIONS`) of each mesh point, from MediaPipe's
    contour tables; later labels win (face oval, nose, brows, lips, eyes)."""
    region = np.full(N_MESH, dl.REGIONS.index("surface"), np.int8)
    flat = lambda edges: sorted({v for e in edges for v in e})
    for names, label in ((("face_oval",), "contour"), (("nose",), "nose"),
                         (("left_eyebrow", "right_eyebrow"), "brows"), (("lips",), "lips"),
                         (("left_eye", "right_eye"), "eyelids")):
        for name in names:
            region[flat(conn[name])] = dl.REGIONS.index(label)
    return region


def mirror_table(vertices):
    """Index of each vertex's mirror image (x -> -x) in the same mesh (nearest vertex)."""
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(vertices[None] - mirrored[:, None], axis=2)
    return np.argmin(d, axis=1), d.min(axis=1)


def build(ict_path: str, task_path: str):
    source = ModelSource(ict_path, ict.INDEX_FILE, ict.FIX_HINT)
    index = json.loads(source.read(ict.INDEX_FILE))
    landmarks = np.asarray(index["idx_to_landmark_verts"], np.int64)
    neutral_bytes = source.read(ict.NEUTRAL_FILE)
    neutral_all = read_vertices(neutral_bytes, ict.NEUTRAL_FILE).astype(np.float64)
    triangles = ict._area_triangles(read_polygons(neutral_bytes, ict.NEUTRAL_FILE), FULL_AREA)
    vertices = neutral_all[:FULL_AREA]
    identity_files = sorted(f for f in source.list(ict.MODEL_DIR)
                            if ict.IDENTITY_PATTERN.match(f))
    identity_meshes = [read_vertices(source.read(f"{ict.MODEL_DIR}/{f}"), f).astype(np.float64)
                       for f in identity_files]
    identity_deltas = np.stack([mesh[:FULL_AREA] - vertices for mesh in identity_meshes])
    canon, _ = canonical_face_mesh(task_path)
    conn = _mp_connections()
    region = mesh_regions(conn)

    # 1. Similarity on the inner-face iBUG points.
    sim = umeyama(canon[IBUG68_FROM_MESH[INNER_IBUG]], vertices[landmarks[INNER_IBUG]])
    moved = sim.apply(canon)
    sim_residual = np.linalg.norm(moved[IBUG68_FROM_MESH[INNER_IBUG]]
                                  - vertices[landmarks[INNER_IBUG]], axis=1)

    # 2. Contours as curves.
    adj = vertex_adjacency(triangles)
    loops = boundary_loops(triangles)
    centroid = lambda loop: vertices[loop].mean(0)
    fixed = {}  # mesh point -> (ICT ids [2], weights [2])
    contours = [
        # (MediaPipe edges, MP corners (outer, inner), ICT iBUG corners, rings)
        (conn["right_eye"], (33, 133), (36, 39), {"upper": LID_RING, "lower": LID_RING}),
        (conn["left_eye"], (263, 362), (45, 42), {"upper": LID_RING, "lower": LID_RING}),
        ([e for e in conn["lips"] if e[0] in INNER_LIP_MP and e[1] in INNER_LIP_MP], (78, 308),
         (60, 64), LIP_RINGS),
    ]
    for edges, mp_corners, ict_corners, rings in contours:
        corner_pts = vertices[landmarks[list(ict_corners)]]
        hole = min(loops, key=lambda lp: np.linalg.norm(centroid(lp) - corner_pts.mean(0)))
        arcs = mp_arcs(edges, mp_corners)
        upper_first = canon[arcs[0][1:-1], 1].mean() > canon[arcs[1][1:-1], 1].mean()
        named = dict(zip(("upper", "lower") if upper_first else ("lower", "upper"), arcs))
        for side in ("upper", "lower"):
            mp_arc = named[side]
            ring_ids = ring(adj, hole, rings[side])
            ict_chain = ict_arc(vertices, ring_ids, centroid(hole), corner_pts[0], corner_pts[1],
                                upper=side == "upper")
            frac = arc_fractions(moved[mp_arc])
            for point, f in zip(mp_arc, frac):
                ids, w = place_on_arc(vertices, ict_chain, f)
                if point in fixed and side == "lower":
                    continue  # Corners: placed by the upper arc already.
                fixed[point] = (ids, w)

    def point_of(ids, w):
        return (vertices[ids] * w[:, None]).sum(0)

    # 3. The chin: MediaPipe's lowest chin point onto ICT's chin bottom.
    chin = chin_vertex(vertices, triangles)

    # 4. Warp through the anchors, then project.
    keep = {int(p): vertices[v] for p, v in zip(IBUG68_FROM_MESH[INNER_IBUG],
                                                 landmarks[INNER_IBUG])}
    keep.update({int(p): point_of(*fixed[p]) for p in fixed})  # Contours win.
    keep[CHIN_MP] = vertices[chin]
    anchor_mp = np.asarray(list(keep))
    anchor_target = np.asarray([keep[p] for p in anchor_mp])
    from scipy.interpolate import RBFInterpolator
    warp = RBFInterpolator(moved[anchor_mp], anchor_target - moved[anchor_mp],
                           kernel="thin_plate_spline", smoothing=WARP_SMOOTHING)
    warped = moved + warp(moved)
    warped[CHIN_MP] = vertices[chin]
    tri_ids, bary, dist = project_to_surface(warped, vertices, triangles)
    for p, (ids, w) in fixed.items():
        tri_ids[p] = [ids[0], ids[1], ids[1]]
        bary[p] = [w[0], w[1], 0.0]
        dist[p] = 0.0
    valid = dist <= MAX_DISTANCE_CM

    # 5. Surface, nose and lip points where MediaPipe puts them on renders of ICT faces.
    refine_views = renders_of_identities(vertices, triangles, landmarks, identity_deltas,
                                         REFINE_IDENTITIES, 0, RENDER_YAWS, RENDER_PITCHES)
    movable = [p for p in range(N_MESH) if dl.REGIONS[int(region[p])] in REFINE_REGIONS
               and p not in fixed and p != CHIN_MP and valid[p]]
    mirror, mirror_err = mirror_table(canon)
    refined = symmetrize(refine_from_renders(refine_views, vertices, triangles, movable),
                         mirror, mirror_err)
    if refined:
        ids_r, bary_r, dist_r = project_to_surface(np.asarray(list(refined.values())), vertices,
                                                   triangles)
        for k, p in enumerate(refined):
            tri_ids[p], bary[p] = ids_r[k], bary_r[k]
    del refine_views

    # 6. Iris on ICT's eyeballs, with identity modes.
    centres, irises = [], []
    for mesh in [neutral_all] + identity_meshes:
        per_side = [eye_points(mesh, side) for side in ("left", "right")]
        centres.append(np.stack([c for c, _ in per_side]))
        # MediaPipe order: 468-472 the subject's right eye, 473-477 the left.
        irises.append(np.concatenate([per_side[1][1], per_side[0][1]]))
    centres, irises = np.stack(centres), np.stack(irises)

    region = np.concatenate([region, np.full(10, dl.REGIONS.index("iris"), np.int8)])

    # Eye aperture pairs (upper lid point, lower lid point) and corners, per eye, subject's
    # left first: the three middle points of each arc, paired in order from the outer corner.
    aperture, corners = [], []
    for edges, pair in ((conn["left_eye"], (263, 362)), (conn["right_eye"], (33, 133))):
        arcs = mp_arcs(edges, pair)
        up, lo = sorted(arcs, key=lambda a: -canon[a[1:-1], 1].mean())
        mid = lambda a: [a[len(a) // 2 - 1], a[len(a) // 2], a[len(a) // 2 + 1]]
        aperture.append(np.stack([mid(up), mid(lo)], axis=1))
        corners.append(pair)

    # Checks, on renders of held-out identities in poses between the refinement's.
    views = renders_of_identities(vertices, triangles, landmarks, identity_deltas,
                                  CHECK_IDENTITIES, 1, CHECK_YAWS, CHECK_PITCHES)
    ict_points = (vertices[tri_ids] * bary[..., None]).sum(1)
    sym = np.linalg.norm(ict_points * [-1, 1, 1] - ict_points[mirror], axis=1)
    ibug_dist = np.linalg.norm(ict_points[IBUG68_FROM_MESH] - vertices[landmarks], axis=1)
    checks = {
        "similarity_scale": sim.scale,
        "similarity_residual_cm_mean": float(sim_residual.mean()),
        "similarity_residual_cm_max": float(sim_residual.max()),
        "projection_distance_cm_mean": float(dist[~np.isin(np.arange(N_MESH), list(fixed))].mean()),
        "projection_distance_cm_max": float(dist.max()),
        "invalid_points": int((~valid).sum()),
        "mirror_error_cm_mean": float(sym[mirror_err < 0.05].mean()),
        "mirror_error_cm_max": float(sym[mirror_err < 0.05].max()),
        "ibug68_vs_ict_landmarks_cm_mean_jaw": float(ibug_dist[:17].mean()),
        "ibug68_vs_ict_landmarks_cm_mean_inner": float(ibug_dist[17:].mean()),
        "chin_vertex": int(chin),
        "points_refined_from_renders": len(refined),
        "render_agreement_percent_by_region": render_agreement(
            views, ict_points, (_normals(vertices, triangles)[tri_ids] * bary[..., None]).sum(1),
            region[:N_MESH], valid),
    }
    data = {
        "format_version": np.asarray(dl.FORMAT_VERSION),
        "vertex_ids": tri_ids.astype(np.int32),
        "vertex_weights": bary.astype(np.float32),
        "valid": valid,
        "region": region,
        "region_names": np.asarray(dl.REGIONS),
        "eye_centre": centres[0].astype(np.float32),
        "eye_centre_identity": np.moveaxis(centres[1:] - centres[0], 0, -1).astype(np.float32),
        "iris": irises[0].astype(np.float32),
        "iris_identity": np.moveaxis(irises[1:] - irises[0], 0, -1).astype(np.float32),
        "eye_aperture_pairs": np.asarray(aperture, np.int32),
        "eye_corners": np.asarray(corners, np.int32),
        "task_sha256": np.asarray(file_sha256(task_path)),
        "ict_area": np.asarray("full"),
        "method": np.asarray(__doc__.split("Checks written")[0].strip()),
        "checks": np.asarray(json.dumps(checks)),
    }
    point_normals = (_normals(vertices, triangles)[tri_ids] * bary[..., None]).sum(1)
    point_normals /= np.linalg.norm(point_normals, axis=1, keepdims=True)
    return data, checks, views, {"vertices": vertices, "triangles": triangles,
                                 "ict_points": ict_points, "point_normals": point_normals}


# The inner-lip contour of MediaPipe's mesh (FACE_LANDMARKS_LIPS is outer + inner lip; the inner
# loop runs through the mouth corners 78 and 308).
INNER_LIP_MP = {78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311,
                310, 415}


REGION_COLOURS = {"surface": (200, 200, 200), "contour": (255, 150, 0), "nose": (0, 210, 255),
                  "brows": (255, 0, 220), "eyelids": (0, 230, 0), "lips": (255, 30, 30),
                  "iris": (40, 90, 255)}


def picture(extra, data, views, path):
    """Three views of ICT's mean face with the 478 table points by region (dim: facing away),
    then one render with MediaPipe's detections (white) against the table's points (red)."""
    import cv2
    import jax.numpy as jnp

    from cpem_jax.geometry.rotation import euler_to_matrix

    vertices, triangles = extra["vertices"], extra["triangles"]
    points = np.concatenate([extra["ict_points"], data["iris"].astype(np.float64)])
    normals = np.concatenate([extra["point_normals"],
                              np.tile([0.0, 0.0, 1.0], (10, 1))])
    size, panel = 768, 420

    def crop(image, uv):
        lo, hi = uv.min(0), uv.max(0)
        centre, half = (lo + hi) / 2, 0.58 * (hi - lo).max()
        x0, y0 = (np.round(centre - half)).astype(int)
        side = int(round(2 * half))
        padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_CONSTANT,
                                    value=(60, 60, 60))
        return cv2.resize(padded[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side],
                          (panel, panel), interpolation=cv2.INTER_AREA)

    panels = []
    for yaw in (0.0, 0.7, -1.2):
        rot = np.asarray(euler_to_matrix(jnp.asarray([0.0, yaw, 0.0])), np.float64)
        image, _, _, _ = paint_mesh(vertices, triangles, rot, size)
        uv = project_points(points, rot, size)
        facing = (normals @ rot.T)[:, 2]
        for p in np.argsort(-facing):
            colour = REGION_COLOURS[dl.REGIONS[int(data["region"][p])]]
            if facing[p] < 0:
                colour = tuple(int(c * 0.45) for c in colour)
            cv2.circle(image, tuple(int(round(v)) for v in (uv[p] - 0.5) * 4), 9, colour, -1,
                       cv2.LINE_AA, shift=2)
        panels.append(crop(image, uv))
    view = views[len(views) // 2 + 1]   # Yaw 0.2, pitch 0.
    image = view["image"].copy()
    ours = project_points(points[:N_MESH], view["rotation"])
    for p in range(N_MESH):
        cv2.line(image, tuple(int(v) for v in ours[p]), tuple(int(v) for v in view["detected"][p]),
                 (255, 255, 0), 1, cv2.LINE_AA)
        cv2.circle(image, tuple(int(v) for v in ours[p]), 2, (255, 40, 40), -1, cv2.LINE_AA)
        cv2.circle(image, tuple(int(v) for v in view["detected"][p]), 2, (255, 255, 255), -1,
                   cv2.LINE_AA)
    panels.append(crop(image, ours))
    out = np.concatenate(panels, axis=1)
    cv2.imwrite(path, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("CPEM_SHARED", str(REPO.parent / "shared"))
    parser.add_argument("--ict", default=os.path.join(shared, "assets", "ICT-FaceKit-master.zip"))
    parser.add_argument("--task", default=None, help="face_landmarker.task (default lookup)")
    parser.add_argument("--out", default=dl.DATA_FILE)
    parser.add_argument("--picture", default=str(REPO / "experiments" / "dense_fit"
                                                 / "correspondence.png"))
    args = parser.parse_args(argv)
    task = find_task(args.task)
    data, checks, views, extra = build(args.ict, task)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out}")
    print(json.dumps(checks, indent=1))
    if args.picture:
        os.makedirs(os.path.dirname(args.picture), exist_ok=True)
        picture(extra, data, views, args.picture)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
