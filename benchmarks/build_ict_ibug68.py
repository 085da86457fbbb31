"""Builds `cpem_jax/face_model/data/ict_ibug68_3d.npz`: the 68 iBUG points in the 3D convention
as vertices of ICT-FaceKit (format and use: `cpem_jax/face_model/ibug68_3d.py`).

Method: every face crop of the demo training set (`data/cpem-demo/*/data/**.jpg`, VoxCeleb2 and
300W-LP frames) with a 3D-style reference (`landmarks/`, the same relative path, .txt, 68 x 2
pixels from a 3D face alignment network) is detected with MediaPipe, cropped and fitted on its
own as `cpem-jax fit IMAGE` fits a photo (default `FitConfig`); every vertex of the narrow face
area is projected into the image. The vertices are chosen left-right symmetric, as mirror
pairs of ICT's symmetric mean shape: for each mirror pair of iBUG points (the jaw's k and 16 - k,
the brows, eyes, nostrils and lip points) the vertex v and its mirror v' whose projections lie
nearest, on average over the crops, to the two reference points (the sum of both mean
distances), and for the ten midline points (chin, nose ridge and tip, the lip centres) the
midline vertex nearest to its reference; distances in % of sqrt(w * h) of the reference's box.
The file also holds each chosen vertex's mean distance, the same for
ICT's own landmark vertices, the number of crops and the format version. No image of any
benchmark is used.

Run (from the repo root, about 2.5 s a crop on 2 CPU cores):
  CPEM_SHARED=/work/shared python benchmarks/build_ict_ibug68.py
`--picture PNG` draws the packaged table instead (experiments/dense_fit/ibug68_3d.png): ICT's
mean face frontal and turned 0.7 rad with ICT's own landmark vertices (blue) and the table's
(red), then two demo crops (a 300W-LP face turned away, a VoxCeleb2 face) with the reference
(green) and the fitted face read at both sets.
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


def choose_vertices(projected: np.ndarray, reference: np.ndarray, mean_shape: np.ndarray):
    """projected [C, V, 2], reference [C, 68, 2] pixels, the model's mean_shape [V, 3] ->
    (symmetric vertex ids [68] (module docstring), their mean distance [68] and the distance of
    every vertex [68, V], both in % of the reference box)."""
    size = np.sqrt(np.prod(reference.max(1) - reference.min(1), axis=-1))        # [C]
    distance = np.stack([
        np.mean(np.linalg.norm(projected - reference[:, k, None], axis=-1) / size[:, None], 0)
        for k in range(reference.shape[1])]) * 100.0
    mirror, paired = mirror_vertices(mean_shape)
    ids = np.zeros(len(distance), np.int64)
    for right, left in MIRROR_PAIRS:
        v = int(np.argmin(np.where(paired, distance[right] + distance[left, mirror], np.inf)))
        ids[right], ids[left] = v, mirror[v]
    midline = np.abs(mean_shape[:, 0]) < MIRROR_TOLERANCE_CM
    for k in MIDLINE:
        ids[k] = int(np.argmin(np.where(midline, distance[k], np.inf)))
    return ids, distance[np.arange(len(ids)), ids], distance


class CropFitter:
    """Fits one image as a photo (`estimation.fitting.FitEstimator`: MediaPipe, default
    `FitConfig`) and reads every vertex of the fitted face in image pixels
    (`evaluation.image_points.vertices_image`)."""

    def __init__(self):
        from cpem_jax.detect.backends import make_landmarker
        from cpem_jax.estimation.fitting import FitEstimator
        from cpem_jax.face_model import load_face_model

        self.model = load_face_model()
        self.estimator = FitEstimator(self.model, make_landmarker("mediapipe"))
        self.every = np.arange(self.model.n_vertices)

    def __call__(self, image: str):
        """[V, 2] float64 image pixels of every vertex, or None where no face is found."""
        from cpem_jax.detect.pipeline import NoFaceError
        from cpem_jax.evaluation.image_points import vertices_image

        try:
            estimate = self.estimator(image, progress=False)
        except NoFaceError:
            return None
        return vertices_image(estimate, self.model, self.every)[0]


def picture(table_path: str, pairs, out: str) -> None:
    """The picture described in the module docstring."""
    import cv2
    import jax.numpy as jnp

    from build_mediapipe_ict import paint_mesh, project_points
    from cpem_jax.face_model.ibug68_3d import read_ibug68_3d
    from cpem_jax.geometry.rotation import euler_to_matrix

    fitter = CropFitter()
    model = fitter.model
    ids = np.asarray(read_ibug68_3d(table_path)["vertex_ids"], np.int64)
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
    parser.add_argument("--data", default=os.path.join(shared, "data", "cpem-demo"),
                        help="a folder in the CPEM layout with 3D-style landmarks/")
    parser.add_argument("--out", default=None, help="default: the packaged table")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--picture", metavar="PNG", help="draw the table (--out or the "
                        "packaged one) instead of building it")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from cpem_jax.face_model.ibug68_3d import DATA_FILE, FORMAT_VERSION

    pairs = demo_pairs(args.data)[:args.max_images]
    if not pairs:
        sys.exit(f"build_ict_ibug68: no crops with landmarks/ under {args.data}; point --data "
                 f"(or CPEM_SHARED) at the demo set")
    out = args.out or DATA_FILE
    if args.picture:
        turned = [p for p in pairs if "300w_lp" in p[0]][:1]
        frontal = [p for p in pairs if "voxceleb2" in p[0]][:1]
        picture(out, turned + frontal, args.picture)
        return
    fitter = CropFitter()
    model = fitter.model
    projected, references, skipped = [], [], []
    for image, reference in tqdm(pairs, desc="fitting the demo crops", unit="crop"):
        vertices = fitter(image)
        if vertices is None:
            skipped.append(image)
            continue
        projected.append(vertices)
        references.append(np.loadtxt(reference))
    projected, references = np.stack(projected), np.stack(references)
    ids, distance, every_distance = choose_vertices(projected, references,
                                                    np.asarray(model.mean_shape, np.float64))
    own = np.asarray(model.landmark_ids)
    own_distance = every_distance[np.arange(68), own]
    np.savez_compressed(
        out, format_version=np.int32(FORMAT_VERSION), vertex_ids=ids.astype(np.int32),
        mean_distance_percent=distance.astype(np.float32),
        ict_landmark_distance_percent=own_distance.astype(np.float32),
        n_crops=np.int32(len(projected)), model_name=np.asarray(model.name),
        n_vertices=np.int32(model.n_vertices),
        method=np.asarray("per mirror pair of iBUG points, the mirror pair of ICT vertices "
                          "(per midline point, the midline vertex) nearest on average to the "
                          "3D-style reference of the demo set's crops, each fitted alone with "
                          "MediaPipe's points (benchmarks/build_ict_ibug68.py)"))
    print(f"{len(projected)} crops ({len(skipped)} without a face); wrote {out}")
    print("mean distance to the reference, % of the box: chosen / ICT's own landmark vertices")
    for name, rows in REGIONS.items():
        rows = list(rows)
        print(f"  {name:6s} {distance[rows].mean():.2f} / {own_distance[rows].mean():.2f}")
    print(f"  all    {distance.mean():.2f} / {own_distance.mean():.2f}")


if __name__ == "__main__":
    main()
