"""MediaPipe's own blendshapes as a peer: its FaceLandmarker (VIDEO mode, face blendshapes on, one
face, every frame) on each video, written as OUT/<video stem>/blendshapes.json in the layout that
`benchmarks/label_check_tracks.py` scores (`frames[].raw.blendshapes` in `ARKIT_NAMES` order).

    python benchmarks/mediapipe_tracks.py --videos ../shared/data/videos/d3.mp4 --out PEER
    python benchmarks/label_check_tracks.py --tracks PEER --name mediapipe_blendshapes \
        --compare label_check_mp.json --compare-front-end mediapipe

MediaPipe names its outputs with ARKit's names and the subject's sides, as ours are (on a wink
of the subject's left eye its eyeBlinkLeft is the high one). `BlendshapeTracker` is also the
speed reference of `benchmarks/live_replay.py`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional

import numpy as np

from cpem_jax.export import ARKIT_NAMES


class BlendshapeTracker:
    """MediaPipe's FaceLandmarker in VIDEO mode with face blendshapes, one face."""

    def __init__(self, task: str):
        from mediapipe.tasks.python import BaseOptions, vision
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=task),
            running_mode=vision.RunningMode.VIDEO, num_faces=1, output_face_blendshapes=True)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._index = {name: k for k, name in enumerate(ARKIT_NAMES)}
        self._last_ms = -1

    def weights(self, frame) -> Optional[np.ndarray]:
        """One `io.frames.Frame` (in time order) -> ARKit weights [52] in `ARKIT_NAMES` order,
        or None when no face is found."""
        import mediapipe as mp
        ms = max(int(round(frame.timestamp_s * 1000)), self._last_ms + 1)  # Must increase.
        self._last_ms = ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB,
                         data=np.ascontiguousarray(frame.image))
        result = self._landmarker.detect_for_video(image, ms)
        if not result.face_blendshapes:
            return None
        row = np.zeros(len(ARKIT_NAMES))
        for category in result.face_blendshapes[0]:
            if category.category_name in self._index:
                row[self._index[category.category_name]] = category.score
        return row

    def close(self) -> None:
        self._landmarker.close()


def track(video: str, task: str) -> dict:
    """Every frame of `video` -> the blendshapes.json object that `label_check_tracks` reads."""
    from cpem_jax.io.frames import open_frames

    frames = []
    tracker, source = BlendshapeTracker(task), open_frames(video)
    try:
        for frame in source:
            row = tracker.weights(frame)
            frames.append({"frame": frame.index, "face_found": row is not None,
                           "raw": {"blendshapes": [] if row is None else
                                   [round(float(v), 4) for v in row]}})
    finally:
        source.close()
        tracker.close()
    return {"generator": "MediaPipe FaceLandmarker blendshapes (benchmarks/mediapipe_tracks.py)",
            "blendshape_names": list(ARKIT_NAMES), "frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for video in args.videos:
        if not os.path.isfile(video):
            sys.exit(f"mediapipe_tracks: no video {video}")
    from cpem_jax.detect.mediapipe_task import TaskFileError, find_task
    try:
        task = find_task()
    except TaskFileError as error:
        sys.exit(f"mediapipe_tracks: {error}")
    for video in args.videos:
        start = time.perf_counter()
        result = track(video, task)
        stem = os.path.splitext(os.path.basename(video))[0]
        os.makedirs(os.path.join(args.out, stem), exist_ok=True)
        with open(os.path.join(args.out, stem, "blendshapes.json"), "w", encoding="utf-8") as f:
            json.dump(result, f)
        found = sum(fr["face_found"] for fr in result["frames"])
        print(f"{stem}: {len(result['frames'])} frames, {found} with a face, "
              f"{time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
