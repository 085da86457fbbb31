"""The synthetic benchmark generator: multi-frame clips rendered from the face model with exact
ground truth, written in the CPEM folder layout (training reads a split folder unchanged).

    model = load_face_model()
    generate_split(model, "/tmp/synth/test", SynthConfig(n_clips=10, n_frames=8, split="test"))

Per clip: one random identity and albedo (a new person; `person_id` = split + clip number), a
smooth head motion, smoothly varying sparse expressions (`expressions.sample_clip_expressions`,
contradictory pairs never both on), lighting drifting between two random SH lights, one random
background. Per frame: Gaussian blur and pixel noise, and landmarks = exact projection + Gaussian
noise (independent draws for `landmarks/` and `landmarks2d/`). The skin mask is the render's
coverage mask (the mesh has no eyeballs or mouth interior, so those stay out).

Reproducibility: every random draw comes from `numpy.random.SeedSequence(seed, spawn_key=(split
code, clip))`, so a clip depends only on (seed, split, clip number) and the sizes, and the same
arguments write identical files. Train and test draw from different spawn keys: their identities
are independent draws and their person ids differ, so no test identity is seen in training.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from typing import Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from cpem_jax.data import cpem_folder
from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL, default_camera
from cpem_jax.render.antialias import edge_neighbors
from cpem_jax.render.face_renderer import render_face
from cpem_jax.synthetic import expressions, features, scene, writer
from cpem_jax.synthetic.ground_truth import FILE_NAME as GT_FILE_NAME
from cpem_jax.synthetic.ground_truth import GroundTruth

logger = logging.getLogger(__name__)

SPLIT_CODES: Dict[str, int] = {"train": 0, "test": 1, "val": 2}
CONFIG_FILE = "synth_config.json"
VIDEO_ID = "000"


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What `generate_split` writes (sizes, seed, split) and how it varies (the samplers)."""
    n_clips: int = 10
    n_frames: int = 8
    image_size: int = 224
    seed: int = 0
    split: str = "test"
    identity_scale: float = 1.0        # identity ~ N(0, identity_scale^2)
    albedo_scale: float = 0.35         # albedo ~ N(0, albedo_scale^2); 1.0 gives unnatural hues
    landmark_noise_px: float = 1.5     # per-coordinate std at 224 px (scaled with the size)
    front_yaw_deg: float = 15.0        # front_face_flag = |yaw| <= this
    frames_per_key: int = 2            # a key expression every this many frames
    max_presets: int = 2               # expression presets mixed in a key expression
    batch_size: int = 8                # frames rendered per call (one compiled shape)
    focal_per_pixel: float = DEFAULT_FOCAL_PER_PIXEL
    distance_cm: float = DEFAULT_DISTANCE_CM
    image_ext: str = ".jpg"
    features: bool = True              # eyeballs, mouth, brows, lips (synthetic.features)
    scene: scene.SceneConfig = scene.SceneConfig()

    def __post_init__(self):
        for name in ("n_clips", "n_frames", "image_size", "batch_size", "frames_per_key",
                     "max_presets"):
            if getattr(self, name) < 1:
                raise ValueError(f"SynthConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.split not in SPLIT_CODES:
            raise ValueError(f"split {self.split!r}; use one of {sorted(SPLIT_CODES)}")
        if self.image_ext not in (".jpg", ".png"):
            raise ValueError(f"image_ext {self.image_ext!r}; use .jpg or .png")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


@dataclasses.dataclass
class ClipSample:
    """One clip's sampled parameters (T frames), numpy."""
    person_id: str
    identity_seed: int
    identity: np.ndarray      # [K_id]
    albedo: np.ndarray        # [K_alb]
    expression: np.ndarray    # [T, K]
    rotation: np.ndarray      # [T, 3] radians
    translation: np.ndarray   # [T, 3] cm
    lighting: np.ndarray      # [T, 3, 9]
    background: np.ndarray    # [S, S, 3] float32 in [0, 1]
    frame_seeds: List[np.random.SeedSequence]
    look: features.ClipFeatures  # colours of eyes, mouth, brows and lips


def clip_seed_sequence(seed: int, split: str, clip: int) -> np.random.SeedSequence:
    """The root of every draw of one clip (see the module docstring)."""
    return np.random.SeedSequence(seed, spawn_key=(SPLIT_CODES[split], clip))


def person_id(split: str, clip: int) -> str:
    return f"{split}{clip:05d}"


def sample_clip(model: FaceModel, config: SynthConfig, clip: int) -> ClipSample:
    """Samples one clip's identity, albedo, expressions, pose, lighting and background."""
    root = clip_seed_sequence(config.seed, config.split, clip)
    # A fourth child for the features: the first three (and every draw from them) are the
    # same as before the features existed.
    identity_seq, clip_seq, frames_seq, features_seq = root.spawn(4)
    id_rng = np.random.default_rng(identity_seq)
    identity = (config.identity_scale * id_rng.standard_normal(model.n_identity)).astype(np.float32)
    albedo = (config.albedo_scale * id_rng.standard_normal(model.n_albedo)).astype(np.float32)
    rng = np.random.default_rng(clip_seq)
    t = config.n_frames
    expression = expressions.sample_clip_expressions(
        model.expression_names, np.asarray(model.contradictory_pairs), t, rng,
        config.frames_per_key, config.max_presets)
    rotation, translation = scene.sample_clip_pose(t, rng, config.scene)
    light_a, light_b = (scene.sample_lighting(rng, config.scene) for _ in range(2))
    blend = np.linspace(0.0, 1.0, t)[:, None, None] if t > 1 else np.zeros((1, 1, 1))
    lighting = (light_a * (1.0 - blend) + light_b * blend).astype(np.float32)
    background = scene.random_background(config.image_size, rng)
    return ClipSample(person_id=person_id(config.split, clip),
                      identity_seed=int(identity_seq.generate_state(1, np.uint32)[0]),
                      identity=identity, albedo=albedo, expression=expression,
                      rotation=rotation, translation=translation, lighting=lighting,
                      background=background, frame_seeds=frames_seq.spawn(t),
                      look=features.sample_features(np.random.default_rng(features_seq)))


_render = jax.jit(render_face, static_argnames=("image_size", "frames_per_step"))


def _clear_split(split_dir: str) -> None:
    """Removes what a previous `generate_split` wrote (only the layout's own entries)."""
    for name in (cpem_folder.IMAGE_DIR, cpem_folder.MASK_DIR, cpem_folder.LANDMARKS_DIR,
                 cpem_folder.LANDMARKS2D_DIR):
        shutil.rmtree(os.path.join(split_dir, name), ignore_errors=True)
    for name in (cpem_folder.FLAG_CSV, GT_FILE_NAME, CONFIG_FILE):
        path = os.path.join(split_dir, name)
        if os.path.isfile(path):
            os.remove(path)


def generate_split(model: FaceModel, split_dir: str, config: SynthConfig,
                   overwrite: bool = False, progress: bool = True) -> GroundTruth:
    """Renders and writes one split; returns its ground truth (also saved as ground_truth.npz).

    Args:
      model: the face model (its unit names and contradictory pairs drive the expressions).
      split_dir: the output folder; it becomes one CPEM source (`build_index(split_dir)`).
      config: sizes, seed, split and sampler settings.
      overwrite: replace a previous generation in split_dir (otherwise a non-empty split_dir is
        an error).
      progress: show a tqdm bar.
    """
    if os.path.isdir(split_dir) and os.listdir(split_dir):
        if not overwrite:
            raise FileExistsError(f"{split_dir!r} is not empty; pass --overwrite (overwrite=True)"
                                  f" to replace it, or choose another --out")
        _clear_split(split_dir)
    os.makedirs(split_dir, exist_ok=True)
    size = config.image_size
    camera = default_camera(size, focal=config.focal_per_pixel * size,
                            distance_cm=config.distance_cm)
    neighbors = edge_neighbors(model.triangles)
    painter = features.painter_for(model, camera, size) if config.features else None
    render_model = model
    if painter is not None:
        extra = features.feature_albedo_basis(model, painter.dense)
        render_model = model.replace(albedo_basis=jnp.concatenate(
            [model.albedo_basis, jnp.asarray(extra)], axis=-1))
    elif config.features:
        logger.info("synth: %s has no dense landmark table; faces are rendered without eyes, "
                    "mouth, brows or lip colour", model.name)
    clips = [sample_clip(model, config, c) for c in range(config.n_clips)]
    jobs = [(c, t) for c in range(config.n_clips) for t in range(config.n_frames)]
    rows: Dict[str, list] = {k: [] for k in (
        "frame_key", "person_id", "video_id", "frame_name", "clip_index", "frame_index",
        "identity", "albedo", "expression", "rotation", "translation", "lighting", "landmarks",
        "blur_px", "noise", "identity_seed")}
    flags = []
    noise_px = config.landmark_noise_px * size / scene.REFERENCE_SIZE
    batch = config.batch_size
    start = time.perf_counter()
    with tqdm(total=len(jobs), unit="frame", desc=f"synth {config.split}",
              disable=not progress) as bar:
        for begin in range(0, len(jobs), batch):
            part = jobs[begin:begin + batch]
            padded = part + [part[-1]] * (batch - len(part))
            coeffs = Coefficients(
                identity=jnp.asarray(np.stack([clips[c].identity for c, _ in padded])),
                expression=jnp.asarray(np.stack([clips[c].expression[t] for c, t in padded])),
                albedo=jnp.asarray(np.stack([_albedo(clips[c], painter) for c, _ in padded])),
                lighting=jnp.asarray(np.stack([clips[c].lighting[t] for c, t in padded])),
                rotation=jnp.asarray(np.stack([clips[c].rotation[t] for c, t in padded])),
                translation=jnp.asarray(np.stack([clips[c].translation[t] for c, t in padded])))
            background = jnp.asarray(np.stack([_background(clips[c], t, painter)
                                               for c, t in padded]))
            out = jax.device_get(_render(render_model, coeffs, camera, image_size=(size, size),
                                         background=background, neighbors=neighbors))
            for k, (c, t) in enumerate(part):
                clip = clips[c]
                rng = np.random.default_rng(clip.frame_seeds[t])
                image, applied = scene.degrade(np.asarray(out.image[k]), rng, config.scene)
                exact = np.asarray(out.landmarks[k], np.float32)
                lm3d = exact + rng.normal(0.0, noise_px, exact.shape).astype(np.float32)
                lm2d = exact + rng.normal(0.0, noise_px, exact.shape).astype(np.float32)
                name = f"{clip.person_id}_{t:03d}"
                writer.write_frame(split_dir, clip.person_id, VIDEO_ID, name, image,
                                   np.asarray(out.mask[k]), lm3d, lm2d, config.image_ext)
                front = abs(np.degrees(clip.rotation[t, 1])) <= config.front_yaw_deg
                flags.append((clip.person_id, VIDEO_ID, name, front))
                for key, value in (
                        ("frame_key", f"{clip.person_id}/{VIDEO_ID}/{name}"),
                        ("person_id", clip.person_id), ("video_id", VIDEO_ID),
                        ("frame_name", name), ("clip_index", c), ("frame_index", t),
                        ("identity", clip.identity), ("albedo", clip.albedo),
                        ("expression", clip.expression[t]), ("rotation", clip.rotation[t]),
                        ("translation", clip.translation[t]), ("lighting", clip.lighting[t]),
                        ("landmarks", exact), ("blur_px", applied["blur_px"]),
                        ("noise", applied["noise"]), ("identity_seed", clip.identity_seed)):
                    rows[key].append(value)
            bar.update(len(part))
    writer.write_flags(split_dir, flags)
    dtypes = {"clip_index": np.int32, "frame_index": np.int32, "identity_seed": np.int64}
    arrays = {k: (np.asarray(v, np.str_) if isinstance(v[0], str)
                  else np.asarray(v, dtypes.get(k, np.float32))) for k, v in rows.items()}
    gt = GroundTruth(**arrays, unit_names=tuple(model.expression_names), face_model=model.name,
                     split=config.split, seed=config.seed, image_size=size,
                     focal_px=float(config.focal_per_pixel * size),
                     distance_cm=float(config.distance_cm))
    gt.save(split_dir)
    seconds = time.perf_counter() - start
    _write_config(split_dir, config, model, len(jobs))
    logger.info("synth %s: %d clips x %d frames at %d px in %.1f s -> %s", config.split,
                config.n_clips, config.n_frames, size, seconds, split_dir)
    return gt


def _albedo(clip: ClipSample, painter) -> np.ndarray:
    """The clip's albedo weights, with the feature modes' two weights where they are drawn."""
    if painter is None:
        return clip.albedo
    return np.concatenate([clip.albedo, np.array([clip.look.hair, clip.look.lips], np.float32)])


def _background(clip: ClipSample, t: int, painter) -> np.ndarray:
    """Frame t's background, with the eyeballs and mouth painted in where they are drawn."""
    if painter is None:
        return clip.background
    return painter.paint(clip.background, clip.identity, clip.expression[t], clip.rotation[t],
                         clip.translation[t], clip.lighting[t], clip.look)


def _write_config(split_dir: str, config: SynthConfig, model: FaceModel, n_frames: int) -> None:
    """synth_config.json: the settings (no timing, so equal settings write an equal file)."""
    record = dataclasses.asdict(config)
    record.update({"face_model": model.name, "frames_written": n_frames})
    with open(os.path.join(split_dir, CONFIG_FILE), "w") as f:
        json.dump(record, f, indent=1)


def load_config(split_dir: str) -> Optional[dict]:
    """The synth_config.json of a split (None when absent)."""
    path = os.path.join(split_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
