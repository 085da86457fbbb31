"""The hand-labelled frames scored on finished runs' tracks (e.g. live runs), beside a saved
`label_check.py --json` run of the offline fit.

    # one live run per labelled video (every frame, no real-time source):
    cpem-jax retarget ../shared/data/videos/d0.mp4 -o LIVE/d0 --live --outputs json --no-preview
    python benchmarks/label_check_tracks.py --tracks LIVE --name live \
        --compare /tmp/label_check.json --compare-front-end mediapipe

Reads TRACKS/<video stem>/blendshapes.json (the raw, unsmoothed ARKit weights of each frame) at
the labelled frames of `experiments/labels/frames.csv` (photos are skipped: a live run takes a
video or a camera), applies `label_check.RULES`, prints the summary and per-frame tables with the
compared run's column beside, and lists every label the compared run passes and this one fails.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import label_check  # noqa: E402  (the rules, the label reader and the tables)
from cpem_jax.export import ARKIT_NAMES  # noqa: E402


def track_results(rows, tracks: str, name: str):
    results, cache = [], {}
    for row in rows:
        if label_check.is_photo(row["video"]):
            continue
        stem = os.path.splitext(os.path.basename(row["video"]))[0]
        if stem not in cache:
            path = os.path.join(tracks, stem, "blendshapes.json")
            if not os.path.isfile(path):
                sys.exit(f"label_check_tracks: no {path}; run that video first")
            with open(path, encoding="utf-8") as f:
                frames = json.load(f)["frames"]
            cache[stem] = {fr["frame"]: fr["raw"]["blendshapes"] for fr in frames
                           if fr["face_found"]}
        weights = cache[stem].get(row["frame"])
        if weights is None:
            results.append({**row, "front_end": name, "passed": False, "weights": None,
                            "why": "frame not processed or no face"})
            continue
        w = {n: float(v) for n, v in zip(ARKIT_NAMES, weights)}
        top = sorted(w.items(), key=lambda kv: -kv[1])[:3]
        results.append({**row, "front_end": name,
                        "passed": bool(label_check.RULES[row["label"]][1](w)),
                        "shown": {k: round(w[k], 2) for k in label_check.SHOWN[row["label"]]},
                        "top3": [(k, round(v, 2)) for k, v in top], "weights": w})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=label_check.DEFAULT_LABELS)
    parser.add_argument("--tracks", required=True, help="folder of runs, one per video stem")
    parser.add_argument("--name", default="live", help="column name of these tracks")
    parser.add_argument("--compare", help="a label_check.py --json file")
    parser.add_argument("--compare-front-end", default="mediapipe")
    args = parser.parse_args()
    rows = label_check.read_labels(args.labels)
    results = track_results(rows, args.tracks, args.name)
    names = [args.name]
    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            saved = json.load(f)
        keys = {(r["video"], r["frame"], r["face"], r["label"]) for r in results}
        other = [dict(r, front_end=f"offline {r['front_end']}") for r in saved["results"]
                 if r["front_end"] == args.compare_front_end
                 and (r["video"], r["frame"], r["face"], r["label"]) in keys]
        results = other + results
        names = [f"offline {args.compare_front_end}"] + names
    print(label_check.summary_table(results, names))
    print()
    print(label_check.detail_table(results, names))
    if args.compare:
        by_key = {}
        for r in results:
            by_key.setdefault((r["video"], r["frame"], r["label"]), {})[r["front_end"]] = r
        lost = [k for k, v in by_key.items()
                if v.get(names[0], {}).get("passed") and not v.get(names[1], {}).get("passed")]
        print()
        print(f"passed offline, failed {args.name}: {len(lost)}")
        for video, frame, label in lost:
            print(f"  {os.path.basename(video)} frame {frame}: {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
