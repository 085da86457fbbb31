"""The one reconstruction objective: coefficients -> render -> named loss terms.

Training (`cpem_jax.train.step`) and per-video fitting (`cpem_jax.fit.objective`) both call
`reconstruction_terms`; training adds the identity-consistency term L_idc over the frames of a
clip, fitting adds a temporal prior and a lighting prior. The weights of every term of both
objectives are defined here, once:

  term          training  fitting   what
  pho           1.9       1.9       photometric l2,1 over visible skin (render over the input)
  per           0.2       -         face-recognition cosine (training only; fitting has no net)
  lm            80        80        68 weighted landmarks, crop units (see below)
  reg           1e-4      3e-4      identity / albedo l2 prior
  sp            0.1       0.02      expression l1 sparsity
  exp           10        10        expression exclusivity (training: last third only)
  idc           1000      -         identity consistency across the T frames of a clip
  temporal      -         0.005     squared change of expression and pose between frames
  lighting_reg  -         1e-3      SH lighting beyond the ambient band

Training uses the paper's weights (CPEM, AAAI 2022) with one departure: the paper's landmark
weight 0.1 states no unit; our L_lm divides landmarks by the crop size, where 0.1 would make the
term ~800x weaker than Deep3DFaceRecon's 1.6e-3 on 224-pixel units, on which CPEM builds. 80 is
that weight expressed in crop units. Fitting optimises one video with no network to regularise
it, so it keeps the expression prior weaker (more expression detail) and the shape prior
stronger, and ties consecutive frames together.

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

from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import Camera
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.losses.expression_exclusive import expression_exclusive_loss
from cpem_jax.losses.landmark import landmark_loss
from cpem_jax.losses.perceptual import EmbedFn, perceptual_loss
from cpem_jax.losses.photometric import photometric_loss
from cpem_jax.losses.regularization import coefficient_regularization, expression_sparsity
from cpem_jax.render.face_renderer import render_face

TRAINING_WEIGHTS: Dict[str, float] = {
    "pho": 1.9, "per": 0.2, "lm": 80.0, "reg": 1e-4, "sp": 0.1, "exp": 10.0, "idc": 1000.0}
FITTING_WEIGHTS: Dict[str, float] = {
    "pho": 1.9, "lm": 80.0, "reg": 3e-4, "sp": 0.02, "exp": 10.0, "temporal": 0.005,
    "lighting_reg": 1e-3}
TERM_NAMES = tuple(dict.fromkeys(list(TRAINING_WEIGHTS) + list(FITTING_WEIGHTS)))

# Without a front-face flag from the data, eye landmarks weigh 10 within this |yaw|.
FRONTAL_YAW = math.radians(15.0)


@flax.struct.dataclass
class Targets:
    """What N reconstructed frames are compared with.

    Attributes:
      image: [N, P, P, 3] float32 in [0, 1], the input crops at the photometric resolution P
        (may differ from the camera's S: the render is made at P, the same view).
      skin_mask: [N, P, P] float32 in [0, 1].
      landmarks: [N, 68, 2] float32, pixels of the camera's S x S crop.
      front_flag: [N] bool near-frontal frames (eye landmarks weighted 10), or None to derive it
        from the coefficients' yaw (|yaw| <= FRONTAL_YAW, not differentiated).
    """
    image: jnp.ndarray
    skin_mask: jnp.ndarray
    landmarks: jnp.ndarray
    front_flag: Optional[jnp.ndarray] = None


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
    resolved = resolve_weights(weights, defaults)
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


def reconstruction_terms(model: FaceModel, coeffs: Coefficients, camera: Camera,
                         targets: Targets, render_fn: Optional[Callable] = None,
                         embed_fn: Optional[EmbedFn] = None, photometric: bool = True
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
    Returns:
      ({"lm", "reg", "sp", "exp"} plus "pho" and "per" when rendered, each a scalar;
       the FaceRender over the input, or None when not rendered).
    """
    front = targets.front_flag if targets.front_flag is not None else front_flags(coeffs)
    terms = {
        "lm": landmark_loss(project_landmarks(model, coeffs, camera), targets.landmarks, front,
                            float(camera.width)),
        "reg": coefficient_regularization(coeffs.identity, coeffs.albedo),
        "sp": expression_sparsity(coeffs.expression),
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
