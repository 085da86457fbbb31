"""The preview video of `cpem-jax retarget`: input | our face model | the avatar, side by side,
and the fit overlay video (input | render | landmarks).

Each preview frame is three square panels of `size` pixels, captioned:
  1. the image the estimator saw: the face crop, or the whole frame letterboxed where no face was
     found (captioned "no face");
  2. our face model rendered with the exported (smoothed) expression and pose and the estimated
     identity, albedo and lighting, in the crop's camera, so it lines up with panel 1;
  3. the avatar (`--avatar`) posed with the per-frame morph weights `retarget_avatar` wrote and
     turned by the head rotation, rendered by `mesh_render`, framed on its head: the bounding box
     of the vertices that the driven morph targets move (the face of a full-body character),
     enlarged to the whole head; without an avatar (or when the avatar cannot be read or drives
     nothing), our face model's neutral identity with the same weights from a 3/4 view, shaded
     grey.
Everything comes from the `VideoEstimate` (its crops included): the source is not read again.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterator, Mapping, Optional, Sequence

import cv2
import jax
import numpy as np
from tqdm import tqdm

from cpem_jax.batching import padded_batches
from cpem_jax.estimation.video_estimate import VideoEstimate
from cpem_jax.export import (ARKIT_NAMES, FrameTrack, MorphMesh, RetargetReport,
                             build_arkit_mapping, face_model_mesh, match_target, shape_name_key)
from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.io.video_writer import write_video
from cpem_jax.render.face_renderer import render_face
from cpem_jax.retarget.mesh_render import Framing, frame_mesh, frame_region, render_mesh
from cpem_jax.viz.overlay import overlay_row, to_uint8

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


def model_panel(model: FaceModel, estimate: VideoEstimate, frame_track: FrameTrack) -> MeshPanel:
    """The right panel without an avatar: our face model from a 3/4 view."""
    mesh = face_model_mesh(model, estimate.identity)
    return MeshPanel(mesh=mesh, weights=frame_track.expression,
                     framing=frame_mesh(mesh.vertices, THREE_QUARTER_YAW),
                     caption="face model 3/4", color=MODEL_COLOR)


def avatar_sources(mesh: MorphMesh, report: Optional[RetargetReport], frame_track: FrameTrack,
                   target_map: Optional[Mapping[str, str]] = None) -> dict:
    """Column of `mesh` -> ("unit" | "arkit", source name) for the targets our track drives:
    those `report` lists, or without a report (the animated avatar was not requested) those
    `avatar.match_target` matches, the rule `retarget_avatar` applies."""
    if report is not None:
        by_key = {(m.mesh, m.target): (m.kind, m.source) for m in report.matched}
    else:
        keys = {shape_name_key(u): u for u in frame_track.unit_names}
        mapping = build_arkit_mapping(frame_track.unit_names)
        by_key = {key: match_target(key[1], keys, mapping, target_map)
                  for key in mesh.target_keys}
    return {column: by_key[key] for column, key in enumerate(mesh.target_keys)
            if by_key.get(key) is not None}


def avatar_weights(mesh: MorphMesh, report: Optional[RetargetReport],
                   frame_track: FrameTrack,
                   target_map: Optional[Mapping[str, str]] = None) -> np.ndarray:
    """Per-frame weights [N, T] of an avatar's targets, as `retarget_avatar` matched them
    (`avatar_sources`): a target matched to one of our units takes its weight, one matched to
    an ARKit name the merged ARKit weight; the others keep the mesh's default weight."""
    weights = np.tile(mesh.default_weights[None], (frame_track.n_frames, 1))
    arkit = build_arkit_mapping(frame_track.unit_names).to_arkit(frame_track.expression)
    units = {u: k for k, u in enumerate(frame_track.unit_names)}
    for column, (kind, name) in avatar_sources(mesh, report, frame_track, target_map).items():
        weights[:, column] = (frame_track.expression[:, units[name]] if kind == "unit"
                              else arkit[:, ARKIT_NAMES.index(name)])
    return weights


def face_region(mesh: MorphMesh, columns) -> np.ndarray:
    """[V] bool: the vertices that the targets in `columns` move (every target's when those
    move nothing; all False when no target moves anything)."""
    extent = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0))) or 1.0
    for chosen in (sorted(columns), range(mesh.n_targets)):
        chosen = list(chosen)
        if chosen:
            moved = np.abs(mesh.deltas[chosen]).max(axis=(0, 2)) > 1e-5 * extent
            if moved.any():
                return moved
    return np.zeros(len(mesh.vertices), bool)


def avatar_panel(mesh: MorphMesh, report: Optional[RetargetReport], frame_track: FrameTrack,
                 name: str, target_map: Optional[Mapping[str, str]] = None) -> MeshPanel:
    """The right panel for an avatar loaded with `cpem_jax.export.load_morph_mesh`, framed on
    the region its driven morph targets move (module doc)."""
    sources = avatar_sources(mesh, report, frame_track, target_map)
    return MeshPanel(mesh=mesh, weights=avatar_weights(mesh, report, frame_track, target_map),
                     framing=frame_region(mesh.vertices, face_region(mesh, sources)),
                     caption=name, color=AVATAR_COLOR)


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


def _clean(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, np.float32))


def preview_frames(estimate: VideoEstimate, frame_track: FrameTrack, model: FaceModel,
                   right: MeshPanel, size: int = 224, batch: int = 8) -> Iterator[np.ndarray]:
    """Yields the preview frames [size, 3 * size, 3] uint8 (module doc).

    Args:
      estimate: the estimator's result, with its crops (identity, albedo, lighting, camera).
      frame_track: the exported track (smoothed expression and pose), N frames.
      model: the face model the coefficients belong to.
      right: the right panel.
      size: panel side in pixels.
      batch: frames rendered per call (one compiled shape; the last batch is padded).
    """
    if estimate.crops is None:
        raise ValueError("the preview needs the estimate's crops (an estimate read back from a "
                         "coefficient file has none)")
    camera = estimate.camera
    render = jax.jit(lambda m, c: render_face(m, c, camera, image_size=(size, size),
                                              background=np.asarray(BACKGROUND, np.float32)))
    found = frame_track.face_found
    identity, albedo = estimate.per_frame("identity"), estimate.per_frame("albedo")
    lighting = estimate.per_frame("lighting")
    for rows, padded in padded_batches(frame_track.n_frames, batch):
        coeffs = Coefficients(identity=_clean(identity[padded]),
                              expression=_clean(frame_track.expression[padded]),
                              albedo=_clean(albedo[padded]), lighting=_clean(lighting[padded]),
                              rotation=_clean(frame_track.rotation[padded]),
                              translation=_clean(frame_track.translation[padded]))
        faces = np.asarray(render(model, coeffs).image)
        meshes = render_mesh(right.mesh.posed(right.weights[padded]), right.mesh.triangles,
                             right.framing, frame_track.rotation[padded], size=size,
                             color=right.color, background=BACKGROUND)
        for j, i in enumerate(rows):
            crop = cv2.resize(estimate.crops[i], (size, size), interpolation=cv2.INTER_AREA)
            middle = (to_uint8(faces[j]) if found[i]
                      else np.full_like(crop, int(BACKGROUND[0] * 255)))
            panels = [caption(crop, "input" if found[i] else "input: no face"),
                      caption(middle, "face model"),
                      caption(to_uint8(meshes[j]), right.caption)]
            yield np.concatenate(panels, axis=1)


def overlay_frames(estimate: VideoEstimate, model: FaceModel, batch: int = 8,
                   indices: Optional[Sequence[int]] = None) -> Iterator[np.ndarray]:
    """The fit overlay: one [S, 3S, 3] uint8 row per frame (or per frame of `indices`, in
    order): crop | model rendered over the crop | landmarks (detected green, fitted red).
    Frames without a face show the letterboxed frame three times."""
    if estimate.crops is None:
        raise ValueError("the overlay needs the estimate's crops")
    camera = estimate.camera
    render = jax.jit(lambda m, c, back: render_face(m, c, camera, background=back))
    order = np.arange(estimate.n_frames) if indices is None else np.asarray(indices, int)
    rows_of = np.cumsum(estimate.face_found) - 1   # frame -> row among the frames with a face
    fitted = estimate.landmarks_fitted
    for rows, padded in padded_batches(len(order), batch):
        frames = order[padded]
        coeffs = estimate.coefficients(np.maximum(rows_of[frames], 0)) if estimate.n_found \
            else None
        backs = estimate.crops[frames].astype(np.float32) / 255.0
        images = np.asarray(render(model, coeffs, backs).image) if coeffs is not None else backs
        for j in range(len(rows)):
            i = frames[j]
            crop = estimate.crops[i]
            if not estimate.face_found[i]:
                yield overlay_row(crop, crop, None, None)
                continue
            a = estimate.crop_affine[i]
            detected = estimate.landmarks_detected[i] @ a[:, :2].T + a[:, 2]
            yield overlay_row(crop, images[j], detected, fitted[rows_of[i]])


def write_preview(path: str, frames: Iterator[np.ndarray], fps: float, total: int,
                  progress: bool = True) -> int:
    """Writes the preview MP4 with a progress bar; returns the frame count."""
    bar = tqdm(frames, total=total, unit="frame", desc="preview", disable=not progress)
    count = write_video(path, bar, fps)
    logging.debug("wrote %d preview frames to %s", count, path)
    return count
