"""Detection + landmark cost per frame on the demo videos, per front end and tracker setting.

Frames are decoded into memory first (decoding is timed separately), then each setting follows
one face through them, both front ends on the same frames in one run (`--backends`):
- dlib: HOG detection at full resolution or downscaled, every frame or every k-th (the other
  frames start the 68-point shape predictor from a box derived from the previous landmarks);
- mediapipe: `MediaPipeLandmarker.detect` (BlazeFace, the 478-point mesh, and the CNN second
  detector where the mesh doubts a box) every frame or every k-th (the other frames run the mesh
  from the previous frame's points; what offline and, since experiments/live's "Live on the
  offline front end", live capture run), and MediaPipe's own VIDEO task (`detect_video`, one
  mesh pass per frame, the peer).
Accuracy of a setting is the mean distance of its 68 points to those of the same front end's
reference setting (its first: detection on every frame), in pixels and in % of the face box
width; it measures what a setting changes, not accuracy against ground truth.

Run (figures go to experiments/detection/README.md):
  python3 benchmarks/detect_bench.py --frames 100
  python3 benchmarks/detect_bench.py --videos /path/a.mp4 /path/b.mp4 --frames 50 \
      --backends dlib mediapipe
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
    FaceObservation,
    FaceTracker,
    crop_face,
    observe_image,
    square_from_landmarks,
)
from cpem_jax.io import open_frames  # noqa: E402

# backend -> (label, detect_max_side, redetect_every); the first is the accuracy reference.
# redetect_every None: MediaPipe's VIDEO task instead of the project's tracker.
SETTINGS = {
    "dlib": (
        ("full-res detect, every frame", None, 1),
        ("detect at 320 px, every frame", 320, 1),
        ("detect at 256 px, every frame", 256, 1),
        ("detect at 320 px, every 5th frame", 320, 5),
        ("detect at 320 px, every 10th frame", 320, 10),
    ),
    "mediapipe": (
        ("detect, every frame", None, 1),
        ("detect every 5th frame", None, 5),
        ("detect every 10th frame", None, 10),
        ("MediaPipe VIDEO task", None, None),
    ),
}


def default_videos() -> list:
    shared = Path(os.environ.get("CPEM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    return sorted((shared / "data" / "videos").glob("*.mp4"))


def make_landmarker(backend: str, max_side=None):
    """The front end of a setting (MediaPipe's: built once and shared by its settings)."""
    if backend == "dlib":
        return DlibLandmarker(detect_max_side=max_side)
    from cpem_jax.detect.backends import make_landmarker as make  # noqa: PLC0415
    return make(backend)


class _VideoTask:
    """MediaPipe's VIDEO task as a tracker: `update` -> the first face as a FaceObservation."""

    def __init__(self, landmarker):
        self.landmarker, self.detector_calls = landmarker, 0
        landmarker.reset_video()

    def update(self, index, timestamp, image):
        found = self.landmarker.detect_video(image, timestamp)
        if len(found) == 0:
            return FaceObservation.missing(index, timestamp)
        return FaceObservation(index, timestamp, True, found.boxes[0], found.landmarks[0],
                               float("nan"))


def run_setting(frames, landmarker, every):
    """Follows the face through `frames` (`every` None: MediaPipe's VIDEO task).

    Returns:
      (wall ms [T], process CPU ms [T], observations, detector calls or None). CPU time is the
      steadier figure on a shared machine (dlib runs on one thread; MediaPipe's models may use
      more, so their CPU time can exceed the wall time).
    """
    tracker = (_VideoTask(landmarker) if every is None
               else FaceTracker(landmarker, redetect_every=every))
    wall, cpu, observations = [], [], []
    for index, timestamp, image in frames:
        start, start_cpu = time.perf_counter(), time.process_time()
        observations.append(tracker.update(index, timestamp, image))
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
    return (np.array(wall), np.array(cpu), observations,
            None if every is None else tracker.detector_calls)


def landmark_gap(observations, reference):
    """Mean landmark distance (px, % of box width) over frames found by both."""
    pixels, relative = [], []
    for obs, ref in zip(observations, reference):
        if obs.found and ref.found:
            gap = np.linalg.norm(obs.landmarks - ref.landmarks, axis=-1).mean()
            pixels.append(gap)
            relative.append(100 * gap / (ref.box[2] - ref.box[0]))
    return (float(np.mean(pixels)), float(np.mean(relative))) if pixels else (np.nan, np.nan)


def component_costs(frames, landmarker) -> tuple:
    """CPU ms per frame of the landmark model alone and of a 224 px crop (first face box)."""
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
    parser.add_argument("--backends", nargs="+", choices=tuple(SETTINGS), default=["dlib"],
                        help="front ends to time, one after the other on the same frames")
    args = parser.parse_args()
    videos = args.videos or default_videos()
    if not videos:
        sys.exit("no videos: pass --videos or set CPEM_SHARED to the shared data folder.")
    print("| video | frames (WxH) | front end | setting | CPU ms/frame mean | CPU ms/frame p90 | "
          "wall ms/frame mean | detector calls | found | landmark gap px (% box) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    shared = {b: make_landmarker(b) for b in args.backends if b != "dlib"}
    for video in videos:
        start = time.perf_counter()
        frames = list(open_frames(video, max_frames=args.frames))
        decode_ms = 1000 * (time.perf_counter() - start) / len(frames)
        height, width = frames[0].image.shape[:2]
        name = f"| {Path(video).name} | {len(frames)} ({width}x{height}) |"
        for backend in args.backends:
            reference = None
            for label, max_side, every in SETTINGS[backend]:
                landmarker = shared.get(backend) or make_landmarker(backend, max_side)
                wall, cpu, observations, calls = run_setting(frames, landmarker, every)
                reference = reference or observations
                gap_px, gap_rel = landmark_gap(observations, reference)
                found = sum(o.found for o in observations)
                print(f"{name} {backend} | {label} | {cpu.mean():.1f} | "
                      f"{np.percentile(cpu, 90):.1f} | {wall.mean():.1f} | "
                      f"{'-' if calls is None else calls} | {found}/{len(frames)} | "
                      f"{gap_px:.2f} ({gap_rel:.2f}%) |", flush=True)
            model_ms, crop_ms = component_costs(frames, shared.get(backend) or DlibLandmarker())
            model = "shape predictor" if backend == "dlib" else "mesh model (from a box)"
            print(f"| {Path(video).name} | | {backend} | {model} alone | {model_ms:.1f} "
                  f"| | | | | |")
        print(f"| {Path(video).name} | | | 224 px crop (crop_face) | {crop_ms:.1f} | | | | | |")
        print(f"| {Path(video).name} | | | decoding (OpenCV), wall | | | {decode_ms:.1f} | | | |")


if __name__ == "__main__":
    main()
