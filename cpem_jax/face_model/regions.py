"""Region masks on a mesh, from distances to groups of the 68 landmarks."""
from __future__ import annotations

from typing import Dict

import numpy as np

# iBUG 68 landmark groups (0-based ids) and the radius (cm) around them that a region covers.
LANDMARK_GROUPS = {
    "contour": (range(0, 17), 1.5),
    "brows": (range(17, 27), 1.2),
    "nose": (range(27, 36), 1.5),
    "eye_right": (range(36, 42), 1.2),   # the subject's right eye (image left, frontal view)
    "eye_left": (range(42, 48), 1.2),
    "mouth": (range(48, 68), 1.2),
}


def landmark_regions(vertices: np.ndarray, landmark_ids: np.ndarray) -> Dict[str, np.ndarray]:
    """vertices [V, 3] cm, landmark_ids [68] -> region name -> mask [V] bool (plus "face": all)."""
    landmarks = vertices[landmark_ids]
    regions = {"face": np.ones(len(vertices), bool)}
    for name, (ids, radius) in LANDMARK_GROUPS.items():
        points = landmarks[list(ids)]
        dist = np.linalg.norm(vertices[:, None, :] - points[None, :, :], axis=-1).min(axis=1)
        regions[name] = dist <= radius
    return regions
