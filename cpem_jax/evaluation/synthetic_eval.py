"""Scoring a predictor on a synthetic split (`cpem-jax synth`) against its exact ground truth.

Three kinds of estimates, all turned into one `Estimates` aligned with the ground-truth rows:
  - a trained network (`predict_network`: every frame on its own, resized to the network input),
  - a fit result of one clip (`estimates_from_track`: a `VideoEstimate` from `cpem-jax fit`
    run on that clip's frame folder; frames are mapped by index),
  - per-video fitting run here on every clip (`fit_clips`: one identity per clip, the noisy
    landmark files as the detections).
`evaluate_estimates` computes the report sections (see its docstring) for `report.write_report`.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from cpem_jax.data import cpem_folder
from cpem_jax.evaluation import expression as expression_metrics
from cpem_jax.evaluation import identity as identity_metrics
from cpem_jax.evaluation import landmarks as landmark_metrics
from cpem_jax.evaluation import pose as pose_metrics
from cpem_jax.synthetic.ground_truth import GroundTruth

logger = logging.getLogger(__name__)

# |yaw| bins for the NME table; the synthetic poses stay within about 40 degrees.
YAW_EDGES_DEG = (0.0, 10.0, 20.0, 30.0, 90.0)
INACTIVE_THRESHOLD = 0.05


@dataclasses.dataclass
class Estimates:
    """Per-frame estimates in ground-truth row order; rows without an estimate are NaN.

    identity [N, K_id]; expression [N, K] in [0, 1] (ground-truth unit order); rotation [N, 3]
    radians (pitch, yaw, roll); translation [N, 3] cm; landmarks [N, 68, 2] pixels of the
    ground-truth image (project convention); method: a short name for the report.
    """
    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    landmarks: np.ndarray
    method: str

    @classmethod
    def empty(cls, gt: GroundTruth, method: str) -> "Estimates":
        n = len(gt)
        nan = lambda *shape: np.full((n,) + shape, np.nan, np.float64)
        return cls(identity=nan(gt.identity.shape[1]), expression=nan(len(gt.unit_names)),
                   rotation=nan(3), translation=nan(3), landmarks=nan(68, 2), method=method)

    def valid_rows(self) -> np.ndarray:
        """[N] bool: rows with a complete, finite estimate."""
        ok = np.ones(len(self.identity), bool)
        for arr in (self.identity, self.expression, self.rotation, self.landmarks):
            ok &= np.all(np.isfinite(arr.reshape(len(arr), -1)), axis=1)
        return ok


def split_frames(split_dir: str, gt: GroundTruth) -> List[cpem_folder.Frame]:
    """The indexed frames of a split in ground-truth row order (a clear error names any frame
    of the ground truth that the CPEM index lacks)."""
    index = cpem_folder.build_index(split_dir)
    by_key = {f"{f.person_id}/{f.video_id}/{f.frame_name}": f for f in index.frames}
    missing = [k for k in gt.frame_key if k not in by_key]
    if missing:
        raise FileNotFoundError(f"{len(missing)} ground-truth frames of {split_dir!r} are missing "
                                f"or unreadable (first: {missing[0]}); regenerate the split")
    return [by_key[k] for k in gt.frame_key]


def load_images(frames: Sequence[cpem_folder.Frame], size: Optional[int] = None) -> np.ndarray:
    """The frames' images [N, S, S, 3] float32 RGB in [0, 1], resized to `size` when given."""
    out = []
    for frame in frames:
        image = cpem_folder.read_image(frame.image_path)
        if size is not None and image.shape[0] != size:
            interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
            image = cv2.resize(image, (size, size), interpolation=interp)
        out.append(image)
    return np.stack(out)


def _check_units(names: Sequence[str], gt: GroundTruth, what: str) -> None:
    if tuple(names) != tuple(gt.unit_names):
        raise ValueError(f"{what} has expression units {list(names)[:4]}... ({len(names)}), the "
                         f"synthetic data {list(gt.unit_names)[:4]}... ({len(gt.unit_names)}): "
                         f"generate the data with the same face model (--face-model)")


def predict_network(predictor, gt: GroundTruth, frames: Sequence[cpem_folder.Frame],
                    batch_size: int = 16, progress: bool = True) -> Estimates:
    """Runs a predictor on every frame (the synthetic frame is the crop).

    Args:
      predictor: `NetPredictor`-like: attributes image_size (int), model (FaceModel), camera
        (Camera of an image_size image), and __call__(crops [n, S, S, 3] float32) ->
        Coefficients with batch [n].
      gt, frames: the split (frames in ground-truth row order, see `split_frames`).
    Returns:
      Estimates; landmarks are the predicted coefficients projected with the predictor's camera
      and scaled to the ground-truth image size.
    """
    from cpem_jax.geometry.pipeline import project_landmarks

    _check_units(predictor.model.expression_names, gt, "the network's face model")
    est = Estimates.empty(gt, "network")
    scale = gt.image_size / float(predictor.image_size)
    for begin in tqdm(range(0, len(gt), batch_size), desc="evaluate", unit="batch",
                      disable=not progress):
        rows = slice(begin, min(begin + batch_size, len(gt)))
        coeffs = predictor(load_images(frames[rows], predictor.image_size))
        est.identity[rows] = np.asarray(coeffs.identity)
        est.expression[rows] = np.asarray(coeffs.expression)
        est.rotation[rows] = np.asarray(coeffs.rotation)
        est.translation[rows] = np.asarray(coeffs.translation)
        est.landmarks[rows] = np.asarray(
            project_landmarks(predictor.model, coeffs, predictor.camera)) * scale
    return est


def resolve_clip(gt: GroundTruth, clip: Optional[str]) -> int:
    """A clip given as its index, person id or "person/video" -> clip index."""
    if clip is None:
        if gt.n_clips == 1:
            return 0
        raise ValueError(f"the data has {gt.n_clips} clips: pass --clip (an index, or a person id "
                         f"such as {gt.person_id[0]!r}) to say which one the fit result is of")
    if clip.isdigit() and int(clip) < gt.n_clips:
        return int(clip)
    for c in range(gt.n_clips):
        key = gt.clip_key(c)
        if clip in (key, key.split("/")[0]):
            return c
    raise ValueError(f"clip {clip!r} is not in the data (clips 0..{gt.n_clips - 1}, e.g. "
                     f"{gt.clip_key(0)!r})")


def estimates_from_track(track, gt: GroundTruth, clip: int) -> Estimates:
    """A `VideoEstimate` of one clip (e.g. read with `export.load_coefficients`) -> Estimates
    (other clips' rows NaN).

    Frame i is matched with the clip's frame number `track.frame_index[i]`; frames without a
    face stay NaN. Landmarks are the fitted ones in image pixels (= synthetic frame pixels).
    """
    _check_units(track.unit_names, gt, "the fit result")
    rows = gt.clip_rows()[clip]
    est = Estimates.empty(gt, track.method or "fit")
    index = np.asarray(track.frame_index, int)
    if index.min(initial=0) < 0 or index.max(initial=0) >= len(rows):
        raise ValueError(f"the fit result has frame indices {index.min()}..{index.max()}, clip "
                         f"{gt.clip_key(clip)} has {len(rows)} frames: was it fitted on this "
                         f"clip's folder data/{gt.clip_key(clip)}?")
    found = np.asarray(track.face_found, bool)
    target = rows[index[found]]
    for name in ("identity", "expression", "rotation", "translation"):
        getattr(est, name)[target] = track.per_frame(name)[found]
    est.landmarks[target] = track.landmarks_fitted_image()[found]
    return est


def fit_clips(model, gt: GroundTruth, frames: Sequence[cpem_folder.Frame], fit_config,
              clips: Optional[Sequence[int]] = None, progress: bool = True) -> Estimates:
    """Per-video fitting (`SequenceFitter`) of each clip with one identity, the merged noisy
    landmark files (`cpem_folder.load_frame`) as the detections.

    Args:
      model: the face model the data was generated with.
      fit_config: `FitConfig`; its size must be the synthetic image size.
      clips: the clip indices to fit (default all).
    """
    from cpem_jax.fit.fitter import SequenceFitter

    _check_units(model.expression_names, gt, "the face model")
    if fit_config.size != gt.image_size:
        raise ValueError(f"FitConfig.size {fit_config.size} must equal the synthetic image size "
                         f"{gt.image_size}")
    fitter = SequenceFitter(model, fit_config)
    est = Estimates.empty(gt, "per-video fit")
    all_rows = gt.clip_rows()
    clips = range(gt.n_clips) if clips is None else clips
    for c in tqdm(clips, desc="fit clips", unit="clip", disable=not progress):
        rows = all_rows[c]
        crops = load_images([frames[r] for r in rows])
        lms = np.stack([cpem_folder.load_frame(frames[r])["landmarks"] for r in rows])
        fit = fitter.fit(crops, lms, progress=False)
        est.identity[rows] = np.asarray(fit.shared.identity)[None]
        est.expression[rows] = np.asarray(fit.frames.expression)
        est.rotation[rows] = np.asarray(fit.frames.rotation)
        est.translation[rows] = np.asarray(fit.frames.translation)
        est.landmarks[rows] = np.asarray(fit.landmarks_fitted)
    return est


def _identity_vs_truth(est: Estimates, gt: GroundTruth, rows: np.ndarray, id_basis) -> dict:
    """Identity error against the ground truth: coefficient MAE and identity-only mesh RMS."""
    coeff = np.abs(est.identity[rows] - gt.identity[rows]).mean(axis=1)
    # Key names avoid "coefficient_mae", which report.write_report reads as a Fig. 5 curve.
    out = {"identity_mae": float(coeff.mean()), "frames": int(len(rows))}
    if id_basis is not None:
        rms = [identity_metrics.mesh_rms_to_first_mm(
            np.stack([gt.identity[r], est.identity[r]]), id_basis)[1] for r in rows]
        out["identity_mesh_rms_mm"] = float(np.mean(rms))
    return out


def evaluate_estimates(est: Estimates, gt: GroundTruth, id_basis=None,
                       threshold: float = expression_metrics.ACTIVE_THRESHOLD) -> Dict[str, dict]:
    """All metrics on the rows that have an estimate.

    Args:
      est: the estimates; gt: the ground truth.
      id_basis: [V, 3, K_id] (FaceModel.id_basis) for the mesh RMS in mm; None skips it.
      threshold: an expression entry counts in the ten categories when its truth exceeds this.
    Returns:
      section -> dict, for `report.write_report`:
        "Summary" (one row of headline numbers, e.g. for an ablation table),
        "Expression MAE (ten categories)" (FEAFA layout; entries with truth > threshold),
        "Expression MAE per unit" (all evaluated frames), "Identity consistency" (per clip,
        each frame vs the clip's first; curve over frame index), "Identity vs ground truth",
        "Landmark NME by yaw" (% of the ground-truth landmark box size), "Pose error".
    """
    rows = np.flatnonzero(est.valid_rows())
    if len(rows) == 0:
        raise ValueError("no frame has an estimate (all rows NaN): nothing to evaluate")
    names = gt.unit_names
    pred_x, true_x = est.expression[rows], gt.expression[rows]
    results: Dict[str, dict] = {}
    try:
        cats = expression_metrics.unit_category_mae(pred_x, true_x, names, threshold)
        results["Expression MAE (ten categories)"] = {
            "categories": cats, "threshold": threshold, "n_frames": int(len(rows))}
    except ValueError as err:  # A model whose units miss a category: the rest still counts.
        logger.warning("ten-category expression MAE skipped: %s", err)
        cats = None
    per_unit = expression_metrics.per_unit_report(pred_x, true_x, names)
    results["Expression MAE per unit"] = {u: v["mae"] for u, v in per_unit.items()}
    err = np.abs(pred_x - true_x)
    active, inactive = true_x > threshold, true_x < INACTIVE_THRESHOLD

    clip_ids = gt.clip_index[rows]
    identities = []
    for c in np.unique(clip_ids):
        clip_rows = rows[clip_ids == c]
        ident = np.full((int(gt.frame_index[clip_rows].max()) + 1, est.identity.shape[1]), np.nan)
        ident[gt.frame_index[clip_rows]] = est.identity[clip_rows]
        identities.append(ident)
    consistency = identity_metrics.identity_consistency(identities, id_basis)
    results["Identity consistency"] = consistency
    versus = _identity_vs_truth(est, gt, rows, id_basis)
    results["Identity vs ground truth"] = versus

    box = landmark_metrics.box_size(landmark_metrics.landmark_box(gt.landmarks[rows]))
    nme = landmark_metrics.nme(est.landmarks[rows], gt.landmarks[rows], box) * 100.0
    yaw = np.degrees(gt.rotation[rows, 1])
    nme_bins = landmark_metrics.nme_by_yaw_bins(nme, yaw, YAW_EDGES_DEG)
    nme_bins["unit"] = "%"
    results["Landmark NME by yaw"] = nme_bins
    pose = pose_metrics.pose_errors(est.rotation[rows], gt.rotation[rows])
    pose["translation_mae_cm"] = float(np.abs(est.translation[rows]
                                              - gt.translation[rows]).mean())
    results["Pose error"] = pose

    summary = {
        "method": est.method, "frames": int(len(rows)),
        "clips": int(len(identities)),
        "expression_avg_mae_10cat": cats["Avg"]["mae"] if cats else float("nan"),
        "expression_mae_active": float(err[active].mean()) if active.any() else float("nan"),
        "expression_mae_inactive": float(err[inactive].mean()) if inactive.any()
        else float("nan"),
        "expression_mae_all": float(err.mean()),
        "identity_consistency_mae": consistency["coefficient_mae_mean"],
        "identity_consistency_mesh_rms_mm": consistency.get("mesh_rms_mm_mean", float("nan")),
        "identity_vs_truth_mae": versus["identity_mae"],
        "identity_vs_truth_mesh_rms_mm": versus.get("identity_mesh_rms_mm", float("nan")),
        "nme_percent": nme_bins["overall"],
        "pose_geodesic_mean_deg": pose["geodesic_mean_deg"],
    }
    return {"Summary": summary, **results}
