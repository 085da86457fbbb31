"""One live frame's landmark solve, with the identity locked: the jitted core of
`estimation.streaming.StreamingEstimator`.

`solve_frame` takes `iterations` Adam steps over one frame's FrameParams [1] (expression [1, K],
rotation [1, 3], translation [1, 3]) on the fit's objective without the photometric term
(`fit.objective.fit_terms`), each parameter group's step scaled by `sizes` and shrinking along
the fit's cosine (`fit.optimize.cosine_factor`). The estimator jits it once with the camera,
weights and iteration count bound, so its shapes are fixed.
"""
from __future__ import annotations

from typing import Optional

import jax
import optax

from cpem_jax.face_model.dense_landmarks import DenseLandmarks
from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.objective import FitData, FitWeights, fit_terms
from cpem_jax.fit.optimize import cosine_factor
from cpem_jax.fit.params import FrameParams, SharedParams, project_frames, to_coefficients
from cpem_jax.geometry.pipeline import project_landmarks


def solve_frame(shared: SharedParams, init: FrameParams, data: FitData, sizes: FrameParams,
                adam: optax.ScaleByAdamState, model: FaceModel,
                dense: Optional[DenseLandmarks], camera, weights: FitWeights, iterations: int,
                carry_moments: bool, final_step: float):
    """`iterations` Adam steps over one frame's FrameParams [1] with `shared` locked, the steps
    scaled per group by `sizes` and shrinking along the fit's cosine (`fit.optimize`).

    `adam` is the optimiser state the previous frame ended with: its second moments (each
    parameter's gradient scale) carry over when `carry_moments`, and the first moments
    (momentum) restart at zero, so a frame does not start with the full-size, sign-only step a
    fresh Adam takes in every coordinate. Returns (FrameParams [1], the Adam state, the model's
    68 landmarks [1, 68, 2] in crop pixels).
    """
    objective = lambda f: fit_terms(shared, f, data, model, camera, weights, None,
                                    photometric=False, dense=dense)[0]
    tx = optax.scale_by_adam()
    grad_fn = jax.grad(objective)
    fresh = tx.init(init)
    adam = (adam._replace(mu=fresh.mu) if carry_moments else fresh)

    def body(i, carry):
        params, state = carry
        updates, state = tx.update(grad_fn(params), state, params)
        factor = cosine_factor(i, iterations, final_step)
        params = jax.tree_util.tree_map(lambda p, u, s: p - u * s * factor, params, updates,
                                        sizes)
        return project_frames(params), state

    frames, adam = jax.lax.fori_loop(0, iterations, body, (init, adam))
    return frames, adam, project_landmarks(model, to_coefficients(shared, frames), camera)
