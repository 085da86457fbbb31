"""68-point landmark benchmarks in the 300-W / HELEN / LFPW / AFW / iBUG layout (.pts files).

File layout: a folder (searched recursively) holding images with a `.pts` file of the same stem
beside each (`image_0001.png` + `image_0001.pts`; 300-W repeats an image once per annotated face,
`image_003_1.jpg` + `image_003_1.pts`). Images: .jpg, .jpeg, .png (any case). A .pts file is

    version: 1
    n_points: 68
    {
    x y          (68 lines, floats, in the iBUG / Multi-PIE order)
    }

Coordinate convention. 300-W's annotations are 1-based (MATLAB) pixel coordinates: the centre of
the top-left pixel is (1, 1). The project's images use continuous coordinates with pixel centres
at integer + 0.5 (`cpem_jax.detect.base`), so a 1-based point (x, y) is (x - 0.5, y - 0.5) here
(`origin=1`, the default). For files written with 0-based pixel indices (centre of the top-left
pixel at (0, 0)) pass `origin=0`: (x + 0.5, y + 0.5). Scores are invariant to this shift only if
the prediction uses the same convention, so it matters: half a pixel is 0.2-0.5% NME on a
100-200 pixel face.

Scores (`landmarks68_scores`), each in % and averaged over the scored images:
- `nme_interocular`: mean point distance / the distance between the outer eye corners (points
  36 and 45, 0-based), 300-W's usual normaliser;
- `nme_box`: mean point distance / sqrt(w * h) of the tight box of the ground-truth points (the
  AFLW2000-3D normaliser, `cpem_jax.evaluation.landmarks.box_size`).
Every image is scored; detector misses fall back to a box on the ground truth and are counted
(`cpem_jax.evaluation.annotated`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import List, Optional

import numpy as np

from cpem_jax.evaluation import landmarks

N_POINTS = 68
OUTER_EYE_CORNERS = (36, 45)
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class PtsFormatError(ValueError):
    """A .pts file that does not match the documented layout."""


def read_pts(path: str) -> np.ndarray:
    """One .pts file -> [68, 2] float64 points exactly as written (no coordinate shift).

    Raises:
      PtsFormatError: unreadable, wrong header, not 68 points, or a malformed point line.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as err:
        raise PtsFormatError(f"{path}: not a readable .pts text file ({err})") from None
    lines = [line for line in lines if line]
    if len(lines) < 3 or not lines[0].lower().startswith("version:"):
        raise PtsFormatError(f"{path}: does not start with 'version: 1'; is this a 300-W .pts "
                             f"file?")
    head, _, value = lines[1].partition(":")
    if head.strip().lower() != "n_points":
        raise PtsFormatError(f"{path}: second line is {lines[1]!r}, expected 'n_points: 68'")
    try:
        n = int(value.strip())
    except ValueError:
        raise PtsFormatError(f"{path}: n_points is {value.strip()!r}, not a number") from None
    if n != N_POINTS:
        raise PtsFormatError(f"{path}: holds {n} points; this benchmark needs the 68-point "
                             f"iBUG layout")
    if lines[2] != "{" or len(lines) < 4 + n or lines[3 + n] != "}":
        raise PtsFormatError(f"{path}: expected '{{', {n} lines 'x y', then '}}'")
    points = np.empty((n, 2), np.float64)
    for k, line in enumerate(lines[3:3 + n]):
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            points[k] = [float(parts[0]), float(parts[1])]
        except ValueError:
            raise PtsFormatError(f"{path}: point {k} is {line!r}, expected two numbers "
                                 f"'x y'") from None
    if not np.isfinite(points).all():
        raise PtsFormatError(f"{path}: holds non-finite coordinates")
    return points


def write_pts(path: str, points: np.ndarray) -> None:
    """Writes [68, 2] points as a .pts file (as given: no coordinate shift)."""
    points = np.asarray(points, np.float64)
    if points.shape != (N_POINTS, 2):
        raise ValueError(f"points must be [68, 2], got {points.shape}")
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"version: 1\nn_points: {N_POINTS}\n{{\n{body}\n}}\n")


def pts_to_pixels(points: np.ndarray, origin: int = 1) -> np.ndarray:
    """Points as written [..., 2] -> the project's pixel coordinates (module docstring)."""
    if origin not in (0, 1):
        raise ValueError(f"origin must be 1 (300-W, 1-based) or 0, got {origin}")
    return np.asarray(points, np.float64) + (0.5 - origin)


@dataclasses.dataclass
class Landmarks68Set:
    """N annotated faces, sorted by path.

    Attributes:
      names: [N] paths relative to the root, without extension (e.g. "helen/testset/296814969_3").
      image_paths: [N] image files.
      landmarks: [N, 68, 2] float64 ground truth in the project's pixel coordinates.
    """
    names: List[str]
    image_paths: List[str]
    landmarks: np.ndarray


def load_landmarks68(root: str, limit: Optional[int] = None, origin: int = 1) -> Landmarks68Set:
    """Reads every .pts under ROOT (recursively, sorted by relative path) with its image.

    Args:
      root: the folder.
      limit: keep the first this many faces (sorted by relative path).
      origin: 1 for 300-W's 1-based coordinates, 0 for 0-based pixel indices (module docstring).
    Raises:
      FileNotFoundError: ROOT is not a folder.
      PtsFormatError: no .pts file, a .pts without an image, or a malformed .pts.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"68-point landmark root {root!r} is not a folder; pass the "
                                f"folder holding the images and their .pts files")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    found = []
    for folder, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in files:
            if name.lower().endswith(".pts"):
                found.append(os.path.join(folder, name))
    found.sort(key=lambda p: os.path.relpath(p, root))
    if not found:
        raise PtsFormatError(f"no .pts files under {root!r}; expected images with 68-point "
                             f".pts files beside them (300-W layout)")
    if limit:
        found = found[:limit]
    names, images, points = [], [], []
    for pts in found:
        stem = pts[:-4]
        folder = os.path.dirname(pts)
        candidates = {n.lower(): n for n in os.listdir(folder)}
        image = None
        for ext in _IMAGE_EXTENSIONS:
            key = os.path.basename(stem).lower() + ext
            if key in candidates:
                image = os.path.join(folder, candidates[key])
                break
        if image is None:
            raise PtsFormatError(f"{pts} has no image {os.path.basename(stem)}.jpg/.png "
                                 f"beside it")
        names.append(os.path.relpath(stem, root).replace(os.sep, "/"))
        images.append(image)
        points.append(pts_to_pixels(read_pts(pts), origin))
    return Landmarks68Set(names, images, np.stack(points))


def interocular(target: np.ndarray) -> np.ndarray:
    """[N, 68, 2] -> [N] distance between the outer eye corners (points 36, 45)."""
    target = np.asarray(target, np.float64)
    a, b = OUTER_EYE_CORNERS
    return np.linalg.norm(target[:, a] - target[:, b], axis=-1)


def landmarks68_scores(predicted: np.ndarray, target: np.ndarray,
                       missed: Optional[np.ndarray] = None) -> dict:
    """predicted, target [N, 68, 2] pixels -> NME in % by two normalisers.

    Args:
      missed: [N] bool, images where the detector missed the face (scored like the others from
        the ground-truth box, counted).
    Returns:
      {"nme_interocular": %, "nme_box": %, "count": scored images, "n_missed",
       "n_unscored" (rows of `predicted` with a NaN, left out of the means),
       "per_image_interocular": [N] %, "per_image_box": [N] %, "unit": "%"}.
    """
    predicted = np.asarray(predicted, np.float64)
    target = np.asarray(target, np.float64)
    if predicted.shape != target.shape or predicted.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be "
                         f"[N, 68, 2]")
    missed = np.zeros(len(target), bool) if missed is None else np.asarray(missed, bool)
    if missed.shape != (len(target),):
        raise ValueError(f"missed has {missed.size} values for {len(target)} images")
    by_eyes = landmarks.nme(predicted, target, interocular(target)) * 100.0
    by_box = landmarks.nme(predicted, target,
                           landmarks.box_size(landmarks.landmark_box(target))) * 100.0
    ok = np.isfinite(by_eyes) & np.isfinite(by_box)
    mean = lambda v: float(v[ok].mean()) if ok.any() else float("nan")
    return {"nme_interocular": mean(by_eyes), "nme_box": mean(by_box), "count": int(ok.sum()),
            "n_missed": int(missed.sum()), "n_unscored": int((~ok).sum()),
            "per_image_interocular": by_eyes, "per_image_box": by_box, "unit": "%"}
