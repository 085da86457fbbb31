"""The estimation layer: from frames to a `VideoEstimate`.

Frames are read by `cpem_jax.io`, faces found, followed and cropped by `cpem_jax.detect` (one
pass, `detect.pipeline.detect_and_crop`), and estimated here: `fitting` (per-video fitting with
one identity, `cpem_jax.fit`) or `network` (a trained PE-Net). `estimate.estimate_video` picks one;
every estimator returns a `VideoEstimate`, which every writer in `cpem_jax.export` consumes.
"""
from cpem_jax.estimation.video_estimate import VideoEstimate

__all__ = ["VideoEstimate"]
