"""Retargeting outputs: ARKit CSV/JSON, Live Link Face CSV, glTF with morph targets, avatars.

Typical use, from per-frame estimates of a video:

    track = FrameTrack.from_estimates(expression, rotation, translation,
                                      unit_names=model.expression_names, fps=fps)
    track = smooth_track(track, SmoothingConfig())          # keeps the raw values
    write_csv(track, "out/track.csv")
    write_json(track, "out/track.json", smoothing=SmoothingConfig().to_dict())
    write_livelink_csv(track, "out/livelink.csv")
    write_glb("out/face.glb", vertices, triangles, deltas, model.expression_names, track)
    report = retarget_avatar("character.glb", track, "out/character_animated.glb")
"""
from cpem_jax.export.arkit import (ARKIT_NAMES, ArkitMapping, arkit_name_for,
                                   build_arkit_mapping, shape_name_key)
from cpem_jax.export.avatar import AvatarError, RetargetReport, retarget_avatar
from cpem_jax.export.csv_json import read_json, write_csv, write_json
from cpem_jax.export.gltf import write_glb
from cpem_jax.export.livelink import LIVELINK_HEADER, write_livelink_csv
from cpem_jax.export.schema import FrameTrack, fill_missing
from cpem_jax.export.smoothing import OneEuroParams, SmoothingConfig, one_euro_filter, smooth_track

__all__ = [
    "ARKIT_NAMES", "ArkitMapping", "arkit_name_for", "build_arkit_mapping", "shape_name_key",
    "AvatarError", "RetargetReport", "retarget_avatar", "read_json", "write_csv", "write_json",
    "write_glb", "LIVELINK_HEADER", "write_livelink_csv", "FrameTrack", "fill_missing",
    "OneEuroParams", "SmoothingConfig", "one_euro_filter", "smooth_track",
]
