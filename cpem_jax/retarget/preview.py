"""The preview video of `cpem-jax retarget`: input | our face model | the avatar, side by side.

Each frame is three square panels of `size` pixels, captioned:
  1. the face crop the estimator saw (the whole frame, captioned "no face", where none was
     found);
  2. our face model rendered with the exported (smoothed) expression and pose and the estimated
     identity, albedo and lighting, in the crop's camera, so it lines up with panel 1;
  3. the avatar (`--avatar`) posed with the per-frame morph weights `retarget_avatar` wrote and
     turned by the head rotation, rendered by `mesh_render`; without an avatar (or when the
     avatar cannot be read), our face model's neutral identity with the same weights from a 3/4
     view, shaded grey.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterator, Optional

import cv2
import jax
import numpy as np
from tqdm import tqdm

from cpem_jax.export.arkit import ARKIT_NAMES, build_arkit_mapping, shape_name_key
from cpem_jax.export.avatar import RetargetReport, match_target
from cpem_jax.export.coefficients import CoefficientTrack
from cpem_jax.export.schema import FrameTrack
from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import Camera
from cpem_jax.retarget.gltf_mesh import MorphMesh
from cpem_jax.retarget.mesh_render import Framing, frame_mesh, render_mesh
from cpem_jax.viz.overlay_video import write_video

THREE_QUARTER_YAW = 0.6  # radians, the view of the face model when no avatar is given
AVATAR_COLOR = (0.62, 0.72, 0.86)
MODEL_COLOR = (0.7, 0.7, 0.7)
BACKGROUND = (0.12, 0.12, 0.14)


@dataclasses.dataclass(frozen=True)
class MeshPanel:
    """The right panel: a morph mesh, its per-frame weights and how it is framed.

    Attributes:
      mesh: the mesh (an avatar, or our face model).
      weights: [N, T] float32 per-frame weights of mesh's T targets.
      framing: the preview camera, fixed over the video.
      caption: text written on the panel.
      color: RGB albedo in [0, 1].
    """
    mesh: MorphMesh
    weights: np.ndarray
    framing: Framing
    caption: str
    color: tuple


def face_model_mesh(model: FaceModel, identity: np.ndarray) -> MorphMesh:
    """Our model with one identity as a MorphMesh: vertices [V, 3] cm, one target per unit."""
    identity = np.nan_to_num(np.asarray(identity, np.float32))
    vertices = np.asarray(model.mean_shape) + np.einsum("vck,k->vc", np.asarray(model.id_basis),
                                                        identity)
    return MorphMesh(vertices=vertices.astype(np.float32),
                     triangles=np.asarray(model.triangles, np.int32),
                     deltas=np.moveaxis(np.asarray(model.exp_basis, np.float32), -1, 0),
                     target_keys=tuple(("face", u) for u in model.expression_names),
                     default_weights=np.zeros(model.n_expression, np.float32))


def shared_identity(track: CoefficientTrack) -> np.ndarray:
    """The identity [K_id] of a track: the mean over frames with a face (0 when none)."""
    rows = track.identity[track.face_found]
    return rows.mean(axis=0) if len(rows) else np.zeros(track.identity.shape[1], np.float32)


def model_panel(model: FaceModel, coefficients: CoefficientTrack,
                frame_track: FrameTrack) -> MeshPanel:
    """The right panel without an avatar: our face model from a 3/4 view."""
    mesh = face_model_mesh(model, shared_identity(coefficients))
    return MeshPanel(mesh=mesh, weights=frame_track.expression,
                     framing=frame_mesh(mesh.vertices, THREE_QUARTER_YAW),
                     caption="face model 3/4", color=MODEL_COLOR)


def avatar_weights(mesh: MorphMesh, report: Optional[RetargetReport],
                   frame_track: FrameTrack) -> np.ndarray:
    """Per-frame weights [N, T] of an avatar's targets, as `retarget_avatar` matched them.

    Targets matched to one of our units take its weight, those matched to an ARKit name the
    merged ARKit weight; the others keep the mesh's default weight. Without a report (the
    animated avatar was not requested) the names are matched with `avatar.match_target`, the
    rule `retarget_avatar` applies.
    """
    weights = np.tile(mesh.default_weights[None], (frame_track.n_frames, 1))
    mapping = build_arkit_mapping(frame_track.unit_names)
    arkit = mapping.to_arkit(frame_track.expression)
    units = {u: k for k, u in enumerate(frame_track.unit_names)}
    if report is not None:
        sources = {(m.mesh, m.target): (m.kind, m.source) for m in report.matched}
    else:  # The avatar file was not written: match the names the same way it would have.
        keys = {shape_name_key(u): u for u in frame_track.unit_names}
        sources = {key: match_target(key[1], keys, mapping) for key in mesh.target_keys}
        sources = {key: source for key, source in sources.items() if source is not None}
    for column, key in enumerate(mesh.target_keys):
        if key not in sources:
            continue
        kind, name = sources[key]
        weights[:, column] = (frame_track.expression[:, units[name]] if kind == "unit"
                              else arkit[:, ARKIT_NAMES.index(name)])
    return weights


def avatar_panel(mesh: MorphMesh, report: Optional[RetargetReport], frame_track: FrameTrack,
                 name: str) -> MeshPanel:
    """The right panel for an avatar loaded with `gltf_mesh.load_morph_mesh`."""
    return MeshPanel(mesh=mesh, weights=avatar_weights(mesh, report, frame_track),
                     framing=frame_mesh(mesh.vertices), caption=name, color=AVATAR_COLOR)


def caption(panel: np.ndarray, text: str) -> np.ndarray:
    """Writes `text` at the top left of panel [S, S, 3] uint8 (in place) and returns it."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(panel.shape[0] / 448.0, 0.3)
    width = cv2.getTextSize(text, font, scale, 1)[0][0]
    scale *= min(1.0, (panel.shape[1] - 12) / max(width, 1))  # Shrink long names to fit.
    x, y = 6, int(18 * scale / 0.5)
    # A dark outline from shifted copies (a thicker stroke would change the glyph widths).
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)):
        cv2.putText(panel, text, (x + dx, y + dy), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(panel, text, (x, y), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """image [H, W, 3] uint8 -> [size, size, 3] uint8, whole image scaled to fit, black bars."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top:top + new_h, left:left + new_w] = cv2.resize(image, (new_w, new_h),
                                                         interpolation=cv2.INTER_AREA)
    return out


def whole_frames(source, frame_indices, size: int, max_frames: Optional[int] = None) -> dict:
    """The named frames of a source, letterboxed: {frame index: [size, size, 3] uint8}.

    Used for the frames without a face, whose crop is empty. Reads the source once more; a
    source that cannot be read again gives {} (the panel then stays black).
    """
    from cpem_jax.io.frames import open_frames
    wanted = set(int(i) for i in frame_indices)
    out = {}
    if not wanted:
        return out
    try:
        with open_frames(source, max_frames=max_frames) as frames:
            for frame in frames:
                if frame.index in wanted:
                    out[frame.index] = letterbox(frame.image, size)
    except (OSError, ValueError) as error:
        logging.debug("preview: could not re-read %s (%s)", source, error)
    return out


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def preview_frames(coefficients: CoefficientTrack, crops: np.ndarray, frame_track: FrameTrack,
                   model: FaceModel, camera: Camera, right: MeshPanel, size: int = 224,
                   batch: int = 8, no_face_images: Optional[dict] = None
                   ) -> Iterator[np.ndarray]:
    """Yields the preview frames [size, 3 * size, 3] uint8 (module doc).

    Args:
      coefficients: the estimator's track (identity, albedo, lighting per frame).
      crops: [N, S, S, 3] uint8 face crops (S = camera size).
      frame_track: the exported track (smoothed expression and pose), N frames.
      model: the face model the coefficients belong to.
      camera: the crops' camera.
      right: the right panel.
      size: panel side in pixels.
      batch: frames rendered per call (one compiled shape; the last batch is padded).
      no_face_images: {frame index: [size, size, 3] uint8} shown in panel 1 for frames without
        a face (see `whole_frames`); black where absent.
    """
    no_face_images = no_face_images or {}
    from cpem_jax.render.face_renderer import render_face
    render = jax.jit(lambda m, c: render_face(m, c, camera, image_size=(size, size),
                                              background=np.asarray(BACKGROUND, np.float32)))
    n = frame_track.n_frames
    found = frame_track.face_found
    for begin in range(0, n, batch):
        idx = np.arange(begin, min(begin + batch, n))
        padded = np.concatenate([idx, np.repeat(idx[-1:], batch - len(idx))])
        clean = lambda a: np.nan_to_num(np.asarray(a[padded], np.float32))
        coeffs = Coefficients(identity=clean(coefficients.identity),
                              expression=clean(frame_track.expression),
                              albedo=clean(coefficients.albedo),
                              lighting=clean(coefficients.lighting),
                              rotation=clean(frame_track.rotation),
                              translation=clean(frame_track.translation))
        faces = np.asarray(render(model, coeffs).image)
        meshes = render_mesh(right.mesh.posed(right.weights[padded]), right.mesh.triangles,
                             right.framing, frame_track.rotation[padded], size=size,
                             color=right.color, background=BACKGROUND)
        for j, i in enumerate(idx):
            crop = cv2.resize(crops[i], (size, size), interpolation=cv2.INTER_AREA)
            if found[i]:
                middle = _to_uint8(faces[j])
            else:
                crop = no_face_images.get(int(coefficients.frame_index[i]), np.zeros_like(crop))
                crop = crop.copy()
                middle = np.full_like(crop, int(BACKGROUND[0] * 255))
            panels = [caption(crop, "input" if found[i] else "input: no face"),
                      caption(middle, "face model"),
                      caption(_to_uint8(meshes[j]), right.caption)]
            yield np.concatenate(panels, axis=1)


def write_preview(path: str, frames: Iterator[np.ndarray], fps: float, total: int,
                  progress: bool = True) -> int:
    """Writes the preview MP4 with a progress bar; returns the frame count."""
    bar = tqdm(frames, total=total, unit="frame", desc="preview", disable=not progress)
    count = write_video(path, bar, fps)
    logging.debug("wrote %d preview frames to %s", count, path)
    return count
