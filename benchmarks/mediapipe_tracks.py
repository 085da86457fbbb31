"""MediaPipe's own blendshapes as a peer: its FaceLandmarker (VIDEO mode, face blendshapes on, one
face, every frame) on each video, written as OUT/<video stem>/blendshapes.json in the layout that
`benchmarks/label_check_tracks.py` scores (`frames[].raw.blendshapes` in `ARKIT_NAMES` order).

    python benchmarks/mediapipe_tracks.py --videos ../shared/data/videos/d3.mp4 --out PEER
    python benchmarks/label_check_tracks.py --tracks PEER --name mediapipe_blendshapes \
        --compare label_check_mp.json --compare-front-end mediapipe

MediaPipe names its outputs with ARKit's names; `--swap-sides` exchanges every Left/Right pair
(for a model whose sides are the image's rather than the subject's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from cpem_jax.export import ARKIT_NAMES


def swapped_names():
    """index i -> the index of the same unit on the other side (itself when unsided)."""
    flip = lambda n: (n.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right"))
    return [ARKIT_NAMES.index(flip(n)) for n in ARKIT_NAMES]


def track(video: str, task: str, swap: bool) -> dict:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from cpem_jax.io.frames import open_frames

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=task),
        running_mode=vision.RunningMode.VIDEO, num_faces=1, output_face_blendshapes=True)
    index = {name: k for k, name in enumerate(ARKIT_NAMES)}
    order = swapped_names() if swap else list(range(len(ARKIT_NAMES)))
    frames, last_ms = [], -1
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        source = open_frames(video)
        try:
            for frame in source:
                ms = max(int(round(frame.timestamp_s * 1000)), last_ms + 1)
                last_ms = ms
                image = mp.Image(image_format=mp.ImageFormat.SRGB,
                                 data=np.ascontiguousarray(frame.image))
                result = landmarker.detect_for_video(image, ms)
                row = np.zeros(len(ARKIT_NAMES))
                found = bool(result.face_blendshapes)
                if found:
                    for category in result.face_blendshapes[0]:
                        if category.category_name in index:
                            row[index[category.category_name]] = category.score
                    row = row[order]
                frames.append({"frame": frame.index, "face_found": found,
                               "raw": {"blendshapes": [round(float(v), 4) for v in row]}})
        finally:
            source.close()
    return {"generator": "MediaPipe FaceLandmarker blendshapes (benchmarks/mediapipe_tracks.py)",
            "swap_sides": swap, "blendshape_names": list(ARKIT_NAMES), "frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--swap-sides", action="store_true")
    args = parser.parse_args()
    from cpem_jax.detect.mediapipe_task import TaskFileError, find_task
    try:
        task = find_task()
    except TaskFileError as error:
        sys.exit(f"mediapipe_tracks: {error}")
    for video in args.videos:
        if not os.path.isfile(video):
            sys.exit(f"mediapipe_tracks: no video {video}")
    for video in args.videos:
        start = time.perf_counter()
        result = track(video, task, args.swap_sides)
        stem = os.path.splitext(os.path.basename(video))[0]
        os.makedirs(os.path.join(args.out, stem), exist_ok=True)
        with open(os.path.join(args.out, stem, "blendshapes.json"), "w", encoding="utf-8") as f:
            json.dump(result, f)
        found = sum(fr["face_found"] for fr in result["frames"])
        print(f"{stem}: {len(result['frames'])} frames, {found} with a face, "
              f"{time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
