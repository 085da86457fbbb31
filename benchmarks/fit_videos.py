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
import time

import cv2
import imageio.v2 as imageio
import numpy as np

from cpem_jax.detect.crop import warp_image
from cpem_jax.evaluation.landmarks import box_size, landmark_box, nme
from cpem_jax.evaluation.temporal import mean_abs_change
from cpem_jax.export.coefficients import CoefficientTrack
from cpem_jax.face_model import load_face_model
from cpem_jax.fit.fitter import FitConfig
from cpem_jax.fit.overlay import overlay_frames
from cpem_jax.io.frames import open_frames


def crops_from_track(video: str, track: CoefficientTrack, indices) -> np.ndarray:
    wanted = set(int(i) for i in indices)
    size = track.crop_size
    crops = np.zeros((len(track.frame_index), size, size, 3), np.uint8)
    for frame in open_frames(video):
        if frame.index in wanted and track.face_found[frame.index]:
            crops[frame.index] = warp_image(frame.image, track.crop_affine[frame.index],
                                            (size, size))
    return crops


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
            track = CoefficientTrack.load(os.path.join(args.reuse_dir, stem, "coefficients.npz"))
            summary = os.path.join(args.reuse_dir, stem, "summary.json")
            if os.path.exists(summary):
                phases = json.load(open(summary)).get("phases", {})
                fps_fit = phases.get("estimate", {}).get("frames_per_second")
        else:
            from cpem_jax.detect.dlib_landmarker import DlibLandmarker
            from cpem_jax.fit.video import fit_video
            t0 = time.perf_counter()
            result = fit_video(video, model, DlibLandmarker(), config)
            track = result.track
            fps_fit = track.face_found.sum() / result.timings["fit_s"]
            track.save(os.path.join(args.out, f"{stem}_coefficients"))
        found = track.face_found
        errors = nme(track.landmarks_fitted, track.landmarks_detected,
                     box_size(landmark_box(track.landmarks_detected)))
        row = {"video": stem, "frames": int(len(found)), "with_face": int(found.sum()),
               "fit_fps": None if fps_fit is None else round(float(fps_fit), 2),
               "nme_mean_pct": round(100 * float(np.nanmean(errors)), 2),
               "nme_p95_pct": round(100 * float(np.nanpercentile(errors, 95)), 2),
               "jitter": round(mean_abs_change(track.expression, found), 4)}
        picks = np.linspace(0, len(found) - 1, args.overlay_frames).round().astype(int)
        crops = crops_from_track(video, track, picks)
        strips = list(overlay_frames(track, crops, model, config, indices=picks))
        imageio.imwrite(os.path.join(args.out, f"{stem}_overlay.png"),
                        cv2.resize(np.concatenate(strips, 0), None, fx=0.75, fy=0.75,
                                   interpolation=cv2.INTER_AREA))
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
