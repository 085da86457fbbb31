"""Plots a training run's loss curves from its metrics.jsonl.

    python -m cpem_jax.train.curves WORKDIR [-o curves.png]

One panel per loss term: the training value (mean over each log window, thin) and the
fixed-batch evaluation value (`eval/*`, markers). Where a resumed run logged a step twice, the later line wins.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TERMS = ("total", "lm", "pho", "per", "idc", "exp", "reg", "sp")


def read_metrics(workdir: str) -> Dict[str, Dict[int, float]]:
    """metric name -> {step: value} (the last line of a step wins)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} does not exist: is {workdir!r} a training workdir?")
    series: Dict[str, Dict[int, float]] = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            for key, value in row.items():
                if key != "step":
                    series.setdefault(key, {})[int(row["step"])] = float(value)
    return series


def plot_curves(workdir: str, output: str, terms: List[str] = TERMS) -> str:
    series = read_metrics(workdir)
    present = [t for t in terms if f"loss/{t}" in series or f"eval/{t}" in series]
    cols = 4
    rows = (len(present) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, term in zip(axes.flat, present):
        for key, style in ((f"loss/{term}", dict(lw=0.8, alpha=0.6, label="train (batch)")),
                           (f"eval/{term}", dict(marker="o", ms=3, label="eval (fixed batches)"))):
            if key in series:
                steps = sorted(series[key])
                ax.plot(steps, [series[key][s] for s in steps], **style)
        ax.set_title(term)
        ax.set_xlabel("step")
        ax.set_yscale("log" if term in ("total", "lm", "idc", "exp") else "linear")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("-o", "--output", default="curves.png")
    args = parser.parse_args(argv)
    print("wrote", plot_curves(args.workdir, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
