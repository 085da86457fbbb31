"""Per-video fitting benchmark: speed, landmark NME, expression jitter and overlay frames.

    python benchmarks/fit_videos.py ../shared/data/videos/d0.mp4 ../shared/data/videos/d3.mp4 \
        ../shared/data/videos/d6.mp4 --out experiments/fit_videos [--reuse-dir RUNS]

For each video: fits it with the default FitConfig (or, with --reuse-dir, reads RUNS/<stem>/
coefficients.npz written earlier by `cpem-jax fit`/`retarget` with the same code), then reports
frames per second of the fit, the NME between the fitted model's projected landmarks and the
detector's (normalised by the detected landmarks' box, sqrt(w*h)), mean and 95th percentile,
and the expression jitter (mean absolute frame-to-frame change of the unsmoothed weights), and
saves a strip of overlay frames (crop | fitted render | landmarks: detector green, model red).
"""
import argparse
import json
import os

import cv2
import imageio.v2 as imageio
import numpy as np

from cpem_jax.detect.crop import warp_image
from cpem_jax.estimation import VideoEstimate
from cpem_jax.export.coefficients import load_coefficients, save_coefficients
from cpem_jax.face_model import load_face_model
from cpem_jax.fit.fitter import FitConfig
from cpem_jax.io.frames import open_frames
from cpem_jax.retarget.pipeline import fit_quality
from cpem_jax.retarget.preview import overlay_frames


def with_crops(video: str, estimate: VideoEstimate) -> VideoEstimate:
    """An estimate read from a file, with its crops cut again from the video."""
    size = estimate.crop_size
    crops = np.zeros((estimate.n_frames, size, size, 3), np.uint8)
    rows = {int(i): r for r, i in enumerate(estimate.frame_index)}
    for frame in open_frames(video):
        if frame.index in rows:
            r = rows[frame.index]
            crops[r] = warp_image(frame.image, estimate.crop_affine[r], (size, size))
    return estimate.replace(crops=crops)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reuse-dir", help="folder with <stem>/coefficients.npz (+summary.json)")
    parser.add_argument("--overlay-frames", type=int, default=5)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = load_face_model()
    config = FitConfig()
    rows = []
    for video in args.videos:
        stem = os.path.splitext(os.path.basename(video))[0]
        fps_fit = None
        if args.reuse_dir:
            estimate = with_crops(video, load_coefficients(
                os.path.join(args.reuse_dir, stem, "coefficients.npz")))
            summary = os.path.join(args.reuse_dir, stem, "summary.json")
            if os.path.exists(summary):
                phases = json.load(open(summary)).get("phases", {})
                fps_fit = phases.get("estimate", {}).get("frames_per_second")
        else:
            from cpem_jax.estimation.estimate import default_landmarker
            from cpem_jax.estimation.fitting import fit_video
            estimate = fit_video(video, model, default_landmarker(), config)
            fps_fit = estimate.n_found / estimate.timings["estimate_s"]
            save_coefficients(estimate, os.path.join(args.out, f"{stem}_coefficients"))
        quality = fit_quality(estimate)
        row = {"video": stem, "frames": estimate.n_frames, "with_face": estimate.n_found,
               "fit_fps": None if fps_fit is None else round(float(fps_fit), 2),
               "nme_mean_pct": round(100 * quality["nme_mean"], 2),
               "nme_p95_pct": round(100 * quality["nme_p95"], 2),
               "jitter": round(quality["expression_jitter"], 4)}
        picks = np.linspace(0, estimate.n_frames - 1, args.overlay_frames).round().astype(int)
        strips = list(overlay_frames(estimate, model, indices=picks))
        imageio.imwrite(os.path.join(args.out, f"{stem}_overlay.png"),
                        cv2.resize(np.concatenate(strips, 0), None, fx=0.75, fy=0.75,
                                   interpolation=cv2.INTER_AREA))
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
