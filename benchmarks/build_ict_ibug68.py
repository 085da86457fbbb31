"""Builds `cpem_jax/face_model/data/ict_ibug68_3d.npz`: the 68 iBUG points in the 3D convention
as vertices of ICT-FaceKit (format and use: `cpem_jax/face_model/ibug68_3d.py`).

Method: the convention's own definition. The 68 points of 300W-LP and AFLW2000-3D (Zhu et al.,
"Face Alignment Across Large Poses: A 3D Solution", CVPR 2016) are 68 fixed vertices of the
Basel Face Model (BFM) fitted to each image. 3DDFA's public release lists BFM's mean shape at
those vertices (`BFM_KEYPOINTS_URL`: 204 numbers, x y z of each point in iBUG order, BFM's
micrometres). The build
  1. reads those points (`--keypoints`, a file or the URL; offline it names where to put it),
  2. aligns them to ICT's mean shape by the similarity transform (rotation, one scale,
     translation; least squares) that best maps the 51 inner points (brows, nose, eyes, mouth:
     the same places of the face in both conventions) onto ICT's own landmark vertices of the
     same numbers,
  3. picks for each point a vertex of ICT's full face area near the aligned point, left-right
     symmetric: each mirror pair of iBUG points (the jaw's k and 16 - k, brows, eyes, nostrils,
     lips) takes the mirror pair of vertices of ICT's symmetric mean shape with the least sum
     of 3D distances to the two aligned points, each of the ten midline points the nearest
     midline vertex. The outer jaw keypoints (0-3, 13-16) lie 0.9-1.3 cm behind the edge of
     the narrow face area (the one the fit renders) and within 0.3 cm of vertices of the full
     area (which adds forehead, temples and under-chin; the first 6706 vertices are the
     narrow area's); a second choice on the narrow area alone serves narrow-only models.
No image is used, and no BFM data is stored: the table holds ICT vertex ids, each chosen
vertex's distance to its aligned point and that of ICT's own landmark vertex, the alignment's
residual, the source file's sha256 and the format version.

Run (from the repo root, a few seconds):
  python benchmarks/build_ict_ibug68.py --keypoints u_base.txt
`--picture PNG` draws the packaged table instead (experiments/dense_fit/ibug68_3d.png): ICT's
mean face frontal and turned 0.7 rad with ICT's own landmark vertices (blue) and the table's
(red), then two demo crops (a 300W-LP face turned away, a VoxCeleb2 face) with a 3D face
alignment network's points (green, the demo set's `landmarks/`) and the fitted face read at both
sets.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
           "eyes": range(36, 48), "mouth": range(48, 68)}


def demo_pairs(root: str):
    """[(crop .jpg, reference .txt)] of the demo set's crops that have a reference, sorted."""
    pairs = []
    for image in sorted(glob.glob(os.path.join(root, "*", "data", "**", "*.jpg"),
                                  recursive=True)):
        rel = os.path.relpath(image, root).split(os.sep)
        reference = os.path.join(root, rel[0], "landmarks", *rel[2:])[:-4] + ".txt"
        if os.path.isfile(reference):
            pairs.append((image, reference))
    return pairs


# iBUG points that mirror each other (subject's right, left), and the points on the midline.
MIRROR_PAIRS = (tuple((k, 16 - k) for k in range(8)) + tuple((k, 43 - k) for k in range(17, 22))
                + ((31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47),
                   (41, 46), (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64),
                   (61, 63), (65, 67)))
MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)
MIRROR_TOLERANCE_CM = 0.05


def mirror_vertices(mean_shape: np.ndarray):
    """mean_shape [V, 3] cm (x across the face) -> (mirror [V] the vertex nearest each vertex's
    reflection x -> -x, paired [V] bool: it lies within `MIRROR_TOLERANCE_CM`)."""
    from scipy.spatial import cKDTree
    distance, mirror = cKDTree(mean_shape).query(mean_shape * [-1.0, 1.0, 1.0])
    return mirror, distance < MIRROR_TOLERANCE_CM


def choose_vertices(distance: np.ndarray, mean_shape: np.ndarray) -> np.ndarray:
    """distance [68, V] of every vertex to each iBUG point's place, the model's mean_shape
    [V, 3] cm -> [68] symmetric vertex ids (module docstring, step 3)."""
    mirror, paired = mirror_vertices(mean_shape)
    ids = np.zeros(len(distance), np.int64)
    for right, left in MIRROR_PAIRS:
        v = int(np.argmin(np.where(paired, distance[right] + distance[left, mirror], np.inf)))
        ids[right], ids[left] = v, mirror[v]
    midline = np.abs(mean_shape[:, 0]) < MIRROR_TOLERANCE_CM
    for k in MIDLINE:
        ids[k] = int(np.argmin(np.where(midline, distance[k], np.inf)))
    return ids


BFM_KEYPOINTS_URL = ("https://raw.githubusercontent.com/cleardusk/3DDFA/master/"
                     "c++/weights/u_base.txt")
INNER = np.arange(17, 68)


def read_keypoints(source: str) -> tuple:
    """(points [68, 3] float64, sha256 of the bytes) of BFM's mean shape at the 68 keypoints
    from a file or an http(s) URL; exits with one line naming the fix."""
    import hashlib
    import urllib.error
    import urllib.request
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=30) as response:
                data = response.read()
        else:
            with open(source, "rb") as handle:
                data = handle.read()
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        sys.exit(f"build_ict_ibug68: cannot read {source}: {err}; download {BFM_KEYPOINTS_URL} "
                 f"where there is internet and pass the file with --keypoints")
    try:
        values = np.array(data.decode("ascii").split(), np.float64)
    except (UnicodeDecodeError, ValueError):
        values = np.zeros(0)
    if values.size != 68 * 3 or not np.all(np.isfinite(values)):
        sys.exit(f"build_ict_ibug68: {source} holds {values.size} numbers, not the 204 (x y z of "
                 f"68 points) of {BFM_KEYPOINTS_URL}")
    return values.reshape(68, 3), hashlib.sha256(data).hexdigest()


def similarity(source: np.ndarray, target: np.ndarray):
    """The least-squares similarity transform (rotation, one scale, translation) taking points
    source [K, 3] onto target [K, 3] -> a function [N, 3] -> [N, 3]."""
    mean_s, mean_t = source.mean(0), target.mean(0)
    a, b = source - mean_s, target - mean_t
    u, singular, vt = np.linalg.svd(a.T @ b)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = (u @ flip @ vt).T
    scale = float((singular * np.diag(flip)).sum() / (a ** 2).sum())
    return lambda points: scale * (np.asarray(points) - mean_s) @ rotation.T + mean_t


def table_from_keypoints(keypoints: np.ndarray, mean_shape: np.ndarray, own: np.ndarray,
                         area: int) -> dict:
    """keypoints [68, 3] (any units), ICT's mean_shape [V, 3] cm, its own landmark vertex ids
    own [68] and the number of leading vertices to choose from (a face area) ->
    {"vertex_ids" [68], "distance_cm" [68], "ict_landmark_distance_cm" [68],
    "alignment_rms_cm"} (module docstring, steps 2-3)."""
    align = similarity(keypoints[INNER], mean_shape[own[INNER]])
    placed = align(keypoints)                                                    # [68, 3] cm
    rms = float(np.sqrt(((placed[INNER] - mean_shape[own[INNER]]) ** 2).sum(1).mean()))
    vertices = mean_shape[:area]
    distance = np.linalg.norm(vertices[None] - placed[:, None], axis=-1)          # [68, A]
    ids = choose_vertices(distance, vertices)
    return {"vertex_ids": ids, "distance_cm": distance[np.arange(68), ids],
            "ict_landmark_distance_cm": np.linalg.norm(mean_shape[own] - placed, axis=-1),
            "alignment_rms_cm": rms}


class CropFitter:
    """Fits one image as a photo (`estimation.fitting.FitEstimator`: MediaPipe, default
    `FitConfig`) and reads every vertex of the fitted face, ICT's full face area included
    (`face_model.ibug68_3d.ibug68_3d_reading`), in image pixels
    (`evaluation.image_points.vertices_image`)."""

    def __init__(self):
        from cpem_jax.detect.backends import make_landmarker
        from cpem_jax.estimation.fitting import FitEstimator
        from cpem_jax.face_model import load_face_model
        from cpem_jax.face_model.ibug68_3d import ibug68_3d_reading

        self.model = load_face_model()
        self.estimator = FitEstimator(self.model, make_landmarker("mediapipe"))
        self.reading, _ = ibug68_3d_reading(self.model)
        self.every = np.arange(self.reading.n_vertices)

    def __call__(self, image: str):
        """[V, 2] float64 image pixels of every vertex of the reading model, or None where no
        face is found."""
        from cpem_jax.detect.pipeline import NoFaceError
        from cpem_jax.evaluation.image_points import vertices_image

        try:
            estimate = self.estimator(image, progress=False)
        except NoFaceError:
            return None
        return vertices_image(estimate, self.reading, self.every)[0]


def picture(table_path: str, pairs, out: str) -> None:
    """The picture described in the module docstring."""
    import cv2
    import jax.numpy as jnp

    from build_mediapipe_ict import paint_mesh, project_points
    from cpem_jax.face_model.ibug68_3d import read_ibug68_3d
    from cpem_jax.geometry.rotation import euler_to_matrix

    fitter = CropFitter()
    model = fitter.reading
    ids = np.asarray(read_ibug68_3d(table_path)["vertex_ids"], np.int64)
    if ids.max() >= model.n_vertices:
        ids = np.asarray(read_ibug68_3d(table_path)["narrow_vertex_ids"], np.int64)
    own = np.asarray(model.landmark_ids, np.int64)
    vertices = np.asarray(model.mean_shape, np.float64)
    panel = 420

    def draw(image, groups, scale):
        for a, b in zip(groups[0], groups[1]):
            cv2.line(image, tuple(int(v * scale) for v in a), tuple(int(v * scale) for v in b),
                     (255, 220, 0), 1, cv2.LINE_AA)
        for points, colour in zip(groups, ((60, 90, 255), (255, 40, 40), (0, 200, 0))):
            for q in points:
                cv2.circle(image, tuple(int(v * scale) for v in q), 3, colour, -1, cv2.LINE_AA)
        return image

    panels = []
    for yaw in (0.0, 0.7):
        rot = np.asarray(euler_to_matrix(jnp.asarray([0.0, yaw, 0.0])), np.float64)
        image, uv, _, _ = paint_mesh(vertices, np.asarray(model.triangles), rot, panel)
        panels.append(draw(image, [uv[own], uv[ids]], 1.0))
    for image_path, reference in pairs:
        projected = fitter(image_path)
        image = cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB)
        scale = panel / image.shape[0]
        image = cv2.resize(image, (panel, panel), interpolation=cv2.INTER_CUBIC)
        panels.append(draw(image, [projected[own], projected[ids], np.loadtxt(reference)],
                           scale))
    cv2.imwrite(out, cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR))
    print(f"wrote {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("CPEM_SHARED", os.path.join(REPO.parent, "shared"))
    parser.add_argument("--keypoints", default=BFM_KEYPOINTS_URL,
                        help="BFM's mean shape at the 68 keypoints: a file or URL (default: "
                        "3DDFA's release)")
    parser.add_argument("--out", default=None, help="default: the packaged table")
    parser.add_argument("--picture", metavar="PNG", help="draw the table (--out or the "
                        "packaged one) instead of building it")
    parser.add_argument("--data", default=os.path.join(shared, "data", "cpem-demo"),
                        help="--picture: a folder in the CPEM layout with 3D-style landmarks/")
    args = parser.parse_args(argv)

    from cpem_jax.face_model import load_face_model
    from cpem_jax.face_model.ibug68_3d import DATA_FILE, FORMAT_VERSION
    from cpem_jax.face_model.ict import FACE_AREAS

    out = args.out or DATA_FILE
    if args.picture:
        pairs = demo_pairs(args.data)
        if not pairs:
            sys.exit(f"build_ict_ibug68: no crops with landmarks/ under {args.data}; point "
                     f"--data (or CPEM_SHARED) at the demo set")
        turned = [p for p in pairs if "300w_lp" in p[0]][:1]
        frontal = [p for p in pairs if "voxceleb2" in p[0]][:1]
        picture(out, turned + frontal, args.picture)
        return
    keypoints, digest = read_keypoints(args.keypoints)
    model = load_face_model(area="full")
    if model.n_vertices != FACE_AREAS["full"]:
        sys.exit(f"build_ict_ibug68: the face model has {model.n_vertices} vertices, not ICT's "
                 f"full face area ({FACE_AREAS['full']}); point CPEM_FACE_MODEL or "
                 f"CPEM_ICT_FACEKIT at the ICT-FaceKit archive")
    mean_shape = np.asarray(model.mean_shape, np.float64)
    own = np.asarray(model.landmark_ids, np.int64)
    table = table_from_keypoints(keypoints, mean_shape, own, FACE_AREAS["full"])
    narrow = table_from_keypoints(keypoints, mean_shape, own, FACE_AREAS["narrow"])
    np.savez_compressed(
        out, format_version=np.int32(FORMAT_VERSION),
        vertex_ids=table["vertex_ids"].astype(np.int32),
        distance_cm=table["distance_cm"].astype(np.float32),
        narrow_vertex_ids=narrow["vertex_ids"].astype(np.int32),
        narrow_distance_cm=narrow["distance_cm"].astype(np.float32),
        ict_landmark_distance_cm=table["ict_landmark_distance_cm"].astype(np.float32),
        alignment_rms_cm=np.float32(table["alignment_rms_cm"]),
        source_sha256=np.asarray(digest), model_name=np.asarray(model.name),
        n_vertices=np.int32(model.n_vertices),
        method=np.asarray("BFM's 68 keypoints (the 3D convention's definition, from 3DDFA's "
                          "u_base.txt) aligned to ICT's mean shape by a similarity transform "
                          "on the 51 inner points; per mirror pair of iBUG points the mirror "
                          "pair of ICT vertices nearest in 3D, per midline point the nearest "
                          "midline vertex; vertex_ids on ICT's full face area, "
                          "narrow_vertex_ids on the narrow one (benchmarks/build_ict_ibug68.py)"))
    print(f"wrote {out}; alignment rms {table['alignment_rms_cm']:.3f} cm over the 51 inner "
          f"points")
    print("distance to the aligned keypoints, cm: chosen on the full / narrow face area / ICT's "
          "own landmark vertices")
    for name, rows in REGIONS.items():
        rows = list(rows)
        print(f"  {name:6s} {table['distance_cm'][rows].mean():.2f} / "
              f"{narrow['distance_cm'][rows].mean():.2f} / "
              f"{table['ict_landmark_distance_cm'][rows].mean():.2f}")


if __name__ == "__main__":
    main()
