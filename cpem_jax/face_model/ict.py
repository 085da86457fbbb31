"""Loader for the ICT Face Model "light" (ICT-FaceKit, MIT licence).

Input: the repository's layout, as the GitHub archive `ICT-FaceKit-master.zip` or an extracted
folder: `FaceXModel/generic_neutral_mesh.obj`, `identity000.obj ... identity099.obj`, one OBJ per
expression shape, and `vertex_indices.json` (expression names, landmark vertex ids).

What the loader keeps (ICT README, "Face Area Details"): the "narrow face area" (vertices
[0, 6706), the front of the face from brows to chin, like BFM's front face) by default, or the
"full face area" (vertices [0, 9409), adding forehead, temples and under-chin). Head and neck,
mouth and eye sockets, teeth, gums, tongue, eyeballs and lashes are dropped. Polygons are kept when
all their vertices are kept, quads become two triangles, and triangles and landmarks are
re-indexed.

Identity scale (measured on the archive; tests/test_face_model.py checks it): the RMS per-vertex
displacement of identity mode k over the narrow face area falls from 0.31 cm (mode 0) and 0.15 cm
(mode 1) to a mean of 0.113 cm over modes 0-9, 0.027 over 20-29, 0.013 over 50-59 and 0.0075
over 90-99, like PCA standard deviations (the PCA is over the whole head, so the face-area values are
not strictly monotone): each identityNNN.obj is the neutral plus one standard deviation of that
mode. Identity weights are
therefore meant to be ~N(0, 1), and the prior ||alpha||^2 of L_reg is a unit Gaussian prior.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

from cpem_jax.face_model import albedo, expressions, regions
from cpem_jax.face_model.archive import ModelSource, ModelSourceError
from cpem_jax.face_model.model import FaceModel
from cpem_jax.face_model.obj_reader import read_polygons, read_vertices, triangulate

MODEL_DIR = "FaceXModel"
INDEX_FILE = f"{MODEL_DIR}/vertex_indices.json"
NEUTRAL_FILE = f"{MODEL_DIR}/generic_neutral_mesh.obj"
IDENTITY_PATTERN = re.compile(r"^identity(\d{3})\.obj$")
# Vertex ranges of ICT's face areas (ICT README, "Face Area Details").
FACE_AREAS = {"narrow": 6706, "full": 9409}
N_LANDMARKS = 68
FIX_HINT = ("Pass the ICT-FaceKit archive (ICT-FaceKit-master.zip, as GitHub serves it) or its "
            "extracted folder; `cpem-jax model fetch-ict` downloads it where there is internet.")


def load_ict(path: str, area: str = "narrow", n_identity: Optional[int] = None,
             n_albedo_modes: int = 10, progress: bool = True) -> FaceModel:
    """Reads ICT-FaceKit into a FaceModel.

    Args:
      path: ICT-FaceKit-master.zip or a folder holding FaceXModel/.
      area: "narrow" or "full" face area (see module docstring).
      n_identity: keep the first n identity modes (default: all found, 100).
      n_albedo_modes: smooth spatial albedo modes (x3 channels) of the albedo model.
      progress: show a progress bar while reading the OBJ files.
    Returns:
      FaceModel with cm units, +y up, facing +z.
    """
    if area not in FACE_AREAS:
        raise ValueError(f"unknown ICT face area {area!r}; choose one of {sorted(FACE_AREAS)}")
    source = ModelSource(path, INDEX_FILE, FIX_HINT)
    try:
        index = json.loads(source.read(INDEX_FILE))
        names = list(index["expressions"])
        landmark_ids_full = np.asarray(index["idx_to_landmark_verts"], np.int64)
    except (ValueError, KeyError, TypeError) as err:
        raise ModelSourceError(f"{INDEX_FILE} in {path!r} is malformed ({err!r}); it must hold "
                               f"'expressions' and 'idx_to_landmark_verts'. {FIX_HINT}") from None
    if landmark_ids_full.shape != (N_LANDMARKS,):
        raise ModelSourceError(f"{INDEX_FILE}: expected {N_LANDMARKS} landmark ids, got "
                               f"{landmark_ids_full.shape}. {FIX_HINT}")

    identity_files = sorted(f for f in source.list(MODEL_DIR) if IDENTITY_PATTERN.match(f))
    if not identity_files:
        raise ModelSourceError(f"no identityNNN.obj files in {path!r}. {FIX_HINT}")
    if n_identity is not None:
        if n_identity > len(identity_files):
            raise ValueError(f"asked for {n_identity} identity modes, {path!r} has "
                             f"{len(identity_files)}")
        identity_files = identity_files[:n_identity]

    neutral_bytes = source.read(NEUTRAL_FILE)
    neutral = read_vertices(neutral_bytes, NEUTRAL_FILE)
    n_keep = FACE_AREAS[area]
    if neutral.shape[0] < n_keep:
        raise ModelSourceError(f"{NEUTRAL_FILE} has {neutral.shape[0]} vertices, fewer than "
                               f"the {n_keep} of ICT's {area} face area. {FIX_HINT}")
    triangles = _area_triangles(read_polygons(neutral_bytes, NEUTRAL_FILE), n_keep)
    if np.any(landmark_ids_full >= n_keep):
        raise ModelSourceError(f"landmark ids fall outside ICT's {area} face area")

    files = [(f"{MODEL_DIR}/{f}", "identity") for f in identity_files]
    files += [(f"{MODEL_DIR}/{n}.obj", "expression") for n in names]
    deltas = {"identity": [], "expression": []}
    for relpath, group in tqdm(files, desc="reading ICT-FaceKit", unit="mesh",
                               disable=not progress):
        mesh = read_vertices(source.read(relpath), relpath)
        if mesh.shape != neutral.shape:
            raise ModelSourceError(f"{relpath} has {mesh.shape[0]} vertices, the neutral mesh "
                                   f"{neutral.shape[0]}; the archive is inconsistent. {FIX_HINT}")
        deltas[group].append(mesh[:n_keep] - neutral[:n_keep])

    mean_shape = neutral[:n_keep]
    albedo_mean, albedo_basis = albedo.smooth_albedo_model(n_keep, triangles, n_albedo_modes)
    pairs = expressions.pair_indices(
        names, expressions.expand_sides(expressions.CONTRADICTORY_PAIRS_ICT), "ICT-FaceKit")
    return FaceModel(
        mean_shape=mean_shape.astype(np.float32),
        id_basis=np.stack(deltas["identity"], axis=-1).astype(np.float32),
        exp_basis=np.stack(deltas["expression"], axis=-1).astype(np.float32),
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        triangles=triangles,
        landmark_ids=landmark_ids_full.astype(np.int32),
        contradictory_pairs=pairs,
        regions=regions.landmark_regions(mean_shape, landmark_ids_full),
        expression_names=tuple(names),
        name=f"ict-facekit-{area}",
    )


def _area_triangles(polygons: Sequence[Sequence[int]], n_keep: int) -> np.ndarray:
    """Triangles [F, 3] of the polygons whose vertices all lie in [0, n_keep)."""
    kept = [p for p in polygons if max(p) < n_keep]
    if not kept:
        raise ModelSourceError("no polygon of the neutral mesh lies in the face area")
    return triangulate(kept)


def default_ict_path() -> Optional[str]:
    """The ICT archive from $CPEM_ICT_FACEKIT or ../shared/assets beside the repository, if any."""
    candidates = [os.environ.get("CPEM_ICT_FACEKIT")]
    shared = os.environ.get("CPEM_SHARED")
    if shared:
        candidates.append(os.path.join(shared, "assets", "ICT-FaceKit-master.zip"))
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates.append(os.path.join(os.path.dirname(repo_root), "shared", "assets",
                                   "ICT-FaceKit-master.zip"))
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            return candidate
    logging.debug("no ICT-FaceKit archive found in %s", candidates)
    return None
