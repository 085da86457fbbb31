"""FaceWarehouse: geometric error (mm) of single-image shapes against the subjects' meshes.

File layout this reader expects (ASSUMPTION; check your copy):
  ROOT/Tester_N/TrainingPose/pose_K.png|.jpg   input images (K = 0..19)
  ROOT/Tester_N/TrainingPose/pose_K.obj        that pose's ground-truth mesh, when present
  ROOT/Tester_N/Blendshape/shape_0.obj         the neutral mesh, used for pose_0 when
                                               pose_0.obj is absent
Images without a ground-truth mesh are listed in "skipped_images". FaceWarehouse meshes are
not in millimetres: pass `gt_unit_to_mm` (mm per mesh unit) explicitly. The error is
`geometry_error.scan_error` per image (95 mm crop around the max-z nose tip, similarity ICP,
point-to-plane RMSE); CPEM reports 2.03 mm.
"""
from __future__ import annotations

import os
import re
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from cpem_jax.evaluation import geometry_error, scan_io
from cpem_jax.evaluation.micc import summarise

PAPER_FACEWAREHOUSE_RMSE_MM = {"CPEM paper": 2.03}
_POSE = re.compile(r"^pose_(\d+)\.(png|jpg|jpeg)$", re.I)


class FaceWarehouseFormatError(ValueError):
    """A FaceWarehouse folder that does not match the documented layout."""


def find_pairs(root: str) -> Tuple[List[Tuple[str, str, str]], List[str]]:
    """-> ([(tester, image path, mesh path)], skipped image paths)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"FaceWarehouse root {root!r} is not a folder")
    testers = sorted(d for d in os.listdir(root) if d.startswith("Tester_"))
    if not testers:
        raise FaceWarehouseFormatError(f"no Tester_N folders in {root!r}")
    pairs, skipped = [], []
    for tester in testers:
        pose_dir = os.path.join(root, tester, "TrainingPose")
        if not os.path.isdir(pose_dir):
            raise FaceWarehouseFormatError(f"{pose_dir} is missing")
        for name in sorted(os.listdir(pose_dir)):
            m = _POSE.match(name)
            if not m:
                continue
            mesh = os.path.join(pose_dir, f"pose_{m.group(1)}.obj")
            if not os.path.isfile(mesh) and int(m.group(1)) == 0:
                mesh = os.path.join(root, tester, "Blendshape", "shape_0.obj")
            if os.path.isfile(mesh):
                pairs.append((tester, os.path.join(pose_dir, name), mesh))
            else:
                skipped.append(os.path.join(pose_dir, name))
    if not pairs:
        raise FaceWarehouseFormatError(f"no pose image of {root!r} has a ground-truth mesh")
    return pairs, skipped


def evaluate_facewarehouse(predict_shape_fn: Callable[[str], Optional[np.ndarray]], root: str,
                           triangles: np.ndarray, nose_index: int, gt_unit_to_mm: float,
                           pred_unit_to_mm: float = 10.0, **scan_error_kwargs) -> dict:
    """Scores single-image shapes against FaceWarehouse meshes.

    Args:
      predict_shape_fn: image path -> predicted shape [V, 3] in model units (with the
        expression; None when no face was found).
      triangles, nose_index: the predicted mesh's triangles [F, 3] and nose-tip vertex.
      gt_unit_to_mm: mm per FaceWarehouse mesh unit (required: the dataset is not in mm).
    Returns:
      {"dataset": "FaceWarehouse", "conditions": {"all": {...}, per tester...}, "per_image",
       "n_no_face", "skipped_images"}.
    """
    if not gt_unit_to_mm or gt_unit_to_mm <= 0:
        raise ValueError("gt_unit_to_mm must be the millimetres per FaceWarehouse mesh unit "
                         "(measure the inter-ocular distance of a mesh: about 63 mm)")
    pairs, skipped = find_pairs(root)
    per_image, n_no_face, cache = [], 0, {}
    for tester, image, mesh in pairs:
        shape = predict_shape_fn(image)
        if shape is None:
            n_no_face += 1
            continue
        if mesh not in cache:
            cache = {mesh: scan_io.read_scan(mesh)[0]}
        err = geometry_error.scan_error(shape, triangles, cache[mesh], nose_index,
                                        pred_unit_to_mm=pred_unit_to_mm,
                                        scan_unit_to_mm=gt_unit_to_mm, **scan_error_kwargs)
        per_image.append({"subject": tester, "image": os.path.relpath(image, root),
                          "group": tester, "rmse_mm": err["rmse_mm"], "mean_mm": err["mean_mm"]})
    testers: Sequence[str] = sorted({p["group"] for p in per_image})
    return {"dataset": "FaceWarehouse", "conditions": summarise(per_image, testers),
            "per_image": per_image, "n_no_face": n_no_face, "skipped_images": skipped}
