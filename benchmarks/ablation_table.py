"""Aggregates `cpem-jax evaluate` reports of the ablation runs into the paper's table layout.

    python benchmarks/ablation_table.py --reports vanilla=R/vanilla-s0 vanilla=R/vanilla-s1 \
        idc=R/idc-s0 ... fit=R/fit --out experiments/ablation/table.md

Each report folder holds results.json from `cpem-jax evaluate`. Rows with the same label are
seeds of one setting: the table gives their mean +- standard deviation (population, n seeds).
"""
import argparse
import json
import os
from collections import OrderedDict

import numpy as np

CATEGORIES = ("EyeClose", "BrowLower", "BrowRaise", "MouthOpen", "LipSuck", "LipR/D", "Kiss",
              "NoseWrinkle", "LipCornerPull", "LipCornerStretch")
SUMMARY = (("expression_avg_mae_10cat", "10-cat avg MAE (GT > 0.8)"),
           ("expression_mae_all", "MAE all units"),
           ("expression_mae_active", "MAE active units"),
           ("identity_consistency_mae", "identity consistency MAE"),
           ("identity_consistency_mesh_rms_mm", "identity consistency mesh RMS (mm)"),
           ("identity_vs_truth_mesh_rms_mm", "identity vs truth mesh RMS (mm)"),
           ("nme_percent", "NME (%)"),
           ("pose_geodesic_mean_deg", "pose error (deg)"))


def category_row(results: dict) -> dict:
    """category -> MAE over the entries with ground truth > 0.8."""
    categories = results["Expression MAE (ten categories)"]["categories"]
    return {name: value["mae"] for name, value in categories.items()}


def fmt(values) -> str:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", nargs="+", required=True, help="label=report folder")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    groups = OrderedDict()
    for spec in args.reports:
        label, folder = spec.split("=", 1)
        with open(os.path.join(folder, "results.json")) as f:
            groups.setdefault(label, []).append(json.load(f)["results"])
    lines = ["| setting | n | " + " | ".join(CATEGORIES) + " | Avg |",
             "| --- | --- | " + " | ".join("---" for _ in CATEGORIES) + " | --- |"]
    for label, runs in groups.items():
        cats = [category_row(r) for r in runs]
        cells = [fmt([c.get(name) for c in cats]) for name in CATEGORIES]
        avg = fmt([r["Summary"]["expression_avg_mae_10cat"] for r in runs])
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | {avg} |")
    lines += ["", "| setting | n | " + " | ".join(t for _, t in SUMMARY) + " |",
              "| --- | --- | " + " | ".join("---" for _ in SUMMARY) + " |"]
    for label, runs in groups.items():
        cells = [fmt([r["Summary"].get(k) for r in runs]) for k, _ in SUMMARY]
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
