"""Retargeting outputs: ARKit CSV/JSON, Live Link Face CSV, glTF with morph targets, avatars.

Every writer consumes one `cpem_jax.estimation.VideoEstimate` (what every estimator returns),
through the animation track it gives (every frame, missing ones filled, then smoothed):

    save_coefficients(estimate, "out/coefficients")         # .npz + .json, exact
    track = animation_track(estimate, missing="zero")        # FrameTrack
    track = smooth_track(track, SmoothingConfig())          # keeps the raw values
    write_csv(track, "out/track.csv")
    write_json(track, "out/track.json", smoothing=SmoothingConfig().to_dict())
    write_livelink_csv(track, "out/livelink.csv")
    write_face_glb("out/face.glb", model, estimate.identity, track)   # the 52 ARKit targets
    check_avatar("character.glb", track.unit_names)          # before any work: usable?
    report = retarget_avatar("character.glb", track, "out/character_animated.glb")
    mesh = load_morph_mesh("character.glb")                 # numpy triangles + morph targets

glTF modules: `gltf_io` (buffers, accessors, quaternions, node transforms, both ways), `gltf` (the
face .glb writer), `avatar` (a user's avatar: loading, target matching, animation, MorphMesh).
"""
from cpem_jax.export.arkit import (ARKIT_NAMES, ArkitMapping, arkit_name_for,
                                   build_arkit_mapping, shape_name_key)
from cpem_jax.export.avatar import (AvatarError, AvatarPlan, RetargetReport, check_avatar,
                                    load_avatar, load_avatar_map, match_target, mesh_target_names,
                                    plan_avatar, retarget_avatar)
from cpem_jax.export.morph_mesh import MorphMesh, load_morph_mesh
from cpem_jax.export.coefficients import coefficients_json, load_coefficients, save_coefficients
from cpem_jax.export.csv_json import read_json, write_csv, write_json
from cpem_jax.export.face_glb import GLB_NAMES, arkit_targets, face_model_mesh, write_face_glb
from cpem_jax.export.gltf import write_glb
from cpem_jax.export.gltf_io import node_matrix, world_matrices
from cpem_jax.export.livelink import LIVELINK_HEADER, write_livelink_csv
from cpem_jax.export.schema import FrameTrack, animation_track, fill_missing, resample_track
from cpem_jax.export.smoothing import OneEuroParams, SmoothingConfig, one_euro_filter, smooth_track

__all__ = [
    "ARKIT_NAMES", "ArkitMapping", "arkit_name_for", "build_arkit_mapping", "shape_name_key",
    "AvatarError", "AvatarPlan", "MorphMesh", "RetargetReport", "check_avatar", "load_avatar",
    "load_avatar_map", "load_morph_mesh", "match_target", "mesh_target_names", "plan_avatar",
    "retarget_avatar", "read_json", "write_csv",
    "write_json", "write_glb", "node_matrix", "world_matrices", "LIVELINK_HEADER",
    "write_livelink_csv", "FrameTrack", "fill_missing", "resample_track", "OneEuroParams", "SmoothingConfig",
    "one_euro_filter", "smooth_track", "animation_track", "coefficients_json",
    "load_coefficients", "save_coefficients", "face_model_mesh", "write_face_glb", "GLB_NAMES",
    "arkit_targets",
]
