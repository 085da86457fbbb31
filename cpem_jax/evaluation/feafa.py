"""FEAFA expression test set: reader, AU -> unit mapping, and the paper's ten-column MAE.

FEAFA (Yan et al. 2019) labels every frame of its posed videos with 24 "redefined" AU
intensities, floating point in [0, 1], some of them split into a left and a right AU.

File layout this reader expects (ASSUMPTION, check it against your copy of the dataset):
  ROOT/<video>/<frame>.png|.jpg|.jpeg|.bmp   the frames
  ROOT/<video>/<frame>.auw                   that frame's label: exactly 24 numbers (whitespace
                                             or comma separated, any line breaks), in
                                             `FEAFA_AU_CODES` order, each in [0, 1]
  ROOT/test_videos.txt   optional: the test video folder names, one per line (the paper uses 20
                         test videos); without it (and without `videos=`) every folder is used.
  ROOT/au_order.txt      optional: the label columns, one line each, when your copy differs from
                         `FEAFA_AU_CODES`: "CODE" for a code of `FEAFA_AUS`, or "CODE unit ..."
                         to give (or override) the ICT units of a column; a known code keeps
                         its category, a new one is in no category.
"L"/"R" AUs are the subject's left/right, as ICT's `_L`/`_R` units. Frames with an image but no
label are not evaluated; a label without its image is an error.

The protocol (CPEM paper): only frames in which some AU exceeds 0.8 are evaluated, and only the
entries above 0.8 count: for each such (frame, AU) the error is |predicted - label| where
"predicted" is the mean of the AU's units (`FEAFA_AUS`); the ten columns pool the AUs of each
category (expression.CATEGORIES) and "Avg" is the mean of the ten columns.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from cpem_jax.evaluation import expression
from cpem_jax.evaluation.image_input import load_rgb

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
LABEL_EXTENSION = ".auw"


@dataclasses.dataclass(frozen=True)
class FeafaAU:
    """One FEAFA AU: its code, meaning, the ICT units it corresponds to and its paper category."""
    code: str
    description: str
    units: Tuple[str, ...]
    category: Optional[str]


# The AU table (data, not code): left/right AUs go to _L/_R units, symmetric AUs to both sides.
# AU5 (lid raise), AU14 (dimpler), AU22, AU24 and AD30 (jaw sideways) have units but are outside
# the paper's ten columns.
FEAFA_AUS: Tuple[FeafaAU, ...] = (
    FeafaAU("AU1", "inner brow raiser", ("browInnerUp_L", "browInnerUp_R"), "BrowRaise"),
    FeafaAU("AU2L", "left outer brow raiser", ("browOuterUp_L",), "BrowRaise"),
    FeafaAU("AU2R", "right outer brow raiser", ("browOuterUp_R",), "BrowRaise"),
    FeafaAU("AU4", "brow lowerer", ("browDown_L", "browDown_R"), "BrowLower"),
    FeafaAU("AU5L", "left upper lid raiser", ("eyeWide_L",), None),
    FeafaAU("AU5R", "right upper lid raiser", ("eyeWide_R",), None),
    FeafaAU("AU9", "nose wrinkler", ("noseSneer_L", "noseSneer_R"), "NoseWrinkle"),
    FeafaAU("AU10", "upper lip raiser", ("mouthUpperUp_L", "mouthUpperUp_R"), "LipR/D"),
    FeafaAU("AU12L", "left lip corner puller", ("mouthSmile_L",), "LipCornerPull"),
    FeafaAU("AU12R", "right lip corner puller", ("mouthSmile_R",), "LipCornerPull"),
    FeafaAU("AU14L", "left dimpler", ("mouthDimple_L",), None),
    FeafaAU("AU14R", "right dimpler", ("mouthDimple_R",), None),
    FeafaAU("AU16", "lower lip depressor", ("mouthLowerDown_L", "mouthLowerDown_R"), "LipR/D"),
    FeafaAU("AU18", "lip pucker", ("mouthPucker",), "Kiss"),
    FeafaAU("AU20L", "left lip stretcher", ("mouthStretch_L",), "LipCornerStretch"),
    FeafaAU("AU20R", "right lip stretcher", ("mouthStretch_R",), "LipCornerStretch"),
    FeafaAU("AU22", "lip funneler", ("mouthFunnel",), None),
    FeafaAU("AU24", "lip pressor", ("mouthPress_L", "mouthPress_R"), None),
    FeafaAU("AU26", "jaw drop", ("jawOpen",), "MouthOpen"),
    FeafaAU("AU28", "lip suck", ("mouthRollUpper", "mouthRollLower"), "LipSuck"),
    FeafaAU("AU43L", "left eye closure", ("eyeBlink_L",), "EyeClose"),
    FeafaAU("AU43R", "right eye closure", ("eyeBlink_R",), "EyeClose"),
    FeafaAU("AD30L", "jaw sideways left", ("jawLeft",), None),
    FeafaAU("AD30R", "jaw sideways right", ("jawRight",), None),
)
FEAFA_AU_CODES: Tuple[str, ...] = tuple(au.code for au in FEAFA_AUS)
_BY_CODE = {au.code: au for au in FEAFA_AUS}


class FeafaFormatError(ValueError):
    """A FEAFA folder or label file that does not match the documented layout."""


@dataclasses.dataclass
class FeafaSet:
    """The evaluated FEAFA frames.

    Attributes:
      videos: [N] video folder name per frame.
      frames: [N] frame file stem per frame.
      image_paths: [N] image file per frame.
      labels: [N, A] float64 AU intensities in [0, 1], columns in `aus` order.
      aus: the A AUs of the label columns.
      n_labelled: how many labelled frames were read before the threshold selection.
    """
    videos: List[str]
    frames: List[str]
    image_paths: List[str]
    labels: np.ndarray
    aus: Tuple[FeafaAU, ...]
    n_labelled: int


def read_au_file(path: str, n_aus: int = len(FEAFA_AUS)) -> np.ndarray:
    """One label file -> [n_aus] float64 in [0, 1]; any other content raises FeafaFormatError."""
    with open(path, "r", encoding="utf-8", errors="strict") as f:
        tokens = [t for t in re.split(r"[\s,;]+", f.read()) if t]
    try:
        values = np.array([float(t) for t in tokens], np.float64)
    except ValueError:
        raise FeafaFormatError(f"{path}: expected {n_aus} numbers, found non-numeric text "
                               f"{tokens[:4]}; see cpem_jax/evaluation/feafa.py for the "
                               f"expected label format") from None
    if values.shape != (n_aus,):
        raise FeafaFormatError(f"{path}: expected {n_aus} AU values, found {values.size}; if your "
                               f"copy has a different AU set, write ROOT/au_order.txt")
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise FeafaFormatError(f"{path}: AU values must lie in [0, 1], got range "
                               f"[{values.min():.3g}, {values.max():.3g}]")
    return values


def read_au_order(root: str) -> Tuple[FeafaAU, ...]:
    """The label columns: ROOT/au_order.txt when present, else FEAFA_AUS."""
    path = os.path.join(root, "au_order.txt")
    if not os.path.isfile(path):
        return FEAFA_AUS
    with open(path, "r", encoding="utf-8") as f:
        rows = [line.split() for line in f if line.strip()]
    aus = []
    for code, *units in rows:
        known = _BY_CODE.get(code)
        if known is None and not units:
            raise FeafaFormatError(f"{path}: AU {code!r} is not in FEAFA_AUS "
                                   f"({', '.join(FEAFA_AU_CODES)}); write its ICT units after it")
        if known is None:
            aus.append(FeafaAU(code, code, tuple(units), None))
        else:
            aus.append(dataclasses.replace(known, units=tuple(units) or known.units))
    codes = [au.code for au in aus]
    if len(set(codes)) != len(codes):
        raise FeafaFormatError(f"{path}: AU codes are repeated")
    return tuple(aus)


def _test_videos(root: str, videos: Optional[Sequence[str]]) -> List[str]:
    if videos is None:
        split = os.path.join(root, "test_videos.txt")
        if os.path.isfile(split):
            with open(split, "r", encoding="utf-8") as f:
                videos = [line.strip() for line in f if line.strip()]
        else:
            videos = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    missing = [v for v in videos if not os.path.isdir(os.path.join(root, v))]
    if missing:
        raise FeafaFormatError(f"FEAFA root {root!r} lacks video folders {missing[:5]}; fix "
                               f"test_videos.txt or the `videos` argument")
    if not videos:
        raise FeafaFormatError(f"FEAFA root {root!r} has no video folders")
    return list(videos)


def load_feafa(root: str, videos: Optional[Sequence[str]] = None,
               threshold: float = expression.ACTIVE_THRESHOLD) -> FeafaSet:
    """Reads the labelled frames of the test videos in which some AU exceeds `threshold`."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"FEAFA root {root!r} is not a folder; pass the folder that holds "
                                f"the per-video frame folders")
    aus = read_au_order(root)
    out_v, out_f, out_p, out_l = [], [], [], []
    n_labelled = 0
    for video in _test_videos(root, videos):
        folder = os.path.join(root, video)
        names = os.listdir(folder)
        images = {os.path.splitext(n)[0]: n for n in names
                  if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS}
        for name in sorted(n for n in names if n.endswith(LABEL_EXTENSION)):
            stem = name[:-len(LABEL_EXTENSION)]
            if stem not in images:
                raise FeafaFormatError(f"{os.path.join(folder, name)} has no image "
                                       f"{stem}{{{','.join(IMAGE_EXTENSIONS)}}} beside it")
            label = read_au_file(os.path.join(folder, name), len(aus))
            n_labelled += 1
            if label.max() > threshold:
                out_v.append(video)
                out_f.append(stem)
                out_p.append(os.path.join(folder, images[stem]))
                out_l.append(label)
    if n_labelled == 0:
        raise FeafaFormatError(f"no {LABEL_EXTENSION} label files under {root!r}")
    labels = np.stack(out_l) if out_l else np.zeros((0, len(aus)))
    return FeafaSet(out_v, out_f, out_p, labels, aus, n_labelled)


def _unit_index(unit: str, unit_names: Sequence[str]) -> int:
    """An ICT unit name, also found under its ARKit spelling (browOuterUp_L -> browOuterUpLeft)."""
    if unit in unit_names:
        return list(unit_names).index(unit)
    arkit = re.sub(r"_L$", "Left", re.sub(r"_R$", "Right", unit))
    if arkit in unit_names:
        return list(unit_names).index(arkit)
    raise KeyError(f"expression unit {unit!r} (or {arkit!r}) is not among the model's units")


def au_predictions(unit_weights: np.ndarray, unit_names: Sequence[str],
                   aus: Sequence[FeafaAU] = FEAFA_AUS) -> np.ndarray:
    """Unit weights [N, K] -> predicted AU intensities [N, A] (mean of each AU's units).

    AUs whose units the model lacks are NaN (and then never counted).
    """
    w = np.asarray(unit_weights, np.float64)
    if w.ndim != 2 or w.shape[1] != len(unit_names):
        raise ValueError(f"unit_weights {w.shape} must be [N, {len(unit_names)}]")
    cols = []
    for au in aus:
        try:
            idx = [_unit_index(u, unit_names) for u in au.units]
            cols.append(w[:, idx].mean(axis=1))
        except KeyError:
            cols.append(np.full(len(w), np.nan))
    return np.stack(cols, axis=1) if cols else np.zeros((len(w), 0))


def feafa_scores(unit_weights: np.ndarray, unit_names: Sequence[str], labels: np.ndarray,
                 aus: Sequence[FeafaAU] = FEAFA_AUS,
                 threshold: float = expression.ACTIVE_THRESHOLD) -> dict:
    """The paper's FEAFA table from predictions.

    Args:
      unit_weights: [N, K] predicted unit weights in [0, 1] (model order).
      unit_names: the K unit names (ICT or ARKit).
      labels: [N, A] AU intensities, columns in `aus` order.
    Returns:
      {"categories": {category: {"mae", "count"}, ..., "Avg": {...}},
       "per_au": {code: {"mae", "count"}}, "n_frames": N, "threshold": threshold}.
    """
    labels = np.asarray(labels, np.float64)
    predicted = au_predictions(unit_weights, unit_names, aus)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} do not match {len(aus)} AUs for "
                         f"{len(predicted)} frames")
    valid = (labels > threshold) & np.isfinite(predicted)
    categories = expression.grouped_mae(np.nan_to_num(predicted), labels, valid,
                                        [au.category for au in aus])
    per_au = expression.masked_mae(np.nan_to_num(predicted), labels, valid)
    return {"categories": categories,
            "per_au": {au.code: {"mae": float(m), "count": int(c)}
                       for au, m, c in zip(aus, per_au, valid.sum(axis=0))},
            "n_frames": int(len(labels)), "threshold": float(threshold)}


def evaluate_feafa(predict_fn: Callable[[np.ndarray], np.ndarray], root: str,
                   unit_names: Sequence[str], videos: Optional[Sequence[str]] = None,
                   threshold: float = expression.ACTIVE_THRESHOLD) -> dict:
    """Runs a predictor on the FEAFA test frames and scores it.

    Args:
      predict_fn: image [H, W, 3] float32 RGB in [0, 1] -> unit weights [K] in [0, 1] (NaN when
        no face was found: such frames are counted in "n_no_face" and left out).
      root: the FEAFA folder (layout in the module docstring).
      unit_names: the K unit names of predict_fn's output.
    Returns:
      `feafa_scores` plus "dataset": "FEAFA", "n_labelled", "n_no_face", "videos".
    """
    data = load_feafa(root, videos, threshold)
    preds = np.full((len(data.image_paths), len(unit_names)), np.nan)
    for i, path in enumerate(data.image_paths):
        p = np.asarray(predict_fn(load_rgb(path)), np.float64).reshape(-1)
        if p.shape != (len(unit_names),):
            raise ValueError(f"predict_fn returned {p.shape[0]} weights for "
                             f"{len(unit_names)} unit names")
        preds[i] = p
    found = np.all(np.isfinite(preds), axis=1)
    scores = feafa_scores(preds[found], unit_names, data.labels[found], data.aus, threshold)
    scores.update({"dataset": "FEAFA", "n_labelled": data.n_labelled,
                   "n_no_face": int((~found).sum()), "videos": sorted(set(data.videos))})
    return scores
