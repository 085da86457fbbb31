"""`cpem-jax evaluate --aflw2000 DIR` / `--landmarks68 DIR`: a front end, and an estimator on top
of it, scored on annotated still images; results.json and results.md.

Each image is one identity: the estimator (per-video fit or network, built by the caller with
`cpem_jax.estimation.estimate.make_estimator`) runs on it as a one-frame input through
`annotated.GroundTruthBoxLandmarker`, so it sees the annotated face, and the ground-truth box
where the detector misses it (counted). The front end's own 68 points are scored in the same run
(a detection pass that also learns the fallback box convention), so one command measures both;
`landmarker_only` skips the estimator.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from typing import Callable, List, Optional

import numpy as np

from cpem_jax.evaluation import aflw2000, annotated, landmarks, landmarks68

SAMPLE_CAVEAT = ("The paper rows are on all 2,000 AFLW2000-3D images; ours are on {n} images "
                 "(the shared sample holds 100), so each image weighs 1 / (images in its bin) "
                 "in its bin mean, and a small bin moves by whole points with one image. The paper scores landmarks of a "
                 "fitted dense face model; the front-end row is the detector/landmarker's raw "
                 "68 points, not a result of the method.")


def _machine() -> dict:
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"python": platform.python_version(), "cpu_count": os.cpu_count(),
            "load_average": load, "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def _front_end_name(landmarker) -> str:
    name = type(landmarker).__name__
    return {"MediaPipeLandmarker": "mediapipe", "DlibLandmarker": "dlib"}.get(name, name)


def _aflw_block(scores: dict, missed: np.ndarray, yaw_deg: np.ndarray) -> dict:
    labels = landmarks.yaw_bin_labels()
    bins = [scores["bins"][label] for label in labels]
    bin_of = landmarks.yaw_bin_index(yaw_deg)
    interval = scores["interval95"]
    return {"nme_by_yaw_bin": [b["nme"] for b in bins], "nme_mean": scores["mean_of_bins"],
            "nme_by_yaw_bin_interval95": [interval["bins"][label] for label in labels],
            "nme_mean_interval95": interval["mean_of_bins"],
            "nme_overall": scores["overall"], "n_scored_by_yaw_bin": [b["count"] for b in bins],
            "detector_misses": int(np.sum(missed)),
            "detector_misses_by_yaw_bin": [int(np.sum(missed & (bin_of == b)))
                                           for b in range(len(labels))],
            "unscored": scores["n_unscored"]}


def _estimate(landmarker, front, make_estimator, data, progress: bool, desc: str,
              face_model: Optional[str] = None):
    """The estimator of `make_estimator` (its model loaded from the spec `face_model`) on every
    annotated image, its front end seeing only the annotated face (the ground-truth box where
    the detector misses it)."""
    front_end = annotated.GroundTruthBoxLandmarker(landmarker, front.offset)
    return annotated.estimate_annotated(make_estimator(front_end), front_end, data.image_paths,
                                        data.landmarks, progress=progress, desc=desc,
                                        face_model=face_model)


def _timings(est) -> dict:
    """Wall and CPU seconds per image of an estimator run (mean; first and median image)."""
    return {"seconds_per_image": float(np.mean(est.seconds)),
            "cpu_seconds_per_image": float(np.mean(est.cpu_s)),
            "seconds_first_image": float(est.seconds[0]),
            "seconds_median_image": float(np.median(est.seconds))}


def run_aflw2000(root: str, landmarker,
                 make_estimator: Optional[Callable[[annotated.GroundTruthBoxLandmarker], object]]
                 = None, limit: Optional[int] = None, progress: bool = True,
                 method: Optional[str] = None, face_model: Optional[str] = None) -> dict:
    """Scores a front end (and an estimator on it) on AFLW2000-3D.

    Args:
      root: the AFLW2000-3D folder (`aflw2000.load_aflw2000`).
      landmarker: the real front end (a `cpem_jax.detect.FaceLandmarker`).
      make_estimator: front_end -> estimator (`estimator(path, face=0, progress=False) ->
        VideoEstimate`); None scores the front end only.
      limit: a yaw-balanced subset of this many images (`aflw2000.balanced_subset`).
      method: the estimator's name for the report ("fit", "net").
      face_model: the spec the estimator's model comes from (`load_face_model`), which also
        gives the 3D-convention points' reading model (`ibug68_3d.ibug68_3d_reading`).
    Returns:
      A JSON-ready dict (NaN kept as float; `write_json` writes null): `nme_by_yaw_bin` [3] %,
      `nme_mean` (mean of the bins), `n_by_yaw_bin`, `detector_misses`, `pose_mae_deg`
      ({pitch, yaw, roll} or None for the front end only), `seconds_per_image`, `front_end_only`
      (the same NME fields for the raw 68 points), `points` (which 68 points of the fitted face
      the headline scores: "3d68", its 3D-convention iBUG vertices, `face_model.ibug68_3d`,
      the annotation's convention, where the model has them; else "model", its own landmark
      vertices), `model_68` (the same NME fields for its own landmark vertices, when the
      headline is "3d68"), `dense_68` (the same for the fitted face's
      points at the dense front end's 68, `image_points.dense68_image`, when the model has a dense
      table), `per_image`, settings and the paper's rows.
    """
    data = aflw2000.load_aflw2000(root, limit)
    labels = landmarks.yaw_bin_labels()
    bin_of = landmarks.yaw_bin_index(data.yaw_deg)
    load_before = _machine()["load_average"]
    front = aflw2000.predict_aflw2000(landmarker, data, progress=progress)
    front_scores = aflw2000.aflw2000_scores(front.landmarks, data.landmarks, data.yaw_deg,
                                            front.missed)
    front_block = _aflw_block(front_scores, front.missed, data.yaw_deg)
    front_block["seconds_per_image"] = float(np.mean(front.detect_s + front.fallback_s))
    front_block["cpu_seconds_per_image"] = float(np.mean(front.cpu_s))
    front_nme = 100 * landmarks.nme(front.landmarks, data.landmarks,
                                    landmarks.box_size(landmarks.landmark_box(data.landmarks)))
    name = _front_end_name(landmarker)
    out = {"dataset": "AFLW2000-3D", "root": os.path.abspath(root),
           "n_images": len(data.names), "yaw_bins": labels,
           "n_by_yaw_bin": [int(np.sum(bin_of == b)) for b in range(len(labels))],
           "front_end": name, "landmarker_only": make_estimator is None,
           "method": None if make_estimator is None else (method or "estimator"),
           "unit": "%", "front_end_only": front_block,
           "paper": {k: {"nme_by_yaw_bin": list(v[:3]), "nme_mean": v[3]}
                     for k, v in aflw2000.PAPER_AFLW2000_NME.items()}}
    per_image = [{"name": n, "yaw_deg": float(y), "yaw_bin": labels[b] if b >= 0 else None,
                  "front_end_nme": float(e), "front_end_missed": bool(m)}
                 for n, y, b, e, m in zip(data.names, data.yaw_deg, bin_of, front_nme,
                                          front.missed)]
    if make_estimator is None:
        out.update({k: v for k, v in front_block.items()})
        out["pose_mae_deg"] = None
        out["label"] = f"{name} front end, raw 68 points"
    else:
        est = _estimate(landmarker, front, make_estimator, data, progress,
                        f"{method or 'estimator'} on AFLW2000-3D", face_model)
        own = est.landmarks
        points = own if est.landmarks_3d68 is None else est.landmarks_3d68
        out["points"] = "model" if est.landmarks_3d68 is None else "3d68"
        scores = aflw2000.aflw2000_scores(points, data.landmarks, data.yaw_deg, est.missed)
        out.update(_aflw_block(scores, est.missed, data.yaw_deg))
        if est.landmarks_3d68 is not None:
            out["model_68"] = _aflw_block(
                aflw2000.aflw2000_scores(own, data.landmarks, data.yaw_deg, est.missed),
                est.missed, data.yaw_deg)
        pose = aflw2000.pose_errors_deg(est.rotation, data)
        out["pose_mae_deg"] = {k: pose[k] for k in ("pitch", "yaw", "roll")}
        out["pose_geodesic_deg"] = pose["geodesic"]
        out["pose_scored"] = pose["count"]
        out.update(_timings(est))
        out["label"] = f"{method or 'estimator'} ({name} front end)"
        gt_size = landmarks.box_size(landmarks.landmark_box(data.landmarks))
        nme = 100 * landmarks.nme(points, data.landmarks, gt_size)
        nme_own = 100 * landmarks.nme(own, data.landmarks, gt_size)
        nme_dense = None
        if est.landmarks_dense68 is not None:
            out["dense_68"] = _aflw_block(
                aflw2000.aflw2000_scores(est.landmarks_dense68, data.landmarks, data.yaw_deg,
                                         est.missed), est.missed, data.yaw_deg)
            nme_dense = 100 * landmarks.nme(est.landmarks_dense68, data.landmarks, gt_size)
        for row, i in zip(per_image, range(len(per_image))):
            row.update({"nme": float(nme[i]), "missed": bool(est.missed[i]),
                        "seconds": float(est.seconds[i]),
                        "pose_error_deg": pose["per_image"][i, :3].tolist(),
                        "pose_geodesic_deg": float(pose["per_image"][i, 3]),
                        "estimated_rotation_deg": np.degrees(est.rotation[i]).tolist(),
                        "error": est.errors[i] or None})
            if nme_dense is not None:
                row["nme_dense_68"] = float(nme_dense[i])
            if est.landmarks_3d68 is not None:
                row["nme_model_68"] = float(nme_own[i])
    for row, pose_deg in zip(per_image, data.angles_deg):
        row["release_angles_deg"] = pose_deg.tolist()
    out["per_image"] = per_image
    machine = _machine()
    machine["load_average_before"] = load_before
    out["machine"] = machine
    out["_arrays"] = _arrays(data.names, front, None if make_estimator is None else est)
    return out


def _arrays(names, front, est) -> dict:
    """The raw predictions, for predictions.npz (re-scoring without re-running)."""
    arrays = {"names": np.asarray(names), "front_end_landmarks": front.landmarks,
              "front_end_missed": front.missed, "front_end_boxes": front.boxes}
    if est is not None:
        arrays.update({"landmarks": est.landmarks, "rotation": est.rotation,
                       "expression": est.expression, "unit_names": np.asarray(est.unit_names),
                       "missed": est.missed, "seconds": est.seconds})
        if est.landmarks_dense68 is not None:
            arrays["landmarks_dense68"] = est.landmarks_dense68
        if est.landmarks_3d68 is not None:
            arrays["landmarks_3d68"] = est.landmarks_3d68
    return arrays


def run_landmarks68(root: str, landmarker,
                    make_estimator: Optional[Callable[[annotated.GroundTruthBoxLandmarker],
                                                      object]] = None,
                    limit: Optional[int] = None, origin: int = 1, progress: bool = True,
                    method: Optional[str] = None) -> dict:
    """Scores a front end (and an estimator on it) on a 68-point .pts folder (300-W layout).

    Args as `run_aflw2000`, plus `origin` (1: 300-W's 1-based coordinates; 0: 0-based, see
    `landmarks68`). `limit` keeps the first N faces by path.
    Returns:
      A JSON-ready dict: `nme_interocular`, `nme_box` (%), `n_images`, `detector_misses`,
      `unscored`, `seconds_per_image`, `front_end_only` (the same fields for the raw 68 points),
      `per_image`, settings.
    """
    data = landmarks68.load_landmarks68(root, limit, origin)
    load_before = _machine()["load_average"]
    front = annotated.predict_annotated(landmarker, data.image_paths, data.landmarks,
                                        progress=progress, desc="68-point set")
    fs = landmarks68.landmarks68_scores(front.landmarks, data.landmarks, front.missed)

    def block(scores):
        return {"nme_interocular": scores["nme_interocular"], "nme_box": scores["nme_box"],
                "n_scored": scores["count"], "detector_misses": scores["n_missed"],
                "unscored": scores["n_unscored"]}

    front_block = block(fs)
    front_block["seconds_per_image"] = float(np.mean(front.detect_s + front.fallback_s))
    front_block["cpu_seconds_per_image"] = float(np.mean(front.cpu_s))
    name = _front_end_name(landmarker)
    out = {"dataset": "68-point .pts", "root": os.path.abspath(root),
           "n_images": len(data.names), "pts_origin": origin, "front_end": name,
           "landmarker_only": make_estimator is None,
           "method": None if make_estimator is None else (method or "estimator"), "unit": "%",
           "front_end_only": front_block}
    per_image = [{"name": n, "front_end_nme_interocular": float(a),
                  "front_end_nme_box": float(b), "front_end_missed": bool(m)}
                 for n, a, b, m in zip(data.names, fs["per_image_interocular"],
                                       fs["per_image_box"], front.missed)]
    if make_estimator is None:
        out.update(front_block)
        out["label"] = f"{name} front end, raw 68 points"
    else:
        est = _estimate(landmarker, front, make_estimator, data, progress,
                        f"{method or 'estimator'} on 68-point set")
        es = landmarks68.landmarks68_scores(est.landmarks, data.landmarks, est.missed)
        out.update(block(es))
        out.update(_timings(est))
        out["label"] = f"{method or 'estimator'} ({name} front end)"
        nme_dense = None
        if est.landmarks_dense68 is not None:
            ds = landmarks68.landmarks68_scores(est.landmarks_dense68, data.landmarks, est.missed)
            out["dense_68"] = {**block(ds), "seconds_per_image": out["seconds_per_image"]}
            nme_dense = ds["per_image_interocular"]
        for i, row in enumerate(per_image):
            row.update({"nme_interocular": float(es["per_image_interocular"][i]),
                        "nme_box": float(es["per_image_box"][i]),
                        "missed": bool(est.missed[i]), "seconds": float(est.seconds[i]),
                        "error": est.errors[i] or None})
            if nme_dense is not None:
                row["nme_interocular_dense_68"] = float(nme_dense[i])
    out["per_image"] = per_image
    machine = _machine()
    machine["load_average_before"] = load_before
    out["machine"] = machine
    out["_arrays"] = _arrays(data.names, front, None if make_estimator is None else est)
    return out


# -- reports -----------------------------------------------------------------------------------

def _f(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def write_json(results: dict, path: str) -> None:
    """Writes `results` as strict JSON (NaN -> null, numpy -> Python)."""
    from cpem_jax.evaluation.report import to_jsonable
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_jsonable(results), f, indent=1)
        f.write("\n")


def aflw2000_markdown(results: dict) -> str:
    """results.md of `run_aflw2000`: our rows beside the paper's, misses, pose, speed, caveat."""
    labels = results["yaw_bins"]
    n = results["n_images"]
    counts = results["n_by_yaw_bin"]
    lines = [f"# AFLW2000-3D: {results['label']}", "",
             f"{n} images ({' / '.join(map(str, counts))} in the |yaw| bins "
             f"{', '.join(labels)}), `{results['root']}`. NME = mean 2D distance of the 68 "
             "points / sqrt(w * h) of the ground-truth landmark box, in %; mean = mean of the "
             "three bin means. Every image is scored: where the detector misses the annotated "
             "face, the landmarker starts from a box placed on the ground truth and the image "
             "counts as a miss. In brackets: the 95 % bootstrap interval (2,000 draws of the "
             "images, resampled within each bin), how far the figure could move on other "
             "images drawn the same way.", "",
             "| row | " + " | ".join(f"yaw {b}" for b in labels) + " | mean of bins |",
             "| --- | " + " | ".join("---" for _ in labels) + " | --- |"]

    def interval(span):
        return f" [{_f(span[0])}, {_f(span[1])}]" if span else ""

    def row(title, block, with_misses=True):
        cells = []
        spans = block.get("nme_by_yaw_bin_interval95") or [None] * len(labels)
        for b, value in enumerate(block["nme_by_yaw_bin"]):
            cell = _f(value) + interval(spans[b])
            if with_misses:
                cell += f" (miss {block['detector_misses_by_yaw_bin'][b]}/{counts[b]})"
            cells.append(cell)
        return (f"| {title} | " + " | ".join(cells) + f" | {_f(block['nme_mean'])}"
                + interval(block.get("nme_mean_interval95")) + " |")

    if not results["landmarker_only"]:
        if results.get("points") == "3d68":
            lines.append(row(f"ours: {results['label']}, the model's 3D-convention 68 vertices",
                             results))
            lines.append(row(f"ours: {results['label']}, the model's own 68 landmark vertices",
                             results["model_68"]))
        else:
            lines.append(row(f"ours: {results['label']}, model landmarks", results))
        if results.get("dense_68"):
            lines.append(row(f"ours: {results['label']}, the model's points at the dense "
                             "front end's 68", results["dense_68"]))
    lines.append(row(f"ours: {results['front_end']} front end, raw 68 points",
                     results["front_end_only"]))
    for title, paper in results["paper"].items():
        lines.append(f"| {title}, dense-model fit, 2,000 images | "
                     + " | ".join(_f(v) for v in paper["nme_by_yaw_bin"])
                     + f" | {_f(paper['nme_mean'])} |")
    lines += ["", SAMPLE_CAVEAT.format(n=n), ""]
    if results.get("pose_mae_deg"):
        p = results["pose_mae_deg"]
        lines += ["Head pose, mean absolute error in degrees: (pitch, yaw, roll) in the "
                  "release's convention (the estimate decomposed as the ground truth's "
                  "Pose_Para), and the geodesic angle between the two rotations "
                  "(`cpem_jax.evaluation.aflw2000.pose_errors_deg`):", "",
                  "| pitch | yaw | roll | geodesic | images |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {_f(p['pitch'])} | {_f(p['yaw'])} | {_f(p['roll'])} | "
                  f"{_f(results['pose_geodesic_deg'])} | {results['pose_scored']} |", ""]
    lines += ["| speed | wall s/image | CPU s/image |", "| --- | --- | --- |"]
    if not results["landmarker_only"]:
        lines.append(f"| {results['label']} (detect + crop + estimate; first image "
                     f"{_f(results['seconds_first_image'], 1)} s) | "
                     f"{_f(results['seconds_per_image'], 2)} | "
                     f"{_f(results['cpu_seconds_per_image'], 2)} |")
    fe = results["front_end_only"]
    lines += [f"| {results['front_end']} front end (detect + fallback) | "
              f"{_f(fe['seconds_per_image'], 3)} | {_f(fe['cpu_seconds_per_image'], 3)} |", "",
              f"Machine: {results['machine']['cpu_count']} CPUs, load average "
              f"{results['machine']['load_average_before']} before and "
              f"{results['machine']['load_average']} after; {results['machine']['time']}.", ""]
    return "\n".join(lines)


def landmarks68_markdown(results: dict) -> str:
    """results.md of `run_landmarks68`."""
    lines = [f"# 68-point landmarks: {results['label']}", "",
             f"{results['n_images']} faces under `{results['root']}` (.pts coordinates "
             f"{'1-based (300-W)' if results['pts_origin'] == 1 else '0-based'}). NME in %: "
             "mean point distance / outer-eye-corner distance (points 36, 45), and / sqrt(w * h) "
             "of the ground-truth landmark box. Every face is scored; detector misses start "
             "from a box on the ground truth and are counted.", "",
             "| row | NME inter-ocular | NME box | misses | unscored | wall s/image |",
             "| --- | --- | --- | --- | --- | --- |"]

    def row(title, block):
        return (f"| {title} | {_f(block['nme_interocular'])} | {_f(block['nme_box'])} | "
                f"{block['detector_misses']}/{results['n_images']} | {block['unscored']} | "
                f"{_f(block['seconds_per_image'], 3)} |")

    if not results["landmarker_only"]:
        lines.append(row(f"ours: {results['label']}, model landmarks", results))
        if results.get("dense_68"):
            lines.append(row(f"ours: {results['label']}, the model's points at the dense "
                             "front end's 68", results["dense_68"]))
    lines.append(row(f"ours: {results['front_end']} front end, raw 68 points",
                     results["front_end_only"]))
    m = results["machine"]
    lines += ["", f"Machine: {m['cpu_count']} CPUs, load average {m['load_average_before']} "
              f"before and {m['load_average']} after; {m['time']}.", ""]
    return "\n".join(lines)


def write_still_image_report(results: dict, out_dir: str) -> List[str]:
    """Writes OUT/results.json, OUT/results.md and OUT/predictions.npz (the raw predictions
    under `results["_arrays"]`: landmarks [N, 68, 2] image pixels, rotation [N, 3] radians,
    expression [N, K], per image); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "results.json")
    md_path = os.path.join(out_dir, "results.md")
    npz_path = os.path.join(out_dir, "predictions.npz")
    results = dict(results)
    arrays = results.pop("_arrays", None)
    if arrays is not None:
        np.savez_compressed(npz_path, **arrays)
    write_json(results, json_path)
    text = (aflw2000_markdown(results) if results["dataset"] == "AFLW2000-3D"
            else landmarks68_markdown(results))
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(text)
    return [json_path, md_path] + ([npz_path] if arrays is not None else [])
