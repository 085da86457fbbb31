"""Reading frames from videos, image folders, single images and webcams."""
from cpem_jax.io.frames import (
    DEFAULT_IMAGE_FPS,
    DEFAULT_MIN_SIZE,
    Frame,
    FrameSource,
    FrameSourceError,
    ImageFolderSource,
    SingleImageSource,
    TruncatedInputWarning,
    VideoFileSource,
    WebcamSource,
    open_frames,
    read_image,
)

__all__ = [
    "DEFAULT_IMAGE_FPS", "DEFAULT_MIN_SIZE", "Frame", "FrameSource", "FrameSourceError",
    "ImageFolderSource", "SingleImageSource", "TruncatedInputWarning", "VideoFileSource",
    "WebcamSource", "open_frames", "read_image",
]
