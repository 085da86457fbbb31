"""`--method net`: a trained PE-Net, frame by frame, over the followed and cropped face.

    predictor = NetPredictor.from_workdir("runs/cpu")
    coeffs = predictor(crops)            # crops [N, S, S, 3] uint8 or float in [0, 1]

A training workdir holds `config.json` (written by training) and `checkpoints/` (orbax). Only the
network's parameters and BatchNorm statistics of the latest checkpoint are read (not the
optimiser state); the face model is the config's `face_model` unless another is named.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from cpem_jax.batching import padded_batches
from cpem_jax.detect.crop import CropConfig
from cpem_jax.detect.pipeline import detect_and_crop
from cpem_jax.estimation.video_estimate import VideoEstimate
from cpem_jax.face_model import load_face_model
from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import crop_camera
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.networks.pe_net import init_pe_net, pe_net_from_config


class CheckpointError(FileNotFoundError):
    """A workdir without a usable trained network."""


def restore_variables(workdir: str, template: dict) -> tuple:
    """The latest checkpoint's {'params', 'batch_stats'} shaped like `template`, and its step.

    Raises CheckpointError when the workdir has no checkpoint.
    """
    folder = os.path.join(os.path.abspath(workdir), "checkpoints")
    step = ocp.CheckpointManager(folder).latest_step() if os.path.isdir(folder) else None
    if step is None:
        raise CheckpointError(f"no checkpoint under {folder!r}; train first or pass another "
                              f"--checkpoint")
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        {"params": template["params"], "batch_stats": template.get("batch_stats", {})})
    restored = ocp.CheckpointManager(folder).restore(
        step, args=ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                          restore_args=ocp.checkpoint_utils.construct_restore_args(
                                              target)))
    return restored, int(step)


class NetPredictor:
    """A restored network with the face model and crop camera it was trained with."""

    def __init__(self, config: ml_collections.ConfigDict, model: FaceModel, variables: dict,
                 step: int = 0):
        self.config = config
        self.model = model
        self.variables = variables
        self.image_size = int(config.model.image_size)
        self.camera = crop_camera(self.image_size, config.camera.focal_per_pixel,
                                  config.camera.distance_cm)
        net = pe_net_from_config(config.model, model.layout())
        self._predict = jax.jit(lambda images: net.apply(variables, images, train=False))
        self.step = int(step)

    @classmethod
    def from_workdir(cls, workdir: str, face_model: Optional[str] = None) -> "NetPredictor":
        config_path = os.path.join(workdir, "config.json")
        if not os.path.isfile(config_path):
            raise CheckpointError(f"{workdir!r} has no config.json: pass the --workdir of a "
                                  f"training run (python -m cpem_jax.main ... --workdir=DIR)")
        with open(config_path) as f:
            config = ml_collections.ConfigDict(json.load(f))
        model = load_face_model(face_model or config.face_model or None)
        net = pe_net_from_config(config.model, model.layout())
        template = jax.eval_shape(lambda: init_pe_net(net, jax.random.PRNGKey(0),
                                                      int(config.model.image_size)))
        variables, step = restore_variables(workdir, template)
        return cls(config, model, variables, step)

    def __call__(self, crops: np.ndarray) -> Coefficients:
        """crops [N, S, S, 3] uint8 or float in [0, 1], S = the training image size."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"crops must be [N, {self.image_size}, {self.image_size}, 3], got "
                             f"{crops.shape}")
        images = crops.astype(np.float32) / (255.0 if crops.dtype == np.uint8 else 1.0)
        return jax.device_get(self._predict(jnp.asarray(images)))


def predict_video(source_spec, predictor: NetPredictor, landmarker, face: int = 0,
                  max_frames: Optional[int] = None, batch: int = 16,
                  progress: bool = True) -> VideoEstimate:
    """Coefficients of every frame with a face from the network (no optimisation).

    The network predicts an identity per frame (kept as `frame_identity`); the video's identity
    is their mean, the quantity the identity-consistency loss trains the frames to agree on.
    """
    t0 = time.perf_counter()
    tracked = detect_and_crop(source_spec, landmarker, CropConfig(size=predictor.image_size),
                              face, max_frames, progress=progress)
    t1 = time.perf_counter()
    chosen = tracked.crops[tracked.found]
    parts = []
    for rows, padded in tqdm(padded_batches(len(chosen), batch), unit="batch",
                             desc="predicting", disable=not progress,
                             total=-(-len(chosen) // batch)):
        coeffs = predictor(chosen[padded])
        parts.append(jax.tree_util.tree_map(lambda x: np.asarray(x)[:len(rows)], coeffs))
    coeffs = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)
    landmarks = np.asarray(project_landmarks(predictor.model, coeffs, predictor.camera))
    t2 = time.perf_counter()
    return VideoEstimate.from_tracked(
        tracked, predictor.model, predictor.camera, method="net",
        identity=coeffs.identity.mean(axis=0), albedo=coeffs.albedo.mean(axis=0),
        expression=coeffs.expression, rotation=coeffs.rotation,
        translation=coeffs.translation, lighting=coeffs.lighting, landmarks_fitted=landmarks,
        frame_identity=coeffs.identity, timings={"detect_crop_s": t1 - t0, "estimate_s": t2 - t1})


class NetEstimator:
    """`predict_video` with a fixed predictor and front end: estimator(source) -> VideoEstimate."""
    method = "net"

    def __init__(self, predictor: NetPredictor, landmarker):
        self.predictor, self.landmarker = predictor, landmarker
        self.model = predictor.model

    def __call__(self, source, face: int = 0, max_frames: Optional[int] = None,
                 progress: bool = True) -> VideoEstimate:
        return predict_video(source, self.predictor, self.landmarker, face=face,
                             max_frames=max_frames, progress=progress)
