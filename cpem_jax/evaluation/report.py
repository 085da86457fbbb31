"""Evaluation reports: results.json, results.md (tables in the paper's layout) and PNG plots.

`write_report(results, out_dir, title)` takes a mapping section name -> the dict returned by an
evaluator and recognises each section by its content:
  FEAFA (`feafa_scores`, "categories")        ten columns + Avg, the paper's rows below ours;
                                              bar chart per category (ours vs the paper's CPEM)
  AFLW2000-3D (`aflw2000_scores`, "bins")     NME per yaw bin + mean of bins, paper rows; bar chart
  identity (`identity_consistency`, "coefficient_mae"; or a mapping run name -> such dicts)
                                              summary table; curve of MAE (and mesh RMS) vs frame
  geometry (MICC / FaceWarehouse, "conditions") RMSE per condition, paper rows for MICC
  pose (`pose_errors`, "geodesic_mean_deg")   one-row table
  anything else                               its scalar entries as a key/value table
Plots use matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Mapping, Sequence

import numpy as np

from cpem_jax.evaluation.aflw2000 import PAPER_AFLW2000_NME
from cpem_jax.evaluation.expression import CATEGORIES, PAPER_FEAFA_MAE
from cpem_jax.evaluation.micc import CONDITIONS, PAPER_MICC_RMSE_MM


def to_jsonable(value):
    """numpy scalars/arrays -> Python; NaN/inf -> None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |"
              for row in rows]
    return lines


def _kind(section) -> str:
    if not isinstance(section, Mapping):
        return "scalar"
    if "categories" in section:
        return "feafa"
    if "bins" in section:
        return "aflw"
    if "coefficient_mae" in section or (
            section and all(isinstance(v, Mapping) and "coefficient_mae" in v
                            for v in section.values())):
        return "identity"
    if "conditions" in section:
        return "geometry"
    return "generic"


# Sections -------------------------------------------------------------------------------------
def _feafa_md(name: str, sec: Mapping, label: str) -> List[str]:
    cats = sec["categories"]
    cols = list(CATEGORIES) + ["Avg"]
    rows = [[label] + [cats[c]["mae"] for c in cols],
            ["entries (label > %.1f)" % sec.get("threshold", 0.8)] + [cats[c]["count"]
                                                                     for c in cols]]
    rows += [[k] + list(v) for k, v in PAPER_FEAFA_MAE.items()]
    return [f"FEAFA expression MAE ({sec.get('n_frames', '?')} frames; lower is better)", ""] + \
        _table(["method"] + cols, rows)


def _aflw_md(name: str, sec: Mapping, label: str) -> List[str]:
    bins = list(sec["bins"])
    rows = [[label] + [sec["bins"][b]["nme"] for b in bins] + [sec["mean_of_bins"]],
            ["images"] + [sec["bins"][b]["count"] for b in bins] + [sec.get("count")]]
    if len(bins) == 3:
        rows += [[k] + list(v) for k, v in PAPER_AFLW2000_NME.items()]
    return [f"68-point NME ({sec.get('unit', '')}, normalised by the ground-truth box)", ""] + \
        _table(["method"] + [f"yaw {b}" for b in bins] + ["mean"], rows)


def _identity_runs(sec: Mapping) -> Dict[str, Mapping]:
    return {"": sec} if "coefficient_mae" in sec else dict(sec)


def _identity_md(name: str, sec: Mapping, label: str) -> List[str]:
    rows = []
    for run, r in _identity_runs(sec).items():
        rows.append([run or label, r.get("n_videos"), r.get("coefficient_mae_mean"),
                     r.get("mesh_rms_mm_mean")])
    return ["Identity consistency against the first frame (mean over frames after the first)",
            ""] + _table(["run", "videos", "coefficient MAE", "identity mesh RMS (mm)"], rows)


def _geometry_md(name: str, sec: Mapping, label: str) -> List[str]:
    conds = sec["conditions"]
    keys = [k for k in conds if k != "all"] + ["all"]
    rows = [[label] + [conds[k]["rmse_mm_mean"] for k in keys],
            ["count"] + [conds[k]["count"] for k in keys]]
    if sec.get("dataset") == "MICC Florence" and keys[:3] == list(CONDITIONS):
        rows += [[k] + list(v) + [float(np.mean(v))] for k, v in PAPER_MICC_RMSE_MM.items()]
    if sec.get("dataset") == "FaceWarehouse":
        from cpem_jax.evaluation.facewarehouse import PAPER_FACEWAREHOUSE_RMSE_MM
        rows += [[k] + ["-"] * (len(keys) - 1) + [v]
                 for k, v in PAPER_FACEWAREHOUSE_RMSE_MM.items()]
    return [f"{sec.get('dataset', name)} point-to-plane RMSE (mm) after similarity alignment",
            ""] + _table(["method"] + keys, rows)


def _generic_md(name: str, sec, label: str) -> List[str]:
    if not isinstance(sec, Mapping):
        return _table(["value"], [[sec]])
    rows = [[k, v] for k, v in sec.items() if isinstance(v, (int, float, str, np.number))]
    return _table(["metric", "value"], rows)


_MD = {"feafa": _feafa_md, "aflw": _aflw_md, "identity": _identity_md,
       "geometry": _geometry_md, "generic": _generic_md, "scalar": _generic_md}


# Plots ----------------------------------------------------------------------------------------
def _plot(kind: str, name: str, sec: Mapping, label: str, path: str) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    try:
        if kind == "feafa":
            x = np.arange(len(CATEGORIES) + 1)
            cols = list(CATEGORIES) + ["Avg"]
            ours = [sec["categories"][c]["mae"] for c in cols]
            paper = list(PAPER_FEAFA_MAE.values())[-1]
            ax.bar(x - 0.2, np.nan_to_num(ours), 0.4, label=label)
            ax.bar(x + 0.2, paper, 0.4, label=list(PAPER_FEAFA_MAE)[-1])
            ax.set_xticks(x, cols, rotation=40, ha="right")
            ax.set_ylabel("MAE")
            ax.set_title("FEAFA expression MAE per category")
        elif kind == "aflw":
            bins = list(sec["bins"]) + ["mean"]
            ours = [sec["bins"][b]["nme"] for b in sec["bins"]] + [sec["mean_of_bins"]]
            x = np.arange(len(bins))
            ax.bar(x - 0.2, np.nan_to_num(ours), 0.4, label=label)
            if len(bins) == 4:
                ax.bar(x + 0.2, PAPER_AFLW2000_NME["CPEM paper"], 0.4, label="CPEM paper")
            ax.set_xticks(x, [f"yaw {b}" if b != "mean" else b for b in bins])
            ax.set_ylabel(f"NME ({sec.get('unit', '')})")
            ax.set_title("68-point NME by yaw")
        elif kind == "identity":
            runs = _identity_runs(sec)
            has_mesh = any("mesh_rms_mm" in r for r in runs.values())
            ax2 = ax.twinx() if has_mesh else None
            for run, r in runs.items():
                ax.plot(r["frame_index"], np.array(r["coefficient_mae"], dtype=float),
                        label=f"{run or label} coefficient MAE")
                if ax2 is not None and "mesh_rms_mm" in r:
                    ax2.plot(r["frame_index"], np.array(r["mesh_rms_mm"], dtype=float), "--",
                             label=f"{run or label} mesh RMS (mm)")
            ax.set_xlabel("frame index")
            ax.set_ylabel("identity coefficient MAE vs frame 0")
            if ax2 is not None:
                ax2.set_ylabel("identity-only mesh RMS vs frame 0 (mm)")
                ax2.legend(loc="lower right", fontsize=8)
            ax.set_title("Identity consistency")
        elif kind == "geometry":
            keys = [k for k in sec["conditions"] if k != "all"] + ["all"]
            ax.bar(np.arange(len(keys)),
                   np.nan_to_num([sec["conditions"][k]["rmse_mm_mean"] for k in keys]))
            ax.set_xticks(np.arange(len(keys)), keys, rotation=30, ha="right")
            ax.set_ylabel("RMSE (mm)")
            ax.set_title(f"{sec.get('dataset', name)} geometric error")
        else:
            return False
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return True
    finally:
        plt.close(fig)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower() or "section"


def write_report(results: Mapping[str, object], out_dir: str, title: str,
                 label: str = "ours") -> Dict[str, object]:
    """Writes results.json, results.md and one PNG per plottable section into out_dir.

    Args:
      results: section name -> evaluator result dict (see the module docstring).
      out_dir: created when missing.
      title: the Markdown title.
      label: the name of our row in the tables and plots (e.g. the checkpoint name).
    Returns:
      {"json": path, "markdown": path, "plots": [paths]}.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("write_report needs a non-empty mapping section name -> results dict")
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "results.json")
    with open(json_path, "w") as f:
        json.dump(to_jsonable({"title": title, "results": results}), f, indent=1,
                  allow_nan=False)
    lines, plots = [f"# {title}", ""], []
    for name, sec in results.items():
        kind = _kind(sec)
        lines += [f"## {name}", ""] + _MD[kind](name, sec, label) + [""]
        if kind in ("feafa", "aflw", "identity", "geometry"):
            path = os.path.join(out_dir, f"{_slug(name)}.png")
            if _plot(kind, name, sec, label, path):
                plots.append(path)
                lines += [f"![{name}]({os.path.basename(path)})", ""]
    md_path = os.path.join(out_dir, "results.md")
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    return {"json": json_path, "markdown": md_path, "plots": plots}
