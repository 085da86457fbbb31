"""Writing frames as an H.264 MP4 (imageio-ffmpeg): the one video writer of the project.

    write_video("out/overlay.mp4", frames, fps=25.0)          # a whole sequence at once
    with VideoWriter("out/webcam.mp4", fps=30.0, quality=9) as writer:
        for frame in camera:                                  # or frame by frame
            writer.append(frame)

Frames are [H, W, 3] uint8 RGB, all of one size. H.264 in the usual yuv420p pixel format needs
even sides, so an odd width or height is padded by repeating the last column or row (without
this, the encoder refuses the stream and leaves an empty file).
"""
from __future__ import annotations

import os
from typing import Iterable, Optional, Tuple, Union

import imageio.v2 as imageio
import numpy as np

# imageio's quality scale, 0 (smallest file) to 10 (best).
DEFAULT_QUALITY = 7.0


class VideoWriter:
    """Appends frames to an H.264 MP4; a context manager that closes the file on exit.

    Args:
      path: output .mp4 (parent folders are created).
      fps: frames per second, > 0.
      quality: imageio quality, 0 to 10.
    Attributes:
      count: frames appended so far.
    Raises:
      ValueError: a non-positive fps or a quality outside [0, 10].
    """

    def __init__(self, path: Union[str, os.PathLike], fps: float,
                 quality: float = DEFAULT_QUALITY) -> None:
        self.path = os.fspath(path)
        if not fps > 0:
            raise ValueError(f"{self.path}: fps must be > 0, got {fps}; pass the source's frame "
                             "rate.")
        if not 0 <= quality <= 10:
            raise ValueError(f"{self.path}: quality must lie in [0, 10], got {quality}.")
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.count = 0
        self._shape: Optional[Tuple[int, ...]] = None
        self._writer = imageio.get_writer(self.path, fps=float(fps), codec="libx264",
                                          quality=quality, macro_block_size=1)

    def append(self, frame: np.ndarray) -> None:
        """Adds one frame [H, W, 3] uint8 RGB (the size of the first frame).

        Raises:
          ValueError: a frame of another shape or type, naming the fix.
        """
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{self.path}: frame {self.count} is {frame.dtype} {frame.shape}; "
                             "the writer takes [H, W, 3] uint8 RGB (convert with "
                             "np.clip(x * 255, 0, 255).astype(np.uint8)).")
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"{self.path}: frame {self.count} is {frame.shape[1]}x"
                             f"{frame.shape[0]} px, the first was {self._shape[1]}x"
                             f"{self._shape[0]}; resize every frame to one size.")
        pad_rows, pad_cols = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_rows or pad_cols:
            frame = np.pad(frame, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")
        self._writer.append_data(frame)
        self.count += 1

    def close(self) -> None:
        """Finishes the file (safe to call twice)."""
        self._writer.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: Union[str, os.PathLike], frames: Iterable[np.ndarray], fps: float,
                quality: float = DEFAULT_QUALITY) -> int:
    """Writes frames [H, W, 3] uint8 RGB (one size) as an H.264 MP4.

    Args:
      path: output .mp4 (parent folders are created).
      frames: any iterable, consumed once (a generator or a progress bar is fine).
      fps: frames per second, > 0.
      quality: imageio quality, 0 to 10.
    Returns:
      the number of frames written.
    """
    with VideoWriter(path, fps, quality) as writer:
        for frame in frames:
            writer.append(frame)
    return writer.count
