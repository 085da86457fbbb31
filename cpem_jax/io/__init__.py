"""Files in and out: images (`images`), frames of videos, image folders and webcams (`frames`),
and the H.264 MP4 writer (`video_writer`)."""
from cpem_jax.io.frames import (
    DEFAULT_IMAGE_FPS,
    Frame,
    FrameSource,
    ImageFolderSource,
    SingleImageSource,
    TruncatedInputWarning,
    VideoFileSource,
    WebcamSource,
    open_frames,
)
from cpem_jax.io.images import (
    DEFAULT_MIN_SIZE,
    FrameSourceError,
    natural_sort_key,
    read_image,
    truncated_reason,
)
from cpem_jax.io.video_writer import VideoWriter, write_video

__all__ = [
    "DEFAULT_IMAGE_FPS", "DEFAULT_MIN_SIZE", "Frame", "FrameSource", "FrameSourceError",
    "ImageFolderSource", "SingleImageSource", "TruncatedInputWarning", "VideoFileSource",
    "WebcamSource", "open_frames", "read_image", "natural_sort_key", "truncated_reason",
    "VideoWriter", "write_video",
]
