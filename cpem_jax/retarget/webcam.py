"""`--webcam N`: capture a camera to a video file, which is then processed like any video.

The fit needs the whole sequence (it detects and tracks first, then fits one identity over every
frame), so a live camera is recorded first: until `max_frames` frames or Ctrl-C. The recording is
kept in the output folder, so a run can be repeated on it.
"""
from __future__ import annotations

import logging
from typing import Optional

from tqdm import tqdm

from cpem_jax.io.frames import open_frames
from cpem_jax.io.video_writer import VideoWriter

# The recording is processed again later, so it is kept close to the camera's quality.
RECORDING_QUALITY = 9.0


def capture_webcam(index: int, path: str, max_frames: Optional[int] = None,
                   progress: bool = True) -> int:
    """Records camera `index` to the MP4 `path` (H.264 at the camera's frame rate).

    Args:
      index: camera index (0 is the default camera).
      path: output .mp4.
      max_frames: stop after this many frames; None: until Ctrl-C or the camera stops.
      progress: show a frame counter.
    Returns:
      the number of frames recorded.
    Raises:
      FrameSourceError: the camera cannot be opened.
      RuntimeError: no frame was recorded.
    """
    source = open_frames(int(index), max_frames=max_frames)
    logging.info("recording webcam %d at %.1f fps to %s; press Ctrl-C to stop", index,
                 source.fps, path)
    with VideoWriter(path, fps=source.fps, quality=RECORDING_QUALITY) as writer:
        bar = tqdm(unit="frame", desc="recording", total=max_frames, disable=not progress)
        try:
            for frame in source:
                writer.append(frame.image)
                bar.update()
        except KeyboardInterrupt:
            logging.info("recording stopped after %d frames", writer.count)
        finally:
            bar.close()
            source.close()
    if writer.count == 0:
        raise RuntimeError(f"webcam {index} delivered no frame; check the camera")
    return writer.count
