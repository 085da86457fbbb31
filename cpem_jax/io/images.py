"""Reading one image file: the single image reader of the project (estimation and training data).

`read_image(path)` returns `[H, W, 3] uint8 RGB` upright and whole, or raises one clear error:
  * EXIF orientation is honoured (a phone photo stored sideways with Orientation 6 comes out
    upright), gray and 16-bit images become 8-bit RGB, alpha is dropped;
  * a file cut off while copying or downloading is refused by name (`truncated_reason`: a JPEG
    without its end-of-image marker, a PNG without its IEND chunk, a WebP or BMP shorter than its
    header says) instead of being decoded with made-up rows;
  * non-ASCII paths work (the bytes are read by Python and decoded by OpenCV).

`natural_sort_key` orders file names as people number them ('frame2' before 'frame10').
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Smallest image side accepted: the face crop is resized to 224 px, and a face inside an image
# smaller than this cannot be detected or landmarked meaningfully.
DEFAULT_MIN_SIZE = 32
# Keeps 16-bit depth and colour, drops alpha and applies the EXIF orientation (OpenCV ignores the
# orientation only for IMREAD_UNCHANGED).
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR

PathLike = Union[str, os.PathLike]


class FrameSourceError(ValueError):
    """Raised when an input cannot be opened or decoded at all."""


def natural_sort_key(name: str) -> Tuple[List[Union[int, str]], str]:
    """Sort key that orders 'frame2' before 'frame10' (runs of digits compare as numbers, the
    rest case-insensitively; the name itself breaks ties, so the order is total)."""
    parts = re.split(r"(\d+)", name)
    # re.split with one group puts the digit runs at the odd positions, so two keys always
    # compare int with int and str with str.
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(parts)], name


def is_image_path(path: PathLike) -> bool:
    """True when the file name ends with one of IMAGE_EXTENSIONS (case-insensitive)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def to_rgb_uint8(image: np.ndarray, origin: str = "image") -> np.ndarray:
    """Converts a decoded OpenCV image to RGB uint8.

    Args:
      image: [H, W] gray, [H, W, 1] gray, [H, W, 3] BGR or [H, W, 4] BGRA; uint8 or uint16.
      origin: a name for error messages (usually the file path).
    Returns:
      [H, W, 3] uint8 RGB (alpha is dropped, 16-bit values are scaled to 8 bits).
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise FrameSourceError(
            f"{origin}: unsupported pixel type {image.dtype}; convert it to an 8-bit PNG or JPEG.")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise FrameSourceError(
        f"{origin}: unsupported image shape {image.shape}; expected gray, RGB or RGBA.")


def check_image_size(image: np.ndarray, min_size: int, origin: str) -> None:
    """Raises FrameSourceError when `image [H, W, 3]` has a side below `min_size` pixels."""
    height, width = image.shape[:2]
    if min(height, width) < min_size:
        raise FrameSourceError(
            f"{origin}: image is {width}x{height} px, smaller than the {min_size} px minimum; "
            "use a larger image (faces need tens of pixels to be detected).")


# A JPEG marker inside entropy-coded data: 0xFF followed by neither a stuffed 0x00, a fill 0xFF,
# nor a restart marker 0xD0-0xD7.
_JPEG_SEGMENT_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
# JPEG markers without a length field: stuffing, TEM and the restart markers.
_JPEG_STANDALONE = frozenset([0x00, 0x01, *range(0xD0, 0xD8)])
# Markers with a length field are 0xC0-0xFE (SOF, DHT, DQT, SOS, APPn, COM ...).
_JPEG_FIRST_SEGMENT = 0xC0


def _jpeg_truncated(data: bytes) -> Optional[str]:
    """Walks the JPEG segments from SOI; a file that ends before the EOI marker is cut off.
    A marker that is not one (damage, not truncation) stops the walk without a verdict."""
    pos, size = 2, len(data)
    while pos + 2 <= size:
        if data[pos] != 0xFF:  # entropy-coded scan data: jump to the next real marker
            found = _JPEG_SEGMENT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
            continue
        marker = data[pos + 1]
        if marker == 0xD9:
            return None
        if marker == 0xFF:
            pos += 1
        elif marker in _JPEG_STANDALONE:
            pos += 2
        elif marker < _JPEG_FIRST_SEGMENT:
            return None
        elif pos + 4 > size:
            break
        else:
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            if length < 2:
                return None
            pos += 2 + length
    return "JPEG without its end-of-image marker (FFD9)"


def _png_truncated(data: bytes) -> Optional[str]:
    """Walks the PNG chunks after the signature; a file that ends before IEND is cut off.
    A chunk type that is not four letters (damage, not truncation) stops without a verdict."""
    pos, size = 8, len(data)
    while pos + 8 <= size:
        chunk_type = data[pos + 4:pos + 8]
        if chunk_type == b"IEND":
            return None
        if not chunk_type.isalpha():
            return None
        pos += 12 + int.from_bytes(data[pos:pos + 4], "big")  # length, type, data, CRC
    return "PNG without its IEND chunk"


def _declared_size_truncated(data: bytes, kind: str, declared: int) -> Optional[str]:
    if len(data) < declared:
        return f"{kind} of {len(data)} bytes, its header announces {declared}"
    return None


def truncated_reason(data: bytes) -> Optional[str]:
    """Why an encoded JPEG, PNG, WebP or BMP file is cut short, or None when it ends where its
    format says it does (or is of another format, or too damaged to tell: the decoder judges).

    Args:
      data: the file's bytes.
    Returns:
      a short reason, e.g. "JPEG without its end-of-image marker (FFD9)", or None.
    """
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_truncated(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_truncated(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _declared_size_truncated(data, "WebP", 8 + int.from_bytes(data[4:8], "little"))
    if data[:2] == b"BM" and len(data) >= 6:
        return _declared_size_truncated(data, "BMP", int.from_bytes(data[2:6], "little"))
    return None


def read_image(path: PathLike, min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
    """Reads one image file, upright (EXIF orientation applied).

    Args:
      path: image file path (any OpenCV-readable format; non-ASCII paths are fine).
      min_size: smallest accepted side in pixels.
    Returns:
      [H, W, 3] uint8 RGB.
    Raises:
      FileNotFoundError: no such file.
      FrameSourceError: truncated, not a readable image, or smaller than `min_size`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path!r}; check the path.")
    with open(path, "rb") as f:
        data = f.read()
    reason = truncated_reason(data)
    if reason is not None:
        raise FrameSourceError(
            f"{path}: truncated image ({reason}); the file was cut off while copying or "
            "downloading: copy it again or remove it.")
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), _DECODE_FLAGS) if data else None
    if decoded is None:
        raise FrameSourceError(
            f"{path}: not a readable image (corrupt, truncated or unsupported format); "
            f"re-save it as PNG or JPEG.")
    image = to_rgb_uint8(decoded, origin=path)
    check_image_size(image, min_size, path)
    return image
