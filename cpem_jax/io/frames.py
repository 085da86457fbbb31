"""Frame sources: a video file, a folder of images, a single image or a webcam.

Every source yields `Frame(index, timestamp_s, image)` tuples, `image [H, W, 3] uint8 RGB`, and
exposes `fps` (frames per second used for the timestamps). `open_frames(spec)` picks the source
from the spec: an `int` (or a string of digits) is a webcam index, a folder is an image folder, a
file with an image extension is a single image, any other file is a video.

Damaged input keeps every frame that could be read:
  * a video that stops decoding before the frame count its container announces (a truncated or
    damaged file) yields the frames before the damage, then warns (`TruncatedInputWarning`); the
    last decoded frame is dropped there, since a decoder fills a partial frame with guesses;
  * an unreadable or truncated image inside a folder is skipped with a warning; the other images
    keep their folder positions as frame indices, so timestamps stay aligned;
  * a file that is not a readable video or image at all raises `FrameSourceError`.

Timestamps are `index / fps` for files (constant frame rate is assumed) and seconds since the
first frame for a webcam. Image files are read by `cpem_jax.io.images.read_image` (EXIF
orientation applied, truncated files refused).
"""
from __future__ import annotations

import abc
import os
import time
import warnings
from typing import Iterator, List, NamedTuple, Optional, Union

import cv2
import numpy as np

from cpem_jax.io.images import (DEFAULT_MIN_SIZE, IMAGE_EXTENSIONS, FrameSourceError,
                                check_image_size, is_image_path, natural_sort_key, read_image,
                                to_rgb_uint8)

# Frame rate given to image folders and single images when the caller names none.
DEFAULT_IMAGE_FPS = 25.0
# Frame rate assumed for a webcam that does not report one.
DEFAULT_WEBCAM_FPS = 30.0

SourceSpec = Union[str, os.PathLike, int]


class TruncatedInputWarning(UserWarning):
    """Warned when a source ends early or some of its frames could not be read."""


class Frame(NamedTuple):
    """One decoded frame.

    Attributes:
      index: frame number in the source (0-based; for folders, the file's sorted position).
      timestamp_s: time of the frame in seconds.
      image: [H, W, 3] uint8 RGB.
    """
    index: int
    timestamp_s: float
    image: np.ndarray


class FrameSource(abc.ABC):
    """An iterable of `Frame`s with a frame rate.

    Attributes:
      name: where the frames come from (path or 'webcam:N').
      fps: frames per second used for timestamps.
      expected_count: frames the source announces (None when unknown, e.g. a webcam).
      decoded_count: frames yielded so far.
    """

    name: str
    fps: float
    expected_count: Optional[int]

    def __init__(self) -> None:
        self.decoded_count = 0

    @abc.abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yields frames; subclasses implement decoding here."""

    def __iter__(self) -> Iterator[Frame]:
        self.decoded_count = 0
        for frame in self._frames():
            self.decoded_count += 1
            yield frame

    def close(self) -> None:
        """Releases the underlying file or device."""

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, fps={self.fps:g}, "
                f"expected_count={self.expected_count})")


class VideoFileSource(FrameSource):
    """Frames of a video file decoded with OpenCV (FFmpeg backend).

    Args:
      path: video file (mp4, avi, mov, mkv, webm, ...).
      max_frames: stop after this many frames (None: all).
      fps: override the container's frame rate (None: use it).
      min_size: smallest accepted frame side in pixels.
    Raises:
      FileNotFoundError: no such file.
      FrameSourceError: the file is not a readable video, or no frame decodes.
    """

    def __init__(self, path: Union[str, os.PathLike], max_frames: Optional[int] = None,
                 fps: Optional[float] = None, min_size: int = DEFAULT_MIN_SIZE) -> None:
        super().__init__()
        self.name = os.fspath(path)
        if not os.path.isfile(self.name):
            raise FileNotFoundError(f"video not found: {self.name!r}; check the path.")
        self.max_frames = max_frames
        self.min_size = min_size
        self._capture = cv2.VideoCapture(self.name)
        if not self._capture.isOpened():
            self._capture.release()
            raise FrameSourceError(
                f"{self.name}: cannot be opened as a video. It is not a video, uses an "
                "unsupported codec, or is truncated (an MP4 whose index, the 'moov' atom, sits at "
                "the end loses it when cut off). Re-encode it, e.g. "
                "`ffmpeg -i in.xxx -c:v libx264 -movflags +faststart out.mp4`.")
        container_fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        if fps is not None:
            self.fps = float(fps)
        elif container_fps > 0 and np.isfinite(container_fps):
            self.fps = container_fps
        else:
            warnings.warn(f"{self.name}: the container reports no frame rate; assuming "
                          f"{DEFAULT_IMAGE_FPS:g} fps (pass fps= to override).",
                          TruncatedInputWarning, stacklevel=2)
            self.fps = DEFAULT_IMAGE_FPS
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.expected_count = count if count > 0 else None
        self._started = False

    def _frames(self) -> Iterator[Frame]:
        if self._started:
            # Re-iteration: rewind (a fresh capture is the portable way to restart decoding).
            self._capture.release()
            self._capture = cv2.VideoCapture(self.name)
        self._started = True
        # One frame of look-ahead: when the stream ends before the announced count, the last
        # decoded frame may be partial (the decoder conceals missing data), so it is held back.
        wanted = self.expected_count
        if self.max_frames is not None and wanted is not None:
            wanted = min(wanted, self.max_frames)
        pending: Optional[Frame] = None
        read = 0
        while self.max_frames is None or read < self.max_frames:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                break
            image = to_rgb_uint8(bgr, origin=self.name)
            if read == 0:
                check_image_size(image, self.min_size, self.name)
            if pending is not None:
                yield pending
            pending = Frame(read, read / self.fps, image)
            read += 1
        truncated = wanted is not None and read < wanted
        if pending is not None and not truncated:
            yield pending
        kept = read - 1 if truncated else read
        if kept <= 0:
            raise FrameSourceError(
                f"{self.name}: opened as a video but no complete frame could be decoded "
                "(damaged, truncated or unsupported stream); re-encode it with ffmpeg.")
        if truncated:
            warnings.warn(
                f"{self.name}: decoded {read} of the {wanted} frames the container announces; "
                f"the file is truncated or damaged. The last decoded frame may be partial and "
                f"was dropped; the {kept} frames before the damage were kept.",
                TruncatedInputWarning, stacklevel=3)

    def close(self) -> None:
        self._capture.release()


class ImageFolderSource(FrameSource):
    """Frames from the images of one folder, in natural sort order ('2.png' before '10.png').

    Args:
      folder: directory holding image files (other files are ignored).
      fps: frame rate for timestamps.
      max_frames: stop after this many images (None: all).
      min_size: smallest accepted image side in pixels.
    Raises:
      FileNotFoundError: no such folder.
      FrameSourceError: the folder holds no image file, or no image is readable.
    """

    def __init__(self, folder: Union[str, os.PathLike], fps: float = DEFAULT_IMAGE_FPS,
                 max_frames: Optional[int] = None, min_size: int = DEFAULT_MIN_SIZE) -> None:
        super().__init__()
        self.name = os.fspath(folder)
        if not os.path.isdir(self.name):
            raise FileNotFoundError(f"image folder not found: {self.name!r}; check the path.")
        names = sorted((n for n in os.listdir(self.name) if is_image_path(n)),
                       key=natural_sort_key)
        if not names:
            raise FrameSourceError(
                f"{self.name}: no image files (expected one of {', '.join(IMAGE_EXTENSIONS)}).")
        self.paths = [os.path.join(self.name, n) for n in names][:max_frames]
        self.fps = float(fps)
        self.min_size = min_size
        self.expected_count = len(self.paths)
        self.skipped: List[str] = []

    def _frames(self) -> Iterator[Frame]:
        self.skipped = []
        for index, path in enumerate(self.paths):
            try:
                image = read_image(path, self.min_size)
            except FrameSourceError as error:
                self.skipped.append(path)
                warnings.warn(f"skipping frame {index}: {error}", TruncatedInputWarning,
                              stacklevel=3)
                continue
            yield Frame(index, index / self.fps, image)
        if len(self.skipped) == len(self.paths):
            raise FrameSourceError(f"{self.name}: none of its {len(self.paths)} images is "
                                   "readable; check the files.")


class SingleImageSource(FrameSource):
    """One image as a one-frame source (timestamp 0).

    Raises:
      FileNotFoundError / FrameSourceError: as `read_image`, when the source is created.
    """

    def __init__(self, path: Union[str, os.PathLike], fps: float = DEFAULT_IMAGE_FPS,
                 min_size: int = DEFAULT_MIN_SIZE) -> None:
        super().__init__()
        self.name = os.fspath(path)
        self.fps = float(fps)
        self.expected_count = 1
        self._image = read_image(self.name, min_size)

    def _frames(self) -> Iterator[Frame]:
        yield Frame(0, 0.0, self._image)


class WebcamSource(FrameSource):
    """Live frames from a camera through OpenCV.

    Args:
      index: camera index (0 is the default camera).
      max_frames: stop after this many frames (None: until the camera stops or `close()`).
      fps: frame rate to report (None: the camera's, else DEFAULT_WEBCAM_FPS).
    Raises:
      FrameSourceError: the camera cannot be opened.
    """

    def __init__(self, index: int = 0, max_frames: Optional[int] = None,
                 fps: Optional[float] = None, min_size: int = DEFAULT_MIN_SIZE) -> None:
        super().__init__()
        self.name = f"webcam:{index}"
        self.max_frames = max_frames
        self.min_size = min_size
        self.expected_count = None
        self._capture = cv2.VideoCapture(int(index))
        if not self._capture.isOpened():
            self._capture.release()
            raise FrameSourceError(
                f"webcam {index} cannot be opened; check that a camera is connected, that this "
                "process may use it (e.g. /dev/video*), or try another index.")
        reported = float(self._capture.get(cv2.CAP_PROP_FPS))
        self.fps = float(fps) if fps else (reported if reported > 0 else DEFAULT_WEBCAM_FPS)
        self._closed = False

    def _frames(self) -> Iterator[Frame]:
        index = 0
        start = None
        while not self._closed and (self.max_frames is None or index < self.max_frames):
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                warnings.warn(f"{self.name}: the camera stopped delivering frames after "
                              f"{index} frames.", TruncatedInputWarning, stacklevel=3)
                break
            now = time.monotonic()
            start = now if start is None else start
            image = to_rgb_uint8(bgr, origin=self.name)
            if index == 0:
                check_image_size(image, self.min_size, self.name)
            yield Frame(index, now - start, image)
            index += 1

    def close(self) -> None:
        self._closed = True
        self._capture.release()


def open_frames(spec: SourceSpec, fps: Optional[float] = None, max_frames: Optional[int] = None,
                min_size: int = DEFAULT_MIN_SIZE) -> FrameSource:
    """Opens the frame source a spec names.

    Args:
      spec: webcam index (int or digit string), image folder, image file, or video file.
      fps: frame rate override (for images: the rate used for timestamps).
      max_frames: stop after this many frames (None: all).
      min_size: smallest accepted image side in pixels.
    Returns:
      A FrameSource; iterate it for `Frame(index, timestamp_s, image [H, W, 3] uint8 RGB)`.
    """
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.isdigit()
                                               and not os.path.exists(spec)):
        return WebcamSource(int(spec), max_frames=max_frames, fps=fps, min_size=min_size)
    path = os.fspath(spec)
    if os.path.isdir(path):
        return ImageFolderSource(path, fps=fps or DEFAULT_IMAGE_FPS, max_frames=max_frames,
                                 min_size=min_size)
    if not os.path.exists(path):
        raise FileNotFoundError(f"input not found: {path!r}; give a video, an image, a folder "
                                "of images or a webcam index.")
    if is_image_path(path):
        return SingleImageSource(path, fps=fps or DEFAULT_IMAGE_FPS, min_size=min_size)
    return VideoFileSource(path, max_frames=max_frames, fps=fps, min_size=min_size)
