"""Fits the morphable model to a sequence of face crops with one identity for all frames.

Stages (coarse to fine):
  0. Pose: every frame's rotation and translation start from PnP of the model's mean face on
     the frame's landmarks (`cpem_jax.fit.rigid`), so the identity never has to absorb a turn.
  1. Identity: on up to `keyframes` frames chosen by pose (near-frontal ones first, spread over
     time: `rigid.pose_keyframes`), the shared identity and albedo are fitted jointly with those
     frames' expression, pose and lighting; first to the landmarks only, then with the
     photometric term. Where the video has more near-frontal frames, up to `rest_candidates`
     of them are then fitted with that identity (landmarks only), the `keyframes` whose face
     rests most (`rigid.rest_keyframes`) are chosen, and the identity is fitted again on them:
     an identity fitted on mostly smiling frames takes part of the smile, and the face at rest
     then reads as its opposite (a pucker). On the resting keyframes the brow units and
     mouthLowerDown carry the full sparsity prior (`FitConfig.rest_unit_sparsity`; elsewhere a
     part of it, `config.BROW_SPARSITY`, `config.LIP_SPARSITY`), so that brows that sit high or
     a lower lip that sits low at rest go into the identity as far as it can take them, and the
     tracked frames read their motion from there. When every frame is a
     keyframe (a single image, a short clip) this is the whole fit: no frame is padded and
     there is no tracking pass.
  2. Tracking: the identity and albedo are locked; the frames are fitted in batches of `chunk`,
     each warm-started from the previous batch's last frame (expression, lighting) and its own
     PnP pose with the fitted identity, tied to the previous frame by the temporal prior
     (eyeBlink by a tenth of it, `config.BLINK_TEMPORAL`: a blink peaks within a frame or two);
     landmarks first, then with the photometric term. Where the irises are fitted, the gaze
     units (`DenseLandmarks.gaze_units`) start at rest in every batch: the eyes jump
     between fixations within a frame or two, so the last frame's gaze is no guide to the next
     batch's, and when a jump flips eyeLookIn/Out or Up/Down, the expression-exclusive term
     holds the new side near zero while the old one is still the larger (experiments/labels:
     a look right after a look left read eyeLookOutRight 0.09 from the warm gaze, 0.49 from
     rest).
Landmarks: the 68 iBUG points, or, where the front end gives MediaPipe's 478 points and the face
model has a dense table (`cpem_jax.face_model.dense_landmarks`), those, each weighted by its
region (`losses.landmark.DENSE_REGION_WEIGHTS`), with an eye's iris points weighted by how open
the detected eye is (`config.IRIS_OPENNESS`: a closed eye's iris is not seen; its lids still are),
and the eyeLook* units carry `FitConfig.iris_gaze_sparsity` of their sparsity prior.
Every stage is one jitted program (the Adam loop inside), compiled once per shape.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import cv2
import numpy as np
from tqdm import tqdm

from cpem_jax.face_model.dense_landmarks import (DenseLandmarks, dense_points, eye_openness,
                                                 gaze_unit_indices)
from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.config import IRIS_OPENNESS, FitConfig
from cpem_jax.fit.objective import FitData, fit_terms
from cpem_jax.fit.optimize import (frame_step_sizes, project_joint, run_adam,
                                   shared_step_sizes)
from cpem_jax.fit.params import (FrameParams, SharedParams, init_frames, init_shared,
                                 project_frames, to_coefficients)
from cpem_jax.fit.rigid import (INNER_68, pose_keyframes, rest_keyframes, rigid_points,
                                solve_poses)
from cpem_jax.fit.skin_mask import skin_mask_from_landmarks
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.losses.landmark import dense_region_weights, project_dense
from cpem_jax.losses.objective import Targets

@dataclasses.dataclass
class SequenceFit:
    """The fit of N frames: shared identity/albedo and per-frame FrameParams [N], numpy.

    landmarks_fitted: [N, 68, 2] the model's 68 landmarks, crop pixels; dense_fitted: [N, 478, 2]
    the model's dense points, crop pixels, where the fit used them (else None).
    """
    shared: SharedParams
    frames: FrameParams
    landmarks_fitted: np.ndarray
    dense_fitted: Optional[np.ndarray] = None


def _slice_frames(frames: FrameParams, idx) -> FrameParams:
    return jax.tree_util.tree_map(lambda x: x[idx], frames)


def _pad(array: np.ndarray, n: int) -> np.ndarray:
    """Repeats the last entry so that the leading axis has n entries."""
    if len(array) == n:
        return array
    return np.concatenate([array, np.repeat(array[-1:], n - len(array), axis=0)])


class SequenceFitter:
    """Compiled fitting programs for one model, camera and config.

    `dense`: the model's DenseLandmarks (`dense_landmarks_for(model)`), or None to fit the 68
    points only.
    """

    def __init__(self, model: FaceModel, config: FitConfig, render_fn: Optional[Callable] = None,
                 dense: Optional[DenseLandmarks] = None):
        self.model = model
        self.config = config
        self.camera = config.camera()
        self.dense = dense
        seen = dense is not None and bool(
            np.any(np.asarray(dense.valid)[np.asarray(dense.eye) >= 0]))
        # Units reset at each tracking batch where the irises are fitted (the 68 points have
        # none: there the gaze prior holds the eyeLook* units at rest, `irises_unseen`).
        self._gaze_ids = (jnp.asarray(dense.gaze_units).reshape(-1) if seen
                          else jnp.zeros(0, jnp.int32))
        self._sparsity = self._sparsity_factors(model, config, np.asarray(self._gaze_ids))
        self.unit_temporal = jnp.asarray(config.temporal_factors(model))
        self._gaze_68 = gaze_unit_indices(model)
        loss = functools.partial(fit_terms, camera=self.camera, weights=config.weights,
                                 render_fn=render_fn)

        def joint(shared, frames, data, model, dense, photometric, iterations):
            objective = lambda p: loss(p[0], p[1], data, model, photometric=photometric,
                                       dense=dense)[0]
            return run_adam(objective, (shared, frames),
                            (shared_step_sizes(), frame_step_sizes()), iterations,
                            project_joint)

        def track(shared, frames, data, model, dense, photometric, iterations):
            objective = lambda f: loss(shared, f, data, model, photometric=photometric,
                                       dense=dense)[0]
            return run_adam(objective, frames, frame_step_sizes(), iterations, project_frames)

        def terms(shared, frames, data, model, dense):
            return loss(shared, frames, data, model, photometric=config.photometric,
                        dense=dense)[1]

        static = ("photometric", "iterations")
        self._joint = jax.jit(joint, static_argnames=static)
        self._track = jax.jit(track, static_argnames=static)
        self._terms = jax.jit(terms)
        if dense is not None:
            self._mean_dense = np.asarray(dense_points(
                dense, jnp.zeros(model.n_identity), jnp.zeros(model.n_expression)))
            self._region_weights = np.asarray(dense_region_weights(dense))
            # The gaze prior needs iris points (an ICT build without gaze units has none).
            self._has_iris = seen
            valid = np.flatnonzero(np.asarray(dense.valid) & (np.asarray(dense.eye) < 0))
            self._rigid_dense = rigid_points(np.asarray(dense.exp_basis), valid)
        ids = np.asarray(model.landmark_ids)
        self._rigid_68 = rigid_points(np.asarray(model.exp_basis)[ids], INNER_68)

    @staticmethod
    def _sparsity_factors(model: FaceModel, config: FitConfig, gaze_ids: np.ndarray):
        """{(irises fitted, resting keyframes): [K_exp] factors of the sparsity prior}: the
        config's `unit_sparsity` (`rest_unit_sparsity` over it on the resting keyframes), with
        the eyeLook* units `gaze_ids` times `iris_gaze_sparsity` where the irises are fitted."""
        iris = np.ones(model.n_expression, np.float32)
        iris[gaze_ids] = config.iris_gaze_sparsity
        return {(irises, rest): jnp.asarray(config.sparsity_factors(model, rest)
                                            * (iris if irises else 1.0))
                for irises in (False, True) for rest in (False, True)}

    def unit_sparsity(self, irises: bool, rest: bool = False) -> jnp.ndarray:
        """[K_exp] factors of the sparsity prior of a fit with (or without) the irises, on the
        resting keyframes or elsewhere (`_sparsity_factors`)."""
        return self._sparsity[(bool(irises) and len(self._gaze_ids) > 0, bool(rest))]

    def terms(self, shared: SharedParams, frames: FrameParams, data: FitData):
        """The named fit terms of one batch (jitted)."""
        return self._terms(shared, frames, data, self.model, self.dense)

    # -- inputs ------------------------------------------------------------------------------

    def dense_weights(self, dense_points_: np.ndarray) -> np.ndarray:
        """Per-point weights [N, P] float32 of detected dense points [N, P, 2]: the region
        weight, 0 where a point is not finite or the model lacks it, and the iris points scaled
        by how open their eye is (`IRIS_OPENNESS`)."""
        return self.dense_inputs(dense_points_)[0]

    def dense_inputs(self, dense_points_: np.ndarray
                     ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """What the fit takes from detected dense points [N, P, 2], each eye's opening measured
        once: (`dense_weights` [N, P] float32, `FitData.gaze_hidden` [N, 2] float32 = 1 - how
        far each iris is seen, or None when the model's table has no iris points)."""
        points = np.asarray(dense_points_, np.float64)
        weights = np.where(np.isfinite(points).all(axis=-1), self._region_weights[None], 0.0)
        lo, hi = IRIS_OPENNESS
        openness = np.nan_to_num(eye_openness(self.dense, points))             # [N, 2]
        seen = np.clip((openness - lo) / (hi - lo), 0.0, 1.0)
        eye = np.asarray(self.dense.eye)
        for e in (0, 1):
            weights[:, eye == e] *= seen[:, e:e + 1]
        hidden = (1.0 - seen).astype(np.float32) if self._has_iris else None
        return weights.astype(np.float32), hidden

    def irises_unseen(self, n: int) -> Optional[np.ndarray]:
        """`FitData.gaze_hidden` [n, 2] float32 of frames fitted to the 68 points: ones (no
        iris among them, so the gaze prior holds every eyeLook* unit at rest), or None where the
        model has no gaze units. Six points per eye cannot tell a look down from a closing lid:
        without the prior a blink of 0.9 read eyeBlink 0.54 with eyeLookDown 0.3."""
        return None if self._gaze_68 is None else np.ones((n, 2), np.float32)

    def _data(self, crops: np.ndarray, landmarks: np.ndarray, anchor: FrameParams,
              anchor_weight: float, dense: Optional[np.ndarray] = None,
              consecutive: bool = True) -> FitData:
        size = self.config.size
        if crops.shape[1:] != (size, size, 3):
            raise ValueError(f"crops must be [N, {size}, {size}, 3], got {crops.shape}")
        photo = self.config.photo_size
        scale = photo / size
        skin = np.stack([skin_mask_from_landmarks(lm * scale, photo) for lm in landmarks])
        image = crops.astype(np.float32) / (255.0 if crops.dtype == np.uint8 else 1.0)
        if photo != size:
            image = np.stack([cv2.resize(im, (photo, photo), interpolation=cv2.INTER_AREA)
                              for im in image])
        targets = Targets(image=jnp.asarray(image), skin_mask=jnp.asarray(skin),
                          landmarks=jnp.asarray(landmarks, jnp.float32))
        if dense is not None:
            dense_weights, hidden = self.dense_inputs(dense)
            targets = targets.replace(
                dense=jnp.asarray(np.nan_to_num(dense), jnp.float32),
                dense_weights=jnp.asarray(dense_weights, jnp.float32))
        else:
            hidden = self.irises_unseen(len(landmarks))
        return FitData(targets=targets, anchor=anchor, anchor_weight=jnp.float32(anchor_weight),
                       unit_sparsity=self.unit_sparsity(dense is not None),
                       unit_temporal=self.unit_temporal,
                       consecutive=jnp.float32(1.0 if consecutive else 0.0),
                       gaze_hidden=None if hidden is None else jnp.asarray(hidden))

    def initial_poses(self, landmarks: np.ndarray, dense: Optional[np.ndarray] = None,
                      identity: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """PnP of the model's neutral face (mean shape, or with `identity`) on each frame's
        landmarks -> (rotation [N, 3], translation [N, 3]) float32 (`rigid.solve_poses`).

        Only the points expressions barely move take part (`rigid_points`: of the dense points
        without the iris, or of the 68 without the jaw), so that an open mouth or raised brows
        do not tilt the head; zeros for a model without such points.
        """
        model = self.model
        rigid = self._rigid_dense if dense is not None else self._rigid_68
        if rigid is None:
            n = len(landmarks)
            return np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32)
        if dense is not None:
            if identity is None:
                points = self._mean_dense
            else:
                points = np.asarray(dense_points(self.dense, jnp.asarray(identity),
                                                 jnp.zeros(model.n_expression)))
            return solve_poses(points[rigid], np.asarray(dense)[:, rigid], self.camera)
        ids = np.asarray(model.landmark_ids)[self._rigid_68]
        points = np.asarray(model.mean_shape)[ids]
        if identity is not None:
            points = points + np.einsum("lck,k->lc", np.asarray(model.id_basis)[ids],
                                        np.asarray(identity))
        return solve_poses(points, np.asarray(landmarks)[:, self._rigid_68], self.camera)

    # -- stages ------------------------------------------------------------------------------

    def _stages(self, fn, first, second, data):
        cfg = self.config
        iters = ((cfg.identity_landmark_iters, cfg.identity_photo_iters) if fn is self._joint
                 else (cfg.track_landmark_iters, cfg.track_photo_iters))
        out = fn(first, second, data, self.model, self.dense, photometric=False,
                 iterations=iters[0])
        if cfg.photometric and iters[1] > 0:
            args = out if fn is self._joint else (first, out)
            out = fn(*args, data, self.model, self.dense, photometric=True, iterations=iters[1])
        return out

    def fit_identity(self, crops: np.ndarray, landmarks: np.ndarray,
                     dense: Optional[np.ndarray] = None, rotation: Optional[np.ndarray] = None,
                     translation: Optional[np.ndarray] = None):
        """Shared identity/albedo (and the keyframes' FrameParams) from up to `keyframes` frames
        chosen by pose, then among resting frames (module docstring, stage 1). Returns (shared,
        keyframe ids [K] sorted, keyframe FrameParams [K]).

        Args:
          crops, landmarks, dense: as `fit` (dense None: the 68 points).
          rotation, translation: [N, 3] initial poses (default: `initial_poses`).
        """
        if rotation is None or translation is None:
            rotation, translation = self.initial_poses(landmarks, dense)
        cfg = self.config
        ids = pose_keyframes(rotation, cfg.keyframes, cfg.near_frontal_deg)
        shared, frames = self._identity_on(ids, crops, landmarks, dense, rotation, translation)
        pool = pose_keyframes(rotation, cfg.rest_candidates, cfg.near_frontal_deg)
        if len(pool) > len(ids):
            rest = rest_keyframes(self._pool_expressions(shared, pool, crops, landmarks, dense,
                                                         rotation, translation), pool, len(ids))
            if not np.array_equal(rest, ids):
                ids = rest
                shared, frames = self._identity_on(ids, crops, landmarks, dense, rotation,
                                                   translation, rest=True)
        return shared, ids, frames

    def _identity_on(self, ids, crops, landmarks, dense, rotation, translation,
                     rest: bool = False):
        """The identity stage on frames `ids`: (shared, their FrameParams [len(ids)]).
        `rest`: the resting keyframes' factors of the sparsity prior (`unit_sparsity`)."""
        frames = init_frames(self.model, len(ids)).replace(
            rotation=jnp.asarray(rotation[ids]), translation=jnp.asarray(translation[ids]))
        data = self._data(crops[ids], landmarks[ids], _slice_frames(frames, slice(0, 1)), 0.0,
                          None if dense is None else dense[ids],
                          consecutive=bool(np.all(np.diff(ids) == 1)))
        if rest:
            data = data.replace(unit_sparsity=self.unit_sparsity(data.targets.dense is not None,
                                                                 rest=True))
        return self._stages(self._joint, init_shared(self.model), frames, data)

    def _pool_expressions(self, shared, pool, crops, landmarks, dense, rotation, translation):
        """Expression [len(pool), K] of frames `pool` with `shared` locked: the tracking
        stage's landmark iterations, each frame on its own (no temporal tie)."""
        chunk, out = self.config.chunk, []
        for begin in range(0, len(pool), chunk):
            rows = pool[begin:begin + chunk]
            part = None if dense is None else _pad(dense[rows], chunk)
            start = init_frames(self.model, 1)
            data = self._data(_pad(crops[rows], chunk), _pad(landmarks[rows], chunk), start, 0.0,
                              part, consecutive=False)
            init = init_frames(self.model, chunk).replace(
                rotation=jnp.asarray(_pad(rotation[rows], chunk)),
                translation=jnp.asarray(_pad(translation[rows], chunk)))
            frames = self._track(shared, init, data, self.model, self.dense, photometric=False,
                                 iterations=self.config.track_landmark_iters)
            out.append(np.asarray(frames.expression)[:len(rows)])
        return np.concatenate(out)

    def fit(self, crops: np.ndarray, landmarks: np.ndarray, progress: bool = True,
            shared: Optional[SharedParams] = None, dense: Optional[np.ndarray] = None,
            poses: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> SequenceFit:
        """Fits N crops [N, S, S, 3] (uint8 or float in [0, 1]) with landmarks [N, 68, 2].

        Args:
          shared: a known identity/albedo (skips the identity stage).
          dense: [N, 478, 2] dense points in crop pixels (NaN rows or points where missing),
            used where the fitter has a dense table; else the 68 landmarks are fitted.
          poses: known starting poses (rotation [N, 3], translation [N, 3]) instead of PnP
            (`initial_poses`), e.g. from a head tracker.
        """
        n = len(crops)
        if n == 0 or landmarks.shape != (n, 68, 2) or not np.all(np.isfinite(landmarks)):
            raise ValueError(f"need N >= 1 crops with finite landmarks [N, 68, 2]; got {n} crops "
                             f"and landmarks {landmarks.shape}")
        if dense is not None:
            dense = np.asarray(dense, np.float32)
            if self.dense is None:
                dense = None  # No table for this model: the 68 points.
            elif dense.shape != (n, self.dense.n_points, 2):
                raise ValueError(f"dense points must be [N={n}, {self.dense.n_points}, 2], got "
                                 f"{dense.shape}")
        given = poses is not None
        if given:
            rotation, translation = (np.asarray(a, np.float32).reshape(n, 3) for a in poses)
        else:
            rotation, translation = self.initial_poses(landmarks, dense)
        results = []
        if shared is None:
            shared, key_ids, key_frames = self.fit_identity(crops, landmarks, dense, rotation,
                                                            translation)
            if len(key_ids) == n:  # Every frame is a keyframe: nothing is left to track.
                return self._result(shared, jax.device_get(key_frames), dense)
            start = _slice_frames(key_frames, slice(0, 1))
        else:
            start = init_frames(self.model, 1)
        if not given:
            rotation, translation = self.initial_poses(landmarks, dense,
                                                       np.asarray(shared.identity))
        chunk = min(self.config.chunk, n)
        anchor, anchor_weight = start, 0.0
        with tqdm(total=n, unit="frame", desc="fitting", disable=not progress) as bar:
            for begin in range(0, n, chunk):
                stop = min(begin + chunk, n)
                rows = slice(begin, stop)
                part = None if dense is None else _pad(dense[rows], chunk)
                data = self._data(_pad(crops[rows], chunk), _pad(landmarks[rows], chunk), anchor,
                                  anchor_weight, part)
                init = jax.tree_util.tree_map(lambda x: jnp.repeat(x, chunk, axis=0), anchor)
                gaze = self._gaze_ids if dense is not None else self._gaze_ids[:0]
                init = init.replace(expression=init.expression.at[:, gaze].set(0.0),
                                    rotation=jnp.asarray(_pad(rotation[rows], chunk)),
                                    translation=jnp.asarray(_pad(translation[rows], chunk)))
                frames = self._stages(self._track, shared, init, data)
                frames = _slice_frames(frames, slice(0, stop - begin))
                results.append(jax.device_get(frames))
                anchor = _slice_frames(frames, slice(stop - begin - 1, stop - begin))
                anchor_weight = 1.0
                bar.update(stop - begin)
        frames = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *results)
        return self._result(shared, frames, dense)

    def _result(self, shared: SharedParams, frames: FrameParams,
                dense: Optional[np.ndarray]) -> SequenceFit:
        coeffs = to_coefficients(shared, frames)
        fitted = project_landmarks(self.model, coeffs, self.camera)
        dense_fitted = (None if dense is None
                        else np.asarray(project_dense(self.dense, coeffs, self.camera)))
        return SequenceFit(shared=jax.device_get(shared), frames=frames,
                           landmarks_fitted=np.asarray(fitted), dense_fitted=dense_fitted)
