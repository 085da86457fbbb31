"""Checks the estimator's ARKit weights on hand-labelled frames, per front end.

Reads `experiments/labels/frames.csv` (video, frame, label, face, note; video paths relative to
$CPEM_SHARED/data, frame = 0-based frame index in the video, or 0 for a photo). For each front
end (dlib, mediapipe) it builds one estimator with `cpem_jax.estimation.estimate.make_estimator`
(the default FitConfig: no iteration reductions) and runs it once per video on windows of frames
around the labelled ones (`--window W`: frames f - W .. f + W of each labelled frame f, the
windows of one video written in frame order as PNG files into one temporary folder, so the
video keeps one identity), and once per labelled photo face. It then reads the 52 ARKit weights
(`cpem_jax.export.build_arkit_mapping(unit_names).to_arkit`) at the labelled frames and applies
the label's rule (`RULES`, printed with the results).

Windows instead of whole videos save time (the fit runs at a few frames per second); W = 6 keeps
the crop smoothing (Gaussian sigma 2 frames, +-6 frames) of each labelled frame inside its own
window, and gives the tracking stage 6 frames to settle after the jump from the previous window.

Left/right are the subject's own (ARKit's and the face model's convention): wink_left = the
subject's left eye shut, which is on the image right in an unmirrored picture; gaze_left = the
subject looks toward their own left (irises on the image right).

    CPEM_SHARED=/work/shared python benchmarks/label_check.py --json /tmp/label_check.json
"""
from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LABELS = os.path.join(REPO, "experiments", "labels", "frames.csv")


def _mean(w, *names):
    return float(np.mean([w[n] for n in names]))


# label -> (rule in words, test on {ARKit name: weight}).
RULES = {
    "neutral": ("every weight <= 0.2",
                lambda w: max(w.values()) <= 0.2),
    "eyes_closed": ("eyeBlinkLeft and eyeBlinkRight >= 0.5, eyeLookDownLeft and "
                    "eyeLookDownRight < 0.3",
                    lambda w: min(w["eyeBlinkLeft"], w["eyeBlinkRight"]) >= 0.5
                    and max(w["eyeLookDownLeft"], w["eyeLookDownRight"]) < 0.3),
    "wink_left": ("eyeBlinkLeft >= 0.5 and eyeBlinkLeft - eyeBlinkRight >= 0.3",
                  lambda w: w["eyeBlinkLeft"] >= 0.5
                  and w["eyeBlinkLeft"] - w["eyeBlinkRight"] >= 0.3),
    "wink_right": ("eyeBlinkRight >= 0.5 and eyeBlinkRight - eyeBlinkLeft >= 0.3",
                   lambda w: w["eyeBlinkRight"] >= 0.5
                   and w["eyeBlinkRight"] - w["eyeBlinkLeft"] >= 0.3),
    # Gaze: both eyes must turn (with one eye allowed to carry a mean, a fit that holds
    # eyeLookIn near 1 on both eyes would pass every neutral frame as a gaze left and right).
    "gaze_left": ("eyeLookOutLeft >= 0.3 and eyeLookInRight >= 0.3",
                  lambda w: min(w["eyeLookOutLeft"], w["eyeLookInRight"]) >= 0.3),
    "gaze_right": ("eyeLookOutRight >= 0.3 and eyeLookInLeft >= 0.3",
                   lambda w: min(w["eyeLookOutRight"], w["eyeLookInLeft"]) >= 0.3),
    "gaze_up": ("eyeLookUpLeft >= 0.3 and eyeLookUpRight >= 0.3",
                lambda w: min(w["eyeLookUpLeft"], w["eyeLookUpRight"]) >= 0.3),
    "gaze_down": ("eyeLookDownLeft >= 0.3 and eyeLookDownRight >= 0.3",
                  lambda w: min(w["eyeLookDownLeft"], w["eyeLookDownRight"]) >= 0.3),
    "brows_lowered": ("mean(browDownLeft, browDownRight) >= 0.3",
                      lambda w: _mean(w, "browDownLeft", "browDownRight") >= 0.3),
    "frown": ("mean(mouthFrownLeft, mouthFrownRight) >= 0.3",
              lambda w: _mean(w, "mouthFrownLeft", "mouthFrownRight") >= 0.3),
    "cheek_puff": ("cheekPuff >= 0.3", lambda w: w["cheekPuff"] >= 0.3),
    "jaw_open": ("jawOpen >= 0.3", lambda w: w["jawOpen"] >= 0.3),
    "smile": ("mean(mouthSmileLeft, mouthSmileRight) >= 0.3",
              lambda w: _mean(w, "mouthSmileLeft", "mouthSmileRight") >= 0.3),
    "slight_smile": ("mean(mouthSmileLeft, mouthSmileRight) >= 0.1 and every weight other than "
                     "mouthSmile*, cheekSquint*, eyeSquint*, mouthDimple* <= 0.2",
                     lambda w: _mean(w, "mouthSmileLeft", "mouthSmileRight") >= 0.1
                     and max(v for k, v in w.items() if not k.startswith(
                         ("mouthSmile", "cheekSquint", "eyeSquint", "mouthDimple"))) <= 0.2),
    "speaking": ("jawOpen >= 0.1 (lips parted)", lambda w: w["jawOpen"] >= 0.1),
    "lips_pressed": ("mean(mouthPressLeft, mouthPressRight) >= 0.2 or mouthShrugLower >= 0.2",
                     lambda w: _mean(w, "mouthPressLeft", "mouthPressRight") >= 0.2
                     or w["mouthShrugLower"] >= 0.2),
}
# The weights shown next to each result.
SHOWN = {
    "neutral": (), "eyes_closed": ("eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft"),
    "wink_left": ("eyeBlinkLeft", "eyeBlinkRight"),
    "wink_right": ("eyeBlinkRight", "eyeBlinkLeft"),
    "gaze_left": ("eyeLookOutLeft", "eyeLookInRight"),
    "gaze_right": ("eyeLookOutRight", "eyeLookInLeft"),
    "gaze_up": ("eyeLookUpLeft", "eyeLookUpRight"),
    "gaze_down": ("eyeLookDownLeft", "eyeLookDownRight"),
    "brows_lowered": ("browDownLeft", "browDownRight"),
    "frown": ("mouthFrownLeft", "mouthFrownRight"), "cheek_puff": ("cheekPuff",),
    "jaw_open": ("jawOpen",), "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "slight_smile": ("mouthSmileLeft", "mouthSmileRight"), "speaking": ("jawOpen",),
    "lips_pressed": ("mouthPressLeft", "mouthPressRight", "mouthShrugLower"),
}


def read_labels(path):
    """frames.csv -> list of dicts (video, frame int, label, face int, note)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for k, row in enumerate(csv.DictReader(f), start=2):
            if row["label"] not in RULES:
                sys.exit(f"label_check: {path}:{k}: unknown label {row['label']!r}; known: "
                         f"{', '.join(RULES)}")
            rows.append({"video": row["video"], "frame": int(row["frame"]),
                         "label": row["label"], "face": int(row.get("face") or 0),
                         "note": row.get("note", "")})
    return rows


def is_photo(video):
    return video.lower().endswith((".jpg", ".jpeg", ".png"))


def window_frames(frames, window, count):
    """Sorted union of [f - window, f + window] over frames, inside [0, count)."""
    keep = set()
    for f in frames:
        keep.update(range(max(0, f - window), min(count, f + window + 1)))
    return sorted(keep)


def write_window_folder(video_path, frames, folder):
    """Writes the given frames of a video as folder/000000.png, ... in order; returns the
    frames actually written (a video may hold fewer frames than its header says)."""
    import cv2
    wanted = set(frames)
    written = []
    capture = cv2.VideoCapture(video_path)
    index = 0
    while index <= frames[-1]:
        ok, image = capture.read()
        if not ok:
            break
        if index in wanted:
            cv2.imwrite(os.path.join(folder, f"{len(written):06d}.png"), image)
            written.append(index)
        index += 1
    capture.release()
    return written


def frame_count(video_path):
    import cv2
    capture = cv2.VideoCapture(video_path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


def arkit_rows(estimate):
    """VideoEstimate -> [N, 52] ARKit weights (NaN rows where no face)."""
    from cpem_jax.export import build_arkit_mapping
    mapping = build_arkit_mapping(estimate.unit_names)
    return mapping.to_arkit(estimate.per_frame("expression"))


def parse_weights(text):
    """'sp=0.3,eye_shut=1' -> {field: float} of `FitWeights`; exits with one line on a bad
    item."""
    from cpem_jax.fit.objective import weight_changes
    try:
        return weight_changes(text)
    except ValueError as err:
        sys.exit(f"label_check: --weights: {err}")


def check(rows, landmarker_name, data_root, window, method, checkpoint, progress,
          weights=None):
    """Runs one front end over every labelled video/photo; returns per-row results.
    `weights`: FitWeights fields to change from their defaults (method "fit")."""
    from cpem_jax.detect import make_landmarker
    from cpem_jax.estimation.estimate import make_estimator
    from cpem_jax.export import ARKIT_NAMES

    landmarker = make_landmarker(landmarker_name)
    fit_config = None
    if weights:
        from cpem_jax.fit.fitter import FitConfig
        base = FitConfig()
        fit_config = dataclasses.replace(base, weights=dataclasses.replace(base.weights,
                                                                           **weights))
    estimator = make_estimator(method, checkpoint=checkpoint, landmarker=landmarker,
                               fit_config=fit_config)
    by_source = collections.OrderedDict()
    for row in rows:
        by_source.setdefault((row["video"], row["face"]), []).append(row)
    results, timings = [], {}
    for (video, face), items in by_source.items():
        path = os.path.join(data_root, video)
        start = time.perf_counter()
        if is_photo(video):
            estimate = estimator(path, face=face, progress=progress)
            index_of = {0: 0}
            n_frames = 1
        else:
            wanted = window_frames([r["frame"] for r in items], window, frame_count(path))
            with tempfile.TemporaryDirectory(prefix="label_check_") as folder:
                written = write_window_folder(path, wanted, folder)
                estimate = estimator(folder, face=face, progress=progress)
            index_of = {f: i for i, f in enumerate(written)}
            n_frames = len(written)
        seconds = time.perf_counter() - start
        timings[f"{video}#{face}"] = {"frames": n_frames, "seconds": round(seconds, 1)}
        print(f"  {landmarker_name}: {video} face {face}: {n_frames} frames in {seconds:.0f} s",
              flush=True)
        weights = arkit_rows(estimate)
        for row in items:
            i = index_of.get(row["frame"])
            if i is None or not np.all(np.isfinite(weights[i])):
                results.append({**row, "front_end": landmarker_name, "passed": False,
                                "weights": None, "why": "no face at this frame"})
                continue
            w = {name: float(v) for name, v in zip(ARKIT_NAMES, weights[i])}
            passed = bool(RULES[row["label"]][1](w))
            top = sorted(w.items(), key=lambda kv: -kv[1])[:3]
            results.append({**row, "front_end": landmarker_name, "passed": passed,
                            "shown": {k: round(w[k], 2) for k in SHOWN[row["label"]]},
                            "top3": [(k, round(v, 2)) for k, v in top], "weights": w})
    return results, timings


def summary_table(results, front_ends):
    """Markdown: per label, passes / labelled frames for each front end, and as a control how
    many of the neutral frames the same rule would pass (a rule that passes neutral faces is no
    evidence for its label)."""
    labels = list(dict.fromkeys(r["label"] for r in results))
    neutral = {fe: [r["weights"] for r in results if r["label"] == "neutral"
                    and r["front_end"] == fe and r["weights"] is not None] for fe in front_ends}
    lines = ["| label | rule | " + " | ".join(front_ends) + " | "
             + " | ".join(f"{fe}: neutral frames passing" for fe in front_ends) + " |",
             "| --- | --- | " + " | ".join("---" for _ in front_ends * 2) + " |"]
    totals = {fe: [0, 0] for fe in front_ends}
    for label in labels:
        cells, controls = [], []
        for fe in front_ends:
            mine = [r for r in results if r["label"] == label and r["front_end"] == fe]
            ok = sum(r["passed"] for r in mine)
            totals[fe][0] += ok
            totals[fe][1] += len(mine)
            cells.append(f"{ok}/{len(mine)}")
            controls.append("-" if label == "neutral" else
                            f"{sum(RULES[label][1](w) for w in neutral[fe])}/{len(neutral[fe])}")
        lines.append(f"| {label} | {RULES[label][0]} | " + " | ".join(cells + controls) + " |")
    lines.append("| all | | " + " | ".join(f"{a}/{b}" for a, b in totals.values()) + " | "
                 + " | ".join("" for _ in front_ends) + " |")
    return "\n".join(lines)


def detail_table(results, front_ends):
    """Markdown: one row per labelled frame, pass/fail and the rule's weights per front end."""
    keyed = collections.OrderedDict()
    for r in results:
        keyed.setdefault((r["video"], r["frame"], r["face"], r["label"]), {})[r["front_end"]] = r
    lines = ["| video | frame | label | " + " | ".join(front_ends) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in front_ends) + " |"]
    for (video, frame, face, label), by_fe in keyed.items():
        cells = []
        for fe in front_ends:
            r = by_fe.get(fe)
            if r is None:
                cells.append("-")
            elif r["weights"] is None:
                cells.append(f"FAIL ({r['why']})")
            else:
                shown = dict(r["shown"])
                if r["label"] in ("neutral", "slight_smile") and not r["passed"]:
                    others = [kv for kv in r["top3"] if kv[0] not in shown]
                    shown.update(dict(others[:2]))
                cells.append(("pass " if r["passed"] else "FAIL ")
                             + ", ".join(f"{k} {v:.2f}" for k, v in shown.items()))
        name = os.path.basename(video) + (f" (face {face})" if face else "")
        lines.append(f"| {name} | {frame} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rescore(path, labels_path=None):
    """Prints the tables of a saved run with the current RULES; with `labels_path`, each saved
    face (video, frame, face) takes its label and note from that frames.csv (a corrected label
    is scored without a new fit; faces not in the file keep the saved ones)."""
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    current = {(row["video"], row["frame"], row["face"]): row
               for row in (read_labels(labels_path) if labels_path else [])}
    results = []
    for r in saved["results"]:
        r = dict(r)
        row = current.get((r["video"], r["frame"], r["face"]))
        if row is not None:
            r["label"], r["note"] = row["label"], row["note"]
        if r["weights"] is not None:
            r["passed"] = bool(RULES[r["label"]][1](r["weights"]))
            r["shown"] = {k: round(r["weights"][k], 2) for k in SHOWN[r["label"]]}
        results.append(r)
    front_ends = list(dict.fromkeys(r["front_end"] for r in results))
    print(summary_table(results, front_ends))
    print()
    print(detail_table(results, front_ends))
    print()
    print(f"rescored {path}: commit {saved['commit']} {saved.get('code_note', '')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", default=DEFAULT_LABELS, help="frames.csv")
    parser.add_argument("--landmarkers", default="dlib,mediapipe",
                        help="comma-separated front ends")
    parser.add_argument("--window", type=int, default=6, help="frames each side of a label")
    parser.add_argument("--method", default="fit", choices=("fit", "net"))
    parser.add_argument("--checkpoint", help="with --method net: the training workdir")
    parser.add_argument("--only", help="comma-separated video names to keep (quick checks)")
    parser.add_argument("--json", help="write every result (all 52 weights) here")
    parser.add_argument("--rescore", metavar="JSON",
                        help="no estimator: apply the current RULES and the labels of --labels "
                        "to the weights saved by an earlier --json run and print the tables")
    parser.add_argument("--progress", action="store_true", help="progress bars")
    parser.add_argument("--weights", default="",
                        help="with --method fit: fit weights to change, e.g. eye_shut=1,sp=0.3 "
                        "(FitWeights fields)")
    parser.add_argument("--code-note", default="",
                        help="how the code was taken, recorded with the commit (e.g. for a "
                        "copy made with git archive)")
    args = parser.parse_args()
    if args.rescore:
        return rescore(args.rescore, args.labels)
    if args.window < 0:
        sys.exit(f"label_check: --window must be >= 0, got {args.window}")
    if args.weights and args.method != "fit":
        sys.exit("label_check: --weights changes the fit's weights; it needs --method fit")
    weights = parse_weights(args.weights)
    shared = os.environ.get("CPEM_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
    data_root = os.path.join(shared, "data")
    if not os.path.isdir(data_root):
        sys.exit(f"label_check: {data_root} is not a folder; set CPEM_SHARED to the shared data")
    rows = read_labels(args.labels)
    if args.only:
        keep = set(args.only.split(","))
        rows = [r for r in rows if os.path.basename(r["video"]) in keep]
    missing = sorted({r["video"] for r in rows
                      if not os.path.isfile(os.path.join(data_root, r["video"]))})
    if missing:
        sys.exit(f"label_check: missing under {data_root}: {', '.join(missing)}")
    from cpem_jax import compilation_cache
    compilation_cache.enable()
    front_ends = args.landmarkers.split(",")
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    commit = git.stdout.strip() if git.returncode == 0 else "(not a git checkout)"
    dirty = git.returncode == 0 and bool(subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip())
    load_before = os.getloadavg()
    results, timings = [], {}
    start = time.perf_counter()
    for fe in front_ends:
        print(f"front end {fe}:", flush=True)
        res, tim = check(rows, fe, data_root, args.window, args.method, args.checkpoint,
                         args.progress, weights)
        results += res
        timings[fe] = tim
    total = time.perf_counter() - start
    print()
    print(summary_table(results, front_ends))
    print()
    print(detail_table(results, front_ends))
    print()
    print(f"commit {commit}{' (with uncommitted changes)' if dirty else ''} {args.code_note}; "
          f"load average "
          f"{tuple(round(v, 2) for v in load_before)} before, "
          f"{tuple(round(v, 2) for v in os.getloadavg())} after; {total / 60:.1f} min")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": " ".join(sys.argv), "commit": commit, "dirty": dirty,
                       "code_note": args.code_note,
                       "window": args.window, "method": args.method, "weights": weights,
                       "rules": {k: v[0] for k, v in RULES.items()}, "timings": timings,
                       "load_before": load_before, "load_after": os.getloadavg(),
                       "minutes": total / 60, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
