"""The mesh model's passes over one face: a region, then the regions its meshes give.

MediaPipe's own graph runs the mesh model on a region of interest: a square around a detector
box at first, then, frame after frame, the region derived from the last mesh (`roi_from_mesh`:
the eye-corner line levelled, the extent scaled). `MeshPasses` runs those passes on one image
until the region derived from a pass's mesh agrees with the one the pass ran on
(`regions_agree`: 5 degrees, 5 % of the side) or `refine` further passes have run, then (with a
mirror permutation) runs the last crop mirrored too and averages the two meshes. On turned and
rolled faces one refined pass was still far from steady; passes until steady moved the
AFLW2000-3D sample's profile bin from 9.48 to 8.41 % (experiments/aflw2000).

Where the start is a box, its region is no mesh's, so the first refined pass always runs and the
presence is that pass's; where the start is the region of a mesh (the same face in the previous
frame), the first pass may already be steady and its presence counts. Later passes move the
region towards whatever the mesh saw: on a box of background they raised the presence from under
0.05 to 0.49, so it is never taken from them.

The mirror pass also tells whether the model knew what it read: its mesh and the mirror image's
agree for a face it reads (0.3-1.2 % of the face size) and not for one it reads upside down
(1.6-37 %). `from_box` uses that to find faces rolled beyond what the detector's keypoints can
start (`UPSIDE_DOWN_GAP`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from cpem_jax.detect.crop import apply_affine, invert_affine, warp_image
from cpem_jax.detect.mediapipe_mesh import N_MESH, regions_agree, roi_affine, roi_from_mesh
from cpem_jax.detect.mediapipe_runtime import MeshModel

# The mesh model maps a mirrored crop's x to size + FLIP_SHIFT - x (mediapipe_runtime: 256.46 for
# the bundle's 256 px model), so mirrored points come back through that map and the average
# keeps the upright crop's convention.
FLIP_SHIFT = 0.46

# A mesh whose mirror gap (`MeshPasses`) exceeds this fraction of the face size is tried again
# from crops turned by half and quarter turns (`MeshPasses.from_box`): BlazeFace boxes upside-down
# faces, but its eye keypoints are wrong beyond about 100 degrees of roll, and from that start
# the mesh model read the face upright with its presence near 1 (a photo turned 120-180
# degrees: points 47-66 % of the face size off). Gaps from the right start: 0.3-1.2 % on 5
# faces turned 0-180 degrees, median 0.6 % (p90 0.8 %) over 302 faces of the shared videos;
# from a wrong one 1.6-37 % (d0 turned upside down: 1.6-4.6 %), which the right start at least
# halved. A retry keeps the first mesh unless it halves the gap, so a face the model reads but
# less surely (the AFLW2000-3D sample's turned faces, median 1.0 %, up to 3-4 %) only costs time:
# 37 of its 109 detector boxes are retried, 3 of the 302 video faces.
UPSIDE_DOWN_GAP = 0.012


class MeshPasses:
    """Runs `mesh` (a `MeshModel`) pass after pass on one face (module docstring).

    Args:
      mesh: the bundle's mesh model.
      refine: most further passes after the first (>= 0).
      mirror: [478] int the mirror permutation of the mesh's points (`mirror_permutation`), to
        average the last crop's mesh with its mirror image's; None: no mirror pass.
    """

    def __init__(self, mesh: MeshModel, refine: int, mirror: Optional[np.ndarray]) -> None:
        if refine < 0:
            raise ValueError(f"refine must be >= 0, got {refine}.")
        self.mesh = mesh
        self.refine = int(refine)
        self.mirror = mirror

    def in_roi(self, image: np.ndarray, roi: tuple) -> tuple:
        """(points [478, 2] in crop pixels, presence, crop, crop -> image affine [2, 3]) of one
        run of the mesh model on `roi` (centre, side, angle)."""
        size = self.mesh.size
        affine = roi_affine(*roi, size)
        crop = warp_image(image, affine, (size, size), "constant")
        points, presence = self.mesh(crop)
        return points, presence, crop, invert_affine(affine)

    def __call__(self, image: np.ndarray, roi: tuple, from_mesh: bool) -> Tuple[np.ndarray,
                                                                                 float, float]:
        """(points [478, 2] image pixels, presence, mirror gap) of the passes from `roi`
        (centre [2], side, angle radians); `from_mesh`: `roi` is the region of a mesh, not a
        box's square. The mirror gap is the mean distance between the last crop's mesh and its
        mirror image's, over the face size (sqrt of the 468 mesh points' extent area); NaN
        without a mirror permutation. It is small for a face the model reads (0.3-1.2 % on
        upright and rolled photos and video frames) and large where the crop shows the face
        upside down (1.6-37 %: the model's two readings of a face it does not know disagree)."""
        points, presence, crop, back = self.in_roi(image, roi)
        for step in range(self.refine):
            following = roi_from_mesh(apply_affine(back, points))
            if (from_mesh or step > 0) and regions_agree(roi, following):
                break
            roi = following
            points, p, crop, back = self.in_roi(image, roi)
            presence = p if step == 0 and not from_mesh else presence
        gap = float("nan")
        if self.mirror is not None:
            mirrored = self.mesh(crop[:, ::-1])[0][self.mirror]
            mirrored[:, 0] = self.mesh.size + FLIP_SHIFT - mirrored[:, 0]
            size = np.sqrt(np.prod(np.ptp(points[:N_MESH], axis=0)))
            gap = float(np.linalg.norm(points - mirrored, axis=-1).mean() / max(size, 1e-6))
            points = (points + mirrored) / 2
        return apply_affine(back, points), presence, gap

    def from_box(self, image: np.ndarray, roi: tuple) -> Tuple[np.ndarray, float]:
        """(points [478, 2] image pixels, presence) of the passes from a box's square `roi`;
        where the mesh and its mirror image's disagree (`UPSIDE_DOWN_GAP`), also from the
        square turned half a turn, then a quarter turn either way (until one agrees), keeping
        the one of least gap where it halves the first one's."""
        first = best = self(image, roi, from_mesh=False)
        for turn in (np.pi, np.pi / 2, -np.pi / 2):
            if not best[2] > UPSIDE_DOWN_GAP:
                break
            turned = self(image, (roi[0], roi[1], roi[2] + turn), from_mesh=False)
            best = turned if turned[2] < best[2] else best
        return (best if best[2] < 0.5 * first[2] else first)[:2]
