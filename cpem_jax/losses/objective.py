"""The one reconstruction objective: coefficients -> render -> named loss terms.

Training (`cpem_jax.train.step`) and per-video fitting (`cpem_jax.fit.objective`) both call
`reconstruction_terms`; training adds the identity-consistency term L_idc over the frames of a
clip, fitting adds a temporal prior and a lighting prior. The weights of every term of both
objectives are defined here, once:

  term          training  fitting   what
  pho           1.9       1.9       photometric l2,1 over visible skin (render over the input)
  per           0.2       -         face-recognition cosine (training only; fitting has no net)
  lm            80        80        weighted landmarks, crop units (see below): the 68 iBUG
                                    points, or the dense points where the targets carry them
  reg           1e-4      1e-4      identity / albedo l2 prior
  sp            0.1       0.25      expression l1 sparsity
  exp           10        10        expression exclusivity (training: last third only)
  idc           1000      -         identity consistency across the T frames of a clip
  temporal      -         0.005     squared change of expression and pose between frames
  lighting_reg  -         1e-3      SH lighting beyond the ambient band
  gaze_hidden   -         1         eyeLook* of an eye whose iris is not seen (a shut eye;
                                    every eye of a 68-point fit)
  eye_aperture  -         1         each eye's opening against the detected one (dense points)
  eye_shut      -         1         eyeBlink of an eye detected shut (dense points)

Training uses the paper's weights (CPEM, AAAI 2022) with one departure: the paper's landmark
weight 0.1 states no unit; our L_lm divides landmarks by the crop size, where 0.1 would make the
term ~800x weaker than Deep3DFaceRecon's 1.6e-3 on 224-pixel units, on which CPEM builds. 80 is
that weight expressed in crop units. Fitting optimises one video (or one image) with no network
to regularise it, so its priors are read as probabilities: reg = 1e-4 is the unit Gaussian prior
of the identity (ICT's modes are one standard deviation each), so 2e-4 of loss is one nat, and
sp = 0.25 (a mean over the K = 53 units) makes each unit's |beta| cost 0.25 / 53 / 2e-4 = 24 nats
per unit of weight: a Laplace prior whose mean, 1 / 24 = 0.041, is the mean weight of the
synthetic benchmark's expressions (most units are 0 most of the time). With the paper's
training sparsity of 0.1 and a 3x stronger identity prior, an expression unit at 0.5 cost less
than one identity mode at one standard deviation, so a single image fitted a face's own shape
as cheekPuff, mouthPress or browInnerUp of 0.3-0.8 (experiments/dense_fit). The temporal prior
ties consecutive frames together.

Landmarks: with `Targets.dense` (MediaPipe's 478 points, fitting with a dense table for the face
model, `cpem_jax.face_model.dense_landmarks`) the `lm` term is the dense landmark loss over those
points (per-point weights from the targets times visibility, `losses.landmark`), whose region
weights average 7.8 per point like the 68-point set's 7.75, so the one `lm` weight serves both;
otherwise it is the paper's 68-point loss.

Expression sparsity: `unit_sparsity` [K] (optional) scales each unit's |beta| in L_sp (the mean
over units stays the term, so all-ones is the paper's L_sp).

Compositing: the face is rendered over the input image (`render_face(..., background=image)`),
so a silhouette pixel of coverage a holds a * face + (1 - a) * input, the way a camera would see
it; the photometric term then weighs it by the same coverage (its mask).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Mapping, Optional, Tuple

import flax.struct
import jax
import jax.numpy as jnp

from cpem_jax.face_model.dense_landmarks import DenseLandmarks
from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import Camera
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.losses.expression_exclusive import expression_exclusive_loss
from cpem_jax.losses.landmark import (dense_landmark_loss, dense_region_weights, landmark_loss,
                                      project_dense, visibility_weights)
from cpem_jax.losses.perceptual import EmbedFn, perceptual_loss
from cpem_jax.losses.photometric import photometric_loss
from cpem_jax.losses.regularization import coefficient_regularization, expression_sparsity
from cpem_jax.render.face_renderer import render_face

TRAINING_WEIGHTS: Dict[str, float] = {
    "pho": 1.9, "per": 0.2, "lm": 80.0, "reg": 1e-4, "sp": 0.1, "exp": 10.0, "idc": 1000.0}
# The fit's prior on the eyeLook* units of an eye whose iris the front end cannot see (a closed
# eye, or any eye of the 68 points, which have no iris): without it a closed eye is fitted as
# half a blink plus a look down, whose lid motion closes the rest
# (`fit.objective.gaze_hidden_term`).
GAZE_HIDDEN_WEIGHT = 1.0
# The fit's term on each eye's opening (lid gap / eye width) against the detected points'
# (`fit.objective.eye_aperture_term`).
EYE_APERTURE_WEIGHT = 1.0
# The fit's prior that an eye the front end sees shut is shut by its lids, eyeBlink, and not by
# the cheek or a squint that close it as well (`fit.objective.eye_shut_term`).
EYE_SHUT_WEIGHT = 1.0
FITTING_WEIGHTS: Dict[str, float] = {
    "pho": 1.9, "lm": 80.0, "reg": 1e-4, "sp": 0.25, "exp": 10.0, "temporal": 0.005,
    "lighting_reg": 1e-3, "gaze_hidden": GAZE_HIDDEN_WEIGHT, "eye_aperture": EYE_APERTURE_WEIGHT,
    "eye_shut": EYE_SHUT_WEIGHT}
# Distillation toward a teacher fit (`losses.distillation`) is optional in training: its
# weights come from the config and default to off here.
DISTILL_WEIGHTS: Dict[str, float] = {"distill_exp": 0.0, "distill_pose": 0.0}
TERM_NAMES = tuple(dict.fromkeys(list(TRAINING_WEIGHTS) + list(FITTING_WEIGHTS)
                                 + list(DISTILL_WEIGHTS)))

# Without a front-face flag from the data (the fit, live capture), eye landmarks weigh 10 within
# this |yaw|. The paper's 15 degrees is where its training data take the inner points from dlib
# instead of its 3D network; a single detector's eye points are no worse than its other inner
# points (weighted 10) up to 45 degrees: on the AFLW2000-3D sample, mean error in % of the box,
# eyes / other inner points, dlib 2.0/2.6 (|yaw| <= 15), 2.3/3.4 (15-30), 7.9/12.0 (30-45),
# MediaPipe's 68 1.7/2.7, 1.8/2.8, 1.9/2.6 (experiments/dense_fit, section 10). With 15
# degrees, blinks on faces turned 20-40 degrees were fitted at a third of their strength.
FRONTAL_YAW = math.radians(45.0)


@flax.struct.dataclass
class Targets:
    """What N reconstructed frames are compared with.

    Attributes:
      image: [N, P, P, 3] float32 in [0, 1], the input crops at the photometric resolution P
        (may differ from the camera's S: the render is made at P, the same view).
      skin_mask: [N, P, P] float32 in [0, 1].
      landmarks: [N, 68, 2] float32, pixels of the camera's S x S crop.
      front_flag: [N] bool frames whose eye landmarks weigh 10, or None to derive it from the
        coefficients' yaw (|yaw| <= FRONTAL_YAW, not differentiated).
      dense: None, or [N, P, 2] float32 dense points (MediaPipe's 478) in pixels of the crop;
        then the landmark term is over these instead of the 68 (NaN allowed where the weight is
        0). Needs the face model's `DenseLandmarks` in `reconstruction_terms`.
      dense_weights: None (the region weights), or [N, P] float32 >= 0 per-point weights.
    """
    image: jnp.ndarray
    skin_mask: jnp.ndarray
    landmarks: jnp.ndarray
    front_flag: Optional[jnp.ndarray] = None
    dense: Optional[jnp.ndarray] = None
    dense_weights: Optional[jnp.ndarray] = None


def resolve_weights(weights: Optional[Mapping[str, float]] = None,
                    defaults: Mapping[str, float] = TRAINING_WEIGHTS) -> Dict[str, float]:
    """`defaults` updated with `weights`; an unknown name raises naming the valid ones."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(TERM_NAMES))
    if unknown:
        raise KeyError(f"unknown loss weight(s) {unknown}; valid names: {list(TERM_NAMES)}")
    return {**defaults, **weights}


def combine_losses(terms: Mapping[str, jnp.ndarray],
                   weights: Optional[Mapping[str, float]] = None,
                   defaults: Mapping[str, float] = TRAINING_WEIGHTS
                   ) -> Tuple[jnp.ndarray, Dict[str, jnp.ndarray]]:
    """(sum of weight * term, {name: unweighted term, ..., 'total': total}).

    Args:
      terms: name -> scalar loss; every name must be one of TERM_NAMES and weighted in
        `defaults` or `weights`.
      weights: name -> weight (may be traced scalars, e.g. the L_exp schedule).
      defaults: TRAINING_WEIGHTS or FITTING_WEIGHTS.
    """
    resolved = {**DISTILL_WEIGHTS, **resolve_weights(weights, defaults)}
    unknown = sorted(set(terms) - set(resolved))
    if unknown:
        raise KeyError(f"unknown loss term(s) {unknown}; valid names: {sorted(resolved)}")
    total = jnp.zeros((), jnp.float32)
    for name, value in terms.items():
        total = total + resolved[name] * value
    return total, {**terms, "total": total}


def front_flags(coeffs: Coefficients) -> jnp.ndarray:
    """[N] bool: |yaw| <= FRONTAL_YAW, from rotation [N, 3] (no gradient flows through it)."""
    return jnp.abs(jax.lax.stop_gradient(coeffs.rotation[:, 1])) <= FRONTAL_YAW


def landmark_term(model: FaceModel, coeffs: Coefficients, camera: Camera, targets: Targets,
                  dense: Optional[DenseLandmarks] = None) -> jnp.ndarray:
    """The `lm` term: dense points where the targets carry them (module docstring), else the 68.

    Raises ValueError when the targets carry dense points and `dense` is None.
    """
    if targets.dense is None:
        front = targets.front_flag if targets.front_flag is not None else front_flags(coeffs)
        return landmark_loss(project_landmarks(model, coeffs, camera), targets.landmarks, front,
                             float(camera.width))
    if dense is None:
        raise ValueError("the targets carry dense landmarks but no DenseLandmarks table was given; "
                         "pass dense=dense_landmarks_for(model) or leave Targets.dense None")
    weights = (targets.dense_weights if targets.dense_weights is not None
               else jnp.broadcast_to(dense_region_weights(dense), targets.dense.shape[:2]))
    weights = jnp.where(dense.valid, weights, 0.0) * visibility_weights(dense, coeffs.rotation)
    return dense_landmark_loss(project_dense(dense, coeffs, camera), targets.dense, weights,
                               float(camera.width))


def reconstruction_terms(model: FaceModel, coeffs: Coefficients, camera: Camera,
                         targets: Targets, render_fn: Optional[Callable] = None,
                         embed_fn: Optional[EmbedFn] = None, photometric: bool = True,
                         dense: Optional[DenseLandmarks] = None,
                         unit_sparsity: Optional[jnp.ndarray] = None
                         ) -> Tuple[Dict[str, jnp.ndarray], Optional[object]]:
    """The named, unweighted reconstruction terms of N frames.

    Args:
      model: the face model.
      coeffs: Coefficients with leading [N].
      camera: the S x S crop camera the landmarks and the pose refer to.
      targets: Targets of the N frames.
      render_fn: `render_face`-like (model, coeffs, camera, image_size=, background=) ->
        FaceRender; default `cpem_jax.render.render_face`.
      embed_fn: the face-recognition embedding of L_per, or None (then there is no "per").
      photometric: (static) render and add "pho" (and "per"); False gives the landmark and
        prior terms only, without rasterizing.
      dense: the model's DenseLandmarks, needed when `targets.dense` is given.
      unit_sparsity: None, or [K_exp] float32 >= 0 per-unit factors of L_sp.
    Returns:
      ({"lm", "reg", "sp", "exp"} plus "pho" and "per" when rendered, each a scalar;
       the FaceRender over the input, or None when not rendered).
    """
    expression = coeffs.expression
    terms = {
        "lm": landmark_term(model, coeffs, camera, targets, dense),
        "reg": coefficient_regularization(coeffs.identity, coeffs.albedo),
        "sp": expression_sparsity(expression if unit_sparsity is None
                                  else expression * unit_sparsity),
        "exp": expression_exclusive_loss(coeffs.expression, model.contradictory_pairs),
    }
    if not photometric:
        return terms, None
    render_fn = render_face if render_fn is None else render_fn
    size = targets.image.shape[1:3]
    rendered = render_fn(model, coeffs, camera, image_size=tuple(size), background=targets.image)
    terms["pho"] = photometric_loss(targets.image, rendered.image, rendered.mask,
                                    targets.skin_mask)
    if embed_fn is not None:
        scale = size[1] / float(camera.width)
        terms["per"] = perceptual_loss(targets.image, rendered.image, targets.landmarks * scale,
                                       embed_fn)
    return terms, rendered
