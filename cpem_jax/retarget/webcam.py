"""`--webcam N`: capture a camera to a video file, which is then processed like any video.

The fit needs the whole sequence (it detects and tracks first, then fits one identity over every
frame), so a live camera is recorded first: until `max_frames` frames or Ctrl-C. The recording is
kept in the output folder, so a run can be repeated on it.
"""
from __future__ import annotations

import logging
from typing import Optional

import imageio.v2 as imageio
from tqdm import tqdm

from cpem_jax.io.frames import open_frames


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
    count = 0
    logging.info("recording webcam %d at %.1f fps to %s; press Ctrl-C to stop", index,
                 source.fps, path)
    with imageio.get_writer(path, fps=source.fps, codec="libx264", quality=9,
                            macro_block_size=1) as writer:
        bar = tqdm(unit="frame", desc="recording", total=max_frames, disable=not progress)
        try:
            for frame in source:
                writer.append_data(frame.image)
                count += 1
                bar.update()
        except KeyboardInterrupt:
            logging.info("recording stopped after %d frames", count)
        finally:
            bar.close()
            source.close()
    if count == 0:
        raise RuntimeError(f"webcam {index} delivered no frame; check the camera")
    return count
