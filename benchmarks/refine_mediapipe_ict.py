"""Refines `cpem_jax/face_model/data/mediapipe_ict.npz` (MediaPipe's 478 points on ICT-FaceKit)
from fits of real video: step 7 of the table's method, after `build_mediapipe_ict.py`.

The build places the points from the two published meshes and from renders of ICT faces,
which have no eyes, brows or lip colour. Fitting real faces with that table leaves residuals
that are the same in every person (fits of 36 frames of each of 9 videos): MediaPipe's chin
point sits 3-5 pixels of a 224-pixel crop higher than the table's, its irises 1-2 pixels
further apart. This script moves each point to where real faces put it:

  1. Fit `--frames` evenly spread frames of each video with the current table (the default
     FitConfig, MediaPipe's points, one identity per video).
  2. Per mesh point, the offset d on ICT's mean shape, in the face's (x, y) plane, that best
     explains the residuals (detected - fitted, crop pixels) over the near-frontal frames
     (fitted |yaw| < `--max-yaw`): least squares of sum over frames of |J_f d - r_f|^2, J_f
     the 2x2 Jacobian of the projected point in frame f. The offsets are made left-right
     symmetric (mirror pairs of MediaPipe's mesh).
  3. Each point moves by its offset and goes back onto ICT's surface: an inner-lip point that
     lies on a ring of ICT's inner lip (two vertex ids) onto the nearest point of that ring, so
     that the mouth units keep closing it; every other point onto the nearest point of ICT's
     full-area surface. Each eye's five iris points move together by the offset of its iris
     centre (the rest gaze: where an iris sits when the eyeLook* units are 0).
     Two sets of points stay where the build put them:
     - the brows and the skin the brow units move (by more than `BROW_MOTION_CM` at weight
       1: the 20 brow points, 36 of the forehead and upper lids, 4 of the oval): people
       raise their brows as they talk, and the fitted brow units do not take all of it
       (sparsity), so these offsets measure the videos' expression as much as the table
       (moved, d0's resting brows read browInnerUp 0.15-0.40 instead of 0.07-0.14);
     - the lids and eye corners (`FIXED_REGIONS`): the fit's eye-opening terms were measured
       with the built lids (`fit.objective`), and moved lids read shut eyes 0.03-0.1 lower in
       eyeBlink (two labelled shut eyes fell under 0.5).
  4. Repeat `--rounds` times (the identity absorbs part of a table error; a second round
     moves the rest).

The videos must not be the ones the labels of `experiments/labels` come from: the default is
the seven videos of `data/videos-more` without labels. The method text and the per-round
residuals go into the table's `method` and `checks` entries.

Run (from the repo root; about 6 minutes per round on 2 CPU cores, and as long again for the
final check):
  CPEM_SHARED=/work/shared python benchmarks/refine_mediapipe_ict.py
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_mediapipe_ict import (FULL_AREA, boundary_loops, mirror_table,  # noqa: E402
                                 paint_mesh, project_points, project_to_surface, ring,
                                 vertex_adjacency)
from cpem_jax.detect.mediapipe_mesh import N_MESH, canonical_face_mesh  # noqa: E402
from cpem_jax.detect.mediapipe_task import find_task  # noqa: E402
from cpem_jax.face_model import dense_landmarks as dl  # noqa: E402
from cpem_jax.face_model import ict  # noqa: E402
from cpem_jax.face_model.archive import ModelSource  # noqa: E402
from cpem_jax.face_model.obj_reader import read_polygons, read_vertices  # noqa: E402

UNLABELLED = ("liveportrait_s13", "liveportrait_s18", "liveportrait_s20", "liveportrait_s29",
              "retalking_1", "retalking_2", "retalking_3")
FIXED_REGIONS = ("brows", "eyelids")  # Step 3: left where the build put them.
BROW_MOTION_CM = 0.2  # Step 3: points a brow unit moves further than this stay too.
MAX_RING = 12  # The deepest ring searched for a two-vertex point (the lips use 7 and 8).
STEP_SECTION = "Step 7 (benchmarks/refine_mediapipe_ict.py):"


def read_full_area(ict_path):
    """ICT's neutral mean shape and triangles on the full face area (the table's topology)."""
    source = ModelSource(ict_path, ict.INDEX_FILE, ict.FIX_HINT)
    neutral = source.read(ict.NEUTRAL_FILE)
    vertices = read_vertices(neutral, ict.NEUTRAL_FILE).astype(np.float64)[:FULL_AREA]
    triangles = ict._area_triangles(read_polygons(neutral, ict.NEUTRAL_FILE), FULL_AREA)
    return vertices, triangles


def ring_edges(vertices, triangles, pairs):
    """For each two-vertex point (a, b), the edges of the ring around the nearest mesh opening
    that holds both a and b -> list of [E, 2] vertex id arrays (None where no ring holds
    them)."""
    adj = vertex_adjacency(triangles)
    loops = boundary_loops(triangles)
    centres = np.stack([vertices[loop].mean(0) for loop in loops])
    cache, out = {}, []
    for a, b in pairs:
        hole = int(np.argmin(np.linalg.norm(centres - vertices[a], axis=1)))
        found = None
        for k in range(1, MAX_RING + 1):
            if (hole, k) not in cache:
                members = set(ring(adj, loops[hole], k))
                cache[hole, k] = (members, np.asarray(
                    [(u, v) for u in members for v in adj[u] if v in members and u < v]))
            members, edges = cache[hole, k]
            if a in members and b in members:
                found = edges
                break
        out.append(found)
    return out


def nearest_on_edges(point, vertices, edges):
    """The nearest point to `point` [3] on segments `edges` [E, 2] -> (ids [2], weights [2])."""
    a, b = vertices[edges[:, 0]], vertices[edges[:, 1]]
    ab = b - a
    t = np.clip(((point - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0.0, 1.0)
    d = np.linalg.norm(a + t[:, None] * ab - point, axis=1)
    k = int(np.argmin(d))
    return edges[k], np.array([1.0 - t[k], t[k]])


def fit_videos(videos, table_path, frames_per_video, progress=True):
    """Fits `frames_per_video` evenly spread frames of each video with the table at
    `table_path` -> list of (detected dense [N, P, 2], SequenceFit, fitter)."""
    import label_check as lc  # noqa: E402  (the window writer of the label benchmark)

    from cpem_jax.detect import make_landmarker
    from cpem_jax.detect.crop import CropConfig
    from cpem_jax.detect.pipeline import NoFaceError, detect_and_crop
    from cpem_jax.face_model import load_face_model
    from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
    from cpem_jax.fit.fitter import FitConfig, SequenceFitter

    model = load_face_model(None)
    dense = dense_landmarks_for(model, table_path)
    config = FitConfig()
    fitter = SequenceFitter(model, config, dense=dense)
    landmarker = make_landmarker("mediapipe")
    fits = []
    for video in videos:
        count = lc.frame_count(video)
        if count < 1:
            sys.exit(f"refine_mediapipe_ict: cannot read frames of {video}; pass readable "
                     f"videos with --videos")
        wanted = sorted(set(np.linspace(0, count - 1, frames_per_video).astype(int).tolist()))
        with tempfile.TemporaryDirectory(prefix="refine_ict_") as folder:
            lc.write_window_folder(video, wanted, folder)
            try:
                tracked = detect_and_crop(folder, landmarker, CropConfig(size=config.size),
                                          progress=False)
            except NoFaceError as err:
                sys.exit(f"refine_mediapipe_ict: {video}: {err}; pass videos that show a face "
                         f"with --videos")
        found = tracked.found
        detected = tracked.crop_dense()[found]
        result = fitter.fit(tracked.crops[found], tracked.crop_landmarks()[found],
                            progress=False, dense=detected)
        fits.append((detected, result, fitter))
        if progress:
            print(f"  fitted {int(found.sum())} frames of {os.path.basename(video)}", flush=True)
    return fits


def point_offsets(fits, max_yaw_deg):
    """Per point, the (x, y) offset [P, 2] (cm, model space) of step 2, the number of frames
    that constrain it [P], and the rms residual (crop pixels) over those frames."""
    import jax
    import jax.numpy as jnp

    from cpem_jax.fit.params import to_coefficients
    from cpem_jax.losses.landmark import project_dense

    n_points = fits[0][2].dense.n_points
    normal = np.zeros((n_points, 2, 2))
    rhs = np.zeros((n_points, 2))
    count = np.zeros(n_points)
    squared = 0.0
    for detected, result, fitter in fits:
        dense = fitter.dense
        coeffs = to_coefficients(jax.tree_util.tree_map(jnp.asarray, result.shared),
                                 jax.tree_util.tree_map(jnp.asarray, result.frames))

        def projected(delta, dense=dense, coeffs=coeffs, camera=fitter.camera):
            moved = dense.replace(mean=dense.mean + jnp.pad(delta, ((0, 0), (0, 1))))
            return project_dense(moved, coeffs, camera)

        zero = jnp.zeros((n_points, 2))
        base = np.asarray(projected(zero), np.float64)
        jac = np.stack([np.asarray(jax.jvp(projected, (zero,), (zero.at[:, k].set(1.0),))[1])
                        for k in range(2)], axis=-1)                          # [N, P, 2, 2]
        residual = np.asarray(detected, np.float64) - base
        yaw = np.degrees(np.abs(np.asarray(result.frames.rotation)[:, 1]))
        use = (np.isfinite(residual).all(-1) & (yaw[:, None] < max_yaw_deg)
               & np.asarray(dense.valid)[None])
        residual = np.where(use[..., None], residual, 0.0)
        jac = np.where(use[..., None, None], jac, 0.0)
        normal += np.einsum("npik,npil->pkl", jac, jac)
        rhs += np.einsum("npik,npi->pk", jac, residual)
        count += use.sum(0)
        squared += float((residual ** 2).sum())
    offsets = np.zeros((n_points, 2))
    for p in np.flatnonzero(count > 0):
        offsets[p] = np.linalg.solve(normal[p] + 1e-6 * np.eye(2), rhs[p])
    rms = float(np.sqrt(squared / max(count.sum(), 1)))
    return offsets, count, rms


def symmetric(offsets, count, mirror, mirror_error):
    """Each point's offset averaged with its mirror point's, x mirrored: mesh points by
    `mirror` (where `mirror_error` < 0.05 cm), iris points with the other eye's."""
    out = offsets.copy()
    pairs = [(p, int(mirror[p])) for p in range(N_MESH) if mirror_error[p] < 0.05]
    pairs += list(zip(dl.IRIS_POINTS[1], dl.IRIS_POINTS[0]))
    pairs += [(q, p) for p, q in pairs[-5:]]
    for p, q in pairs:
        if p < len(out) and q < len(out) and count[p] > 0 and count[q] > 0:
            out[p] = (offsets[p] + offsets[q] * np.array([-1.0, 1.0])) / 2
    return out


def brow_zone(dense, expression_names):
    """[N_MESH] bool: the mesh points some brow unit moves by more than BROW_MOTION_CM at
    weight 1 (`dense`: the table's DenseLandmarks on the model)."""
    brow = [k for k, name in enumerate(expression_names) if name.startswith("brow")]
    basis = np.asarray(dense.exp_basis)[:N_MESH][:, :, brow]                  # [P, 3, B]
    return np.linalg.norm(basis, axis=1).max(axis=1, initial=0.0) > BROW_MOTION_CM


def _points(vertices, ids, weights):
    """Points of vertex ids [P, 3] with barycentric weights [P, 3] -> [P, 3]."""
    return (vertices[ids] * weights[..., None]).sum(1)


def move_points(table, offsets, count, vertices, triangles, keep=None):
    """The table with each constrained mesh point moved (step 3), but the points of
    `FIXED_REGIONS` and those where `keep` [N_MESH] bool is set; returns (table, distance each
    point moved on the mean shape [N_MESH] cm)."""
    ids = np.asarray(table["vertex_ids"], np.int64).copy()
    weights = np.asarray(table["vertex_weights"], np.float64).copy()
    before = _points(vertices, ids, weights)
    target = before.copy()
    target[:, :2] += offsets[:N_MESH]
    region = np.asarray(table["region"])[:N_MESH]
    fixed = np.isin(region, [dl.REGIONS.index(name) for name in FIXED_REGIONS])
    if keep is not None:
        fixed |= np.asarray(keep, bool)
    moving = np.flatnonzero((count[:N_MESH] > 0) & table["valid"].astype(bool) & ~fixed)
    on_ring = [p for p in moving if weights[p, 2] == 0
               and dl.REGIONS[int(table["region"][p])] in ("eyelids", "lips")]
    rings = (ring_edges(vertices, triangles, [(ids[p, 0], ids[p, 1]) for p in on_ring])
             if on_ring else [])
    for p, edges in zip(on_ring, rings):
        if edges is None:
            continue
        pair, w = nearest_on_edges(target[p], vertices, edges)
        ids[p] = [pair[0], pair[1], pair[1]]
        weights[p] = [w[0], w[1], 0.0]
    free = [p for p in moving if p not in set(on_ring)]
    if free:
        tri, bary, _ = project_to_surface(target[free], vertices, triangles)
        ids[free], weights[free] = tri, bary
    after = _points(vertices, ids, weights)
    out = dict(table)
    out["vertex_ids"] = ids.astype(np.int32)
    out["vertex_weights"] = weights.astype(np.float32)
    iris = np.asarray(table["iris"], np.float64).copy()                  # [10, 3], from 468
    for points in dl.IRIS_POINTS.values():
        centre = points[0]
        if len(count) > centre and count[centre] > 0:
            iris[np.asarray(points) - N_MESH, :2] += offsets[centre]
    out["iris"] = iris.astype(np.float32)
    return out, np.linalg.norm(after - before, axis=1)


def table_points(table, vertices):
    """The table's mesh points on ICT's mean shape [N_MESH, 3]."""
    return _points(vertices, np.asarray(table["vertex_ids"], np.int64),
                   np.asarray(table["vertex_weights"], np.float64))


def picture(vertices, triangles, before, after, path, size=1024):
    """ICT's mean face, frontal, with each point's move (yellow line from the built place, red
    dot at the refined one), whole face and the subject's right eye enlarged."""
    import cv2

    rotation = np.eye(3)
    image, _, _, _ = paint_mesh(vertices, triangles, rotation, size)
    old, new = project_points(before, rotation, size), project_points(after, rotation, size)
    for a, b in zip(old, new):
        cv2.line(image, tuple(int(v) for v in a), tuple(int(v) for v in b), (255, 230, 0), 1,
                 cv2.LINE_AA)
        cv2.circle(image, tuple(int(v) for v in b), 2, (255, 40, 40), -1, cv2.LINE_AA)
    lo, hi = new.min(0), new.max(0)
    pad = 0.08 * (hi - lo).max()
    x0, y0 = np.maximum(lo - pad, 0).astype(int)
    x1, y1 = np.minimum(hi + pad, size).astype(int)
    face = cv2.resize(image[y0:y1, x0:x1], (600, int(600 * (y1 - y0) / (x1 - x0))))
    eye = new[[33, 133, 159, 145]]
    centre, half = eye.mean(0), 1.0 * np.ptp(eye[:, 0])
    ex0, ey0 = (centre - half).astype(int)
    ex1, ey1 = (centre + half).astype(int)
    zoom = cv2.resize(image[ey0:ey1, ex0:ex1], (face.shape[0], face.shape[0]),
                      interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate([face, zoom], axis=1), cv2.COLOR_RGB2BGR))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("CPEM_SHARED", str(REPO.parent / "shared"))
    more = os.path.join(shared, "data", "videos-more")
    parser.add_argument("--videos", nargs="+",
                        default=[os.path.join(more, v + ".mp4") for v in UNLABELLED])
    parser.add_argument("--table", default=dl.DATA_FILE, help="table to refine (read)")
    parser.add_argument("--out", default=dl.DATA_FILE, help="refined table (written)")
    parser.add_argument("--ict", default=os.path.join(shared, "assets", "ICT-FaceKit-master.zip"))
    parser.add_argument("--task", default=None, help="face_landmarker.task (default lookup)")
    parser.add_argument("--frames", type=int, default=36, help="frames fitted per video")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-yaw", type=float, default=25.0,
                        help="degrees; frames fitted beyond it do not count")
    parser.add_argument("--picture", default=str(REPO / "experiments" / "dense_fit"
                                                 / "correspondence_refined.png"))
    args = parser.parse_args(argv)
    missing = [v for v in args.videos if not os.path.isfile(v)]
    if missing:
        sys.exit(f"refine_mediapipe_ict: no video {missing[0]}; set CPEM_SHARED or pass "
                 f"--videos")
    table = dl.read_table(args.table)
    if STEP_SECTION in str(table["method"]):
        sys.exit(f"refine_mediapipe_ict: {args.table} is refined already; rebuild it with "
                 f"`python benchmarks/build_mediapipe_ict.py` first")
    vertices, triangles = read_full_area(args.ict)
    built = table_points(table, vertices)
    mirror, mirror_error = mirror_table(canonical_face_mesh(find_task(args.task))[0])
    rounds = []
    work = tempfile.mkdtemp(prefix="refine_ict_")
    current = args.table
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: fitting {len(args.videos)} videos", flush=True)
        fits = fit_videos(args.videos, current, args.frames)
        offsets, count, rms = point_offsets(fits, args.max_yaw)
        offsets = symmetric(offsets, count, mirror, mirror_error)
        fitter = fits[0][2]
        table, moved = move_points(table, offsets, count, vertices, triangles,
                                   keep=brow_zone(fitter.dense, fitter.model.expression_names))
        region = np.asarray(table["region"])[:N_MESH]
        by_region = {name: round(float(moved[region == k].mean()), 3)
                     for k, name in enumerate(dl.REGIONS) if np.any(region == k)}
        rounds.append({"rms_residual_px_before": round(rms, 3),
                       "moved_cm_mean_by_region": by_region,
                       "moved_cm_max": round(float(moved.max()), 3),
                       "iris_moved_cm_xy": {"subject_left": offsets[dl.IRIS_POINTS[0][0]].round(3)
                                            .tolist(),
                                            "subject_right": offsets[dl.IRIS_POINTS[1][0]]
                                            .round(3).tolist()}})
        print(f"  rms residual {rms:.3f} px; moved (cm, mean by region) {by_region}", flush=True)
        current = os.path.join(work, f"round{r + 1}.npz")
        np.savez_compressed(current, **table)
    fits = fit_videos(args.videos, current, args.frames)
    _, _, rms = point_offsets(fits, args.max_yaw)
    print(f"after {args.rounds} rounds: rms residual {rms:.3f} px", flush=True)
    checks = json.loads(str(table["checks"]))
    checks["refined_from_video"] = {
        "videos": [os.path.basename(v) for v in args.videos], "frames_per_video": args.frames,
        "max_yaw_deg": args.max_yaw, "rounds": rounds, "rms_residual_px_after": round(rms, 3)}
    steps = __doc__.split("put it:\n\n")[1].split("\n\nThe videos must not")[0]
    table["method"] = np.asarray(f"{table['method']}\n\n{STEP_SECTION} refined from fits of "
                                 f"real video.\n{steps}")
    table["checks"] = np.asarray(json.dumps(checks))
    np.savez_compressed(args.out, **table)
    print(f"wrote {args.out}")
    if args.picture:
        picture(vertices, triangles, built, table_points(table, vertices), args.picture)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
