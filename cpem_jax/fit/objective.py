"""The fitting objective: the shared reconstruction terms (`cpem_jax.losses.objective`) of one
video's frames with a locked identity, plus a temporal prior, a lighting prior and a prior on the
gaze of eyes whose iris is hidden, and (with dense points) terms on each eye's opening and on
the blink of an eye seen shut."""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

import flax.struct
import jax
import jax.numpy as jnp

from cpem_jax.face_model.dense_landmarks import (DenseLandmarks, eye_openness,
                                                 gaze_unit_indices)
from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.params import FrameParams, SharedParams, to_coefficients
from cpem_jax.geometry.camera import Camera
from cpem_jax.losses.landmark import project_dense, visibility_weights
from cpem_jax.losses.objective import (FITTING_WEIGHTS, Targets, combine_losses,
                                       reconstruction_terms)


# (floor, knee) of detected eye openings (lid gap / eye width, `eye_openness`). MediaPipe's
# lids on a shut eye stay apart: 0.01-0.10 on the 22 shut eyes of experiments/labels (median
# 0.047, upper quartile 0.06), against 0.25-0.45 for open eyes. Openings up to the floor are
# fitted as shut, those between the floor and the knee stretched onto [0, knee]; from the knee
# (where the iris shows fully, `fit.config.IRIS_OPENNESS`) an opening is taken as detected.
DETECTED_SHUT_OPENING = (0.06, 0.20)
# (shut, open) detected openings for the blink prior (`eye_shut_term`): an eye counts fully as
# shut up to the floor above, and not at all from 0.10 (the widest of those 22 shut eyes: 0.097).
SHUT_EYE_RAMP = (0.06, 0.10)


def detected_opening(opening: jnp.ndarray, shut: Tuple[float, float]) -> jnp.ndarray:
    """The opening the fit aims for: detected openings [...] -> [...] (`DETECTED_SHUT_OPENING`
    for the `shut` = (floor, knee) range; floor >= knee leaves the openings as they are)."""
    floor, knee = shut
    if knee <= floor:
        return opening
    low = knee * jnp.maximum(opening - floor, 0.0) / (knee - floor)
    return jnp.where(opening < knee, low, opening)


@dataclasses.dataclass(frozen=True)
class FitWeights:
    """Weights of the fitting terms; defaults and their reasons: `FITTING_WEIGHTS` in
    cpem_jax/losses/objective.py. `temporal` penalises the squared change of expression
    (each unit's scaled by `FitData.unit_temporal`), rotation (rad) and translation (/10 cm)
    between consecutive frames."""
    lm: float = FITTING_WEIGHTS["lm"]
    pho: float = FITTING_WEIGHTS["pho"]
    reg: float = FITTING_WEIGHTS["reg"]
    sp: float = FITTING_WEIGHTS["sp"]
    exp: float = FITTING_WEIGHTS["exp"]
    temporal: float = FITTING_WEIGHTS["temporal"]
    lighting_reg: float = FITTING_WEIGHTS["lighting_reg"]
    gaze_hidden: float = FITTING_WEIGHTS["gaze_hidden"]
    eye_aperture: float = FITTING_WEIGHTS["eye_aperture"]
    eye_shut: float = FITTING_WEIGHTS["eye_shut"]


def weight_changes(text: str) -> Dict[str, float]:
    """'sp=0.3,eye_shut=1' -> {FitWeights field: value}; a ValueError names a bad item (for
    command-line options that change the fit's weights)."""
    known = [f.name for f in dataclasses.fields(FitWeights)]
    changes = {}
    for item in filter(None, text.split(",")):
        name, _, value = (part.strip() for part in item.partition("="))
        try:
            changes[name] = float(value)
        except ValueError:
            raise ValueError(f"item {item!r} is not NAME=NUMBER") from None
        if name not in known:
            raise ValueError(f"unknown fit weight {name!r}; known: {', '.join(known)}")
    return changes


@flax.struct.dataclass
class FitData:
    """A batch of N frames to fit.

    Attributes:
      targets: Targets (image [N, P, P, 3] at the photometric resolution P, skin_mask
        [N, P, P], landmarks [N, 68, 2] pixels of the S x S crop the camera describes;
        optionally dense [N, 478, 2] and dense_weights [N, 478]).
      anchor: FrameParams with leading [1]: the frame before this batch (temporal prior), and
      anchor_weight: [] float32, 0 when there is no previous frame.
      unit_sparsity: None, or [K_exp] float32 per-unit factors of the sparsity prior.
      unit_temporal: None, or [K_exp] float32 per-unit factors of the temporal prior's
        squared expression change.
      gaze_hidden: None, or [N, 2] float32 in [0, 1]: how far each eye's iris is hidden (1: a
        closed eye, whose iris points weigh 0; every eye of a 68-point fit), for the gaze
        prior (`gaze_hidden_term`).
      consecutive: [] float32, 1 when the N frames are consecutive frames of the video (the
        temporal prior ties each to the one before), 0 when they are not (keyframes spread
        over a video: only the anchor pair counts).
    """
    targets: Targets
    anchor: FrameParams
    anchor_weight: jnp.ndarray
    unit_sparsity: Optional[jnp.ndarray] = None
    unit_temporal: Optional[jnp.ndarray] = None
    consecutive: jnp.ndarray = flax.struct.field(default_factory=lambda: jnp.float32(1.0))
    gaze_hidden: Optional[jnp.ndarray] = None


def _temporal(frames: FrameParams, anchor: FrameParams, anchor_weight,
              consecutive=1.0, unit_temporal: Optional[jnp.ndarray] = None) -> jnp.ndarray:
    total = jnp.zeros((), jnp.float32)
    for name, scale in (("expression", 1.0), ("rotation", 1.0), ("translation", 0.1)):
        seq = jnp.concatenate([getattr(anchor, name), getattr(frames, name)], axis=0) * scale
        change = (seq[1:] - seq[:-1]) ** 2
        if name == "expression" and unit_temporal is not None:
            change = change * unit_temporal
        diff = jnp.sum(change, axis=-1)  # [N]
        step_weights = (jnp.ones_like(diff) * consecutive).at[0].set(anchor_weight)
        total = total + jnp.sum(diff * step_weights) / jnp.maximum(jnp.sum(step_weights), 1.0)
    return total


def gaze_hidden_term(expression: jnp.ndarray, hidden: jnp.ndarray,
                     gaze_units: jnp.ndarray) -> jnp.ndarray:
    """The gaze prior of hidden irises: expression [N, K], hidden [N, 2] (per eye, 1 = the iris
    is not seen), gaze_units [2, 4] (each eye's eyeLookIn/Out/Up/Down indices) -> [] the mean
    over frames of sum over eyes of hidden * (sum of that eye's squared eyeLook* weights).

    A closed eye's lids can be fitted by eyeBlink alone or by part of it plus eyeLookDown (ICT's
    look-down lowers the upper lid); with the iris unseen nothing tells them apart, and the
    gaze stays where this prior holds it: at rest."""
    gaze = jnp.take(expression, gaze_units.reshape(-1), axis=-1).reshape(
        expression.shape[:-1] + gaze_units.shape)                           # [N, 2, 4]
    return jnp.mean(jnp.sum(hidden * jnp.sum(gaze ** 2, axis=-1), axis=-1))


def _eye_evidence(targets: Targets, dense: DenseLandmarks, rotation: jnp.ndarray):
    """Per frame and eye, how much the detected lids count and how open they are: (weight
    [N, 2], the smallest weight of the eye's lid and corner points (0 where one is missing)
    times their mean visibility (`losses.landmark.visibility_weights`), not differentiated;
    detected opening [N, 2], `eye_openness`)."""
    detected = jnp.nan_to_num(targets.dense)
    rows = jnp.concatenate([dense.aperture_pairs.reshape(2, -1), dense.eye_corners], axis=1)
    weights = (targets.dense_weights if targets.dense_weights is not None
               else jnp.ones(detected.shape[:2], jnp.float32))
    present = (jnp.min(weights[:, rows], axis=-1) > 0).astype(jnp.float32)            # [N, 2]
    seen = jnp.mean(visibility_weights(dense, rotation)[:, rows], axis=-1)              # [N, 2]
    return jax.lax.stop_gradient(present * seen), eye_openness(dense, detected, xp=jnp)


def eye_aperture_term(fitted: jnp.ndarray, targets: Targets, dense: DenseLandmarks,
                      rotation: jnp.ndarray,
                      shut: Tuple[float, float] = (0.0, 0.0)) -> jnp.ndarray:
    """The eye-opening prior: fitted [N, P, 2] and detected (`targets.dense`) points -> []
    the weighted mean over frames and eyes of (fitted opening - detected opening)^2.

    The landmark term matches each lid point's position; an eye's opening is the small
    difference of two of them and goes where the positions leave it. On a wink the detected
    lower lid rises with the cheek, which ICT's eyeBlink does not do: the positions are met
    halfway with eyeBlink ~0.35 while the detected eye is shut. This term matches the opening
    itself, with a detected eye near shut read as shut (`detected_opening` with `shut`; the
    default (0, 0) takes openings as detected). Each eye counts with `_eye_evidence`'s weight."""
    w, detected = _eye_evidence(targets, dense, rotation)
    error = eye_openness(dense, fitted, xp=jnp) - detected_opening(detected, shut)
    return jnp.sum(w * error ** 2) / jnp.maximum(jnp.sum(w), 1.0)


def eye_shut_term(expression: jnp.ndarray, targets: Targets, dense: DenseLandmarks,
                  rotation: jnp.ndarray, blink_units: Tuple[int, int],
                  ramp: Tuple[float, float] = SHUT_EYE_RAMP) -> jnp.ndarray:
    """The blink prior of eyes seen shut: expression [N, K], detected points
    (`targets.dense`), rotation [N, 3], blink_units (eyeBlink indices of the subject's left and
    right eye) -> [] the mean over frames of sum over eyes of w * (1 - eyeBlink)^2.

    w is `_eye_evidence`'s weight times how shut the detected eye is: 1 up to ramp[0], falling
    linearly to 0 at ramp[1]. The opening term closes such an eye, but ICT closes an eye with
    eyeBlink, with a raised cheek (cheekSquint lifts the lower lid) or with a squint, at about
    the same sparsity cost; a squeezed shut eye came out as cheekSquint 0.86 with eyeBlink 0.26
    (experiments/labels). ARKit's eyeBlink is the closure of the lids, so a shut eye is read
    as eyeBlink near 1, next to whatever cheek raise the other points show."""
    w, opening = _eye_evidence(targets, dense, rotation)
    low, high = ramp
    shut = jnp.clip((high - opening) / (high - low), 0.0, 1.0)
    blink = jnp.take(expression, jnp.asarray(blink_units), axis=-1)                    # [N, 2]
    return jnp.mean(jnp.sum(jax.lax.stop_gradient(w * shut) * (1.0 - blink) ** 2, axis=-1))


def _blink_units(model: FaceModel) -> Optional[Tuple[int, int]]:
    """The eyeBlink indices of the subject's left and right eye (None without both units)."""
    names = model.expression_names
    if "eyeBlink_L" not in names or "eyeBlink_R" not in names:
        return None
    return names.index("eyeBlink_L"), names.index("eyeBlink_R")


def fit_terms(shared: SharedParams, frames: FrameParams, data: FitData, model: FaceModel,
              camera: Camera, weights: FitWeights, render_fn: Optional[Callable],
              photometric: bool, dense: Optional[DenseLandmarks] = None
              ) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """(total, named terms) of one batch; `photometric` (static) adds the rendered terms;
    `dense` is the model's dense table (needed when the targets carry dense points)."""
    coeffs = to_coefficients(shared, frames)
    terms, _ = reconstruction_terms(model, coeffs, camera, data.targets, render_fn,
                                    photometric=photometric, dense=dense,
                                    unit_sparsity=data.unit_sparsity)
    terms["temporal"] = _temporal(frames, data.anchor, data.anchor_weight, data.consecutive,
                                  data.unit_temporal)
    if dense is not None and data.targets.dense is not None:
        terms["eye_aperture"] = eye_aperture_term(project_dense(dense, coeffs, camera),
                                                  data.targets, dense, coeffs.rotation,
                                                  DETECTED_SHUT_OPENING)
        blink_units = _blink_units(model)
        if blink_units is not None:
            terms["eye_shut"] = eye_shut_term(frames.expression, data.targets, dense,
                                              coeffs.rotation, blink_units)
    units = gaze_unit_indices(model)
    if data.gaze_hidden is not None and units is not None:
        terms["gaze_hidden"] = gaze_hidden_term(frames.expression, data.gaze_hidden,
                                                jnp.asarray(units))
    if photometric:
        dc_free = frames.lighting.at[..., 0].set(0.0)
        terms["lighting_reg"] = jnp.mean(jnp.sum(dc_free ** 2, axis=(-2, -1)))
    total, terms = combine_losses(terms, dataclasses.asdict(weights), FITTING_WEIGHTS)
    del terms["total"]
    return total, terms
