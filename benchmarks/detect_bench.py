"""Detection + 68-landmark cost per frame on the demo videos, for several tracker settings.

Frames are decoded into memory first (decoding is timed separately), then each setting follows
one face through them. Accuracy of a setting is the mean landmark distance to the reference
setting (full-resolution detection on every frame), in pixels and in % of the face box width.

Run (figures go to experiments/detection/README.md):
  python3 benchmarks/detect_bench.py --frames 100
  python3 benchmarks/detect_bench.py --videos /path/a.mp4 /path/b.mp4 --frames 50
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cpem_jax.detect import (  # noqa: E402
    DlibLandmarker,
    FaceTracker,
    crop_face,
    observe_image,
    square_from_landmarks,
)
from cpem_jax.io import open_frames  # noqa: E402

# (label, detect_max_side, redetect_every); the first is the accuracy reference.
SETTINGS = (
    ("full-res detect, every frame", None, 1),
    ("detect at 320 px, every frame", 320, 1),
    ("detect at 256 px, every frame", 256, 1),
    ("detect at 320 px, every 5th frame", 320, 5),
    ("detect at 320 px, every 10th frame", 320, 10),
)


def default_videos() -> list:
    shared = Path(os.environ.get("CPEM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    return sorted((shared / "data" / "videos").glob("*.mp4"))


def run_setting(frames, max_side, every):
    """Follows the face through `frames`.

    Returns:
      (wall ms [T], process CPU ms [T], observations, detector calls). CPU time is the steadier
      figure on a shared machine; dlib runs on one thread, so the two agree on an idle one.
    """
    tracker = FaceTracker(DlibLandmarker(detect_max_side=max_side), redetect_every=every)
    wall, cpu, observations = [], [], []
    for index, timestamp, image in frames:
        start, start_cpu = time.perf_counter(), time.process_time()
        observations.append(tracker.update(index, timestamp, image))
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
    return np.array(wall), np.array(cpu), observations, tracker.detector_calls


def landmark_gap(observations, reference):
    """Mean landmark distance (px, % of box width) over frames found by both."""
    pixels, relative = [], []
    for obs, ref in zip(observations, reference):
        if obs.found and ref.found:
            gap = np.linalg.norm(obs.landmarks - ref.landmarks, axis=-1).mean()
            pixels.append(gap)
            relative.append(100 * gap / (ref.box[2] - ref.box[0]))
    return (float(np.mean(pixels)), float(np.mean(relative))) if pixels else (np.nan, np.nan)


def component_costs(frames) -> tuple:
    """CPU ms per frame of the shape predictor alone and of a 224 px crop (first face box)."""
    landmarker = DlibLandmarker()
    first = observe_image(frames[0].image, landmarker)
    if not first.found:
        return np.nan, np.nan
    start = time.process_time()
    for frame in frames:
        landmarker.landmarks_in_boxes(frame.image, first.box[None])
    predictor_ms = 1000 * (time.process_time() - start) / len(frames)
    square = square_from_landmarks(first.landmarks)
    start = time.process_time()
    for frame in frames:
        crop_face(frame.image, square, first.landmarks)
    crop_ms = 1000 * (time.process_time() - start) / len(frames)
    return predictor_ms, crop_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="*", default=None, help="video files (default: the "
                        "demo videos in $CPEM_SHARED/data/videos)")
    parser.add_argument("--frames", type=int, default=100, help="first N frames of each video")
    args = parser.parse_args()
    videos = args.videos or default_videos()
    if not videos:
        sys.exit("no videos: pass --videos or set CPEM_SHARED to the shared data folder.")
    print("| video | frames (WxH) | setting | CPU ms/frame mean | CPU ms/frame p90 | wall ms/frame "
          "mean | detector calls | found | landmark gap px (% box) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for video in videos:
        start = time.perf_counter()
        frames = list(open_frames(video, max_frames=args.frames))
        decode_ms = 1000 * (time.perf_counter() - start) / len(frames)
        height, width = frames[0].image.shape[:2]
        reference = None
        for label, max_side, every in SETTINGS:
            wall, cpu, observations, calls = run_setting(frames, max_side, every)
            reference = reference or observations
            gap_px, gap_rel = landmark_gap(observations, reference)
            found = sum(o.found for o in observations)
            print(f"| {Path(video).name} | {len(frames)} ({width}x{height}) | {label} | "
                  f"{cpu.mean():.1f} | {np.percentile(cpu, 90):.1f} | {wall.mean():.1f} | "
                  f"{calls} | "
                  f"{found}/{len(frames)} | {gap_px:.2f} ({gap_rel:.2f}%) |")
        predictor_ms, crop_ms = component_costs(frames)
        print(f"| {Path(video).name} | | decoding (OpenCV), wall | | | {decode_ms:.1f} | | | |")
        print(f"| {Path(video).name} | | shape predictor alone | {predictor_ms:.1f} | | | | | |")
        print(f"| {Path(video).name} | | 224 px crop (crop_face) | {crop_ms:.1f} | | | | | |")


if __name__ == "__main__":
    main()
