"""Tests for cpem_jax.io (frames, images, video writer) on small files synthesised in tmp_path."""
import os
import warnings

import cv2
import numpy as np
import pytest

from cpem_jax.io import (
    FrameSourceError,
    ImageFolderSource,
    SingleImageSource,
    TruncatedInputWarning,
    VideoFileSource,
    VideoWriter,
    WebcamSource,
    natural_sort_key,
    open_frames,
    read_image,
    truncated_reason,
    write_video,
)

WIDTH, HEIGHT, N_FRAMES, FPS = 96, 64, 20, 10.0


def synthetic_frames(n=N_FRAMES):
    """n RGB frames [H, W, 3] uint8: noise (so every frame costs similar bytes) and a red block
    whose width encodes the frame index (readable back after lossy compression)."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        frame = rng.integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        frame[8:40, 8:8 + 4 * (i + 1) % WIDTH, 0] = 250  # red in RGB
        frames.append(frame)
    return frames


def write_opencv_video(path, fourcc, frames, fps=FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def truncate(path, out, fraction):
    data = open(path, "rb").read()
    open(out, "wb").write(data[: int(len(data) * fraction)])
    return out


def read_all(source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(source)
    truncation = [w for w in caught if issubclass(w.category, TruncatedInputWarning)]
    return frames, truncation


@pytest.fixture(scope="module")
def avi_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    return write_opencv_video(path, "MJPG", synthetic_frames())


def test_video_reads_every_frame_in_rgb_with_timestamps(avi_video):
    source = open_frames(avi_video)
    assert isinstance(source, VideoFileSource)
    assert source.fps == pytest.approx(FPS)
    assert source.expected_count == N_FRAMES
    frames, truncation = read_all(source)
    assert not truncation
    assert len(frames) == N_FRAMES == source.decoded_count
    originals = synthetic_frames()
    for (index, timestamp, image), original in zip(frames, originals):
        assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
        assert timestamp == pytest.approx(index / FPS)
        # The red block is red in RGB order (channel 0), not blue.
        assert image[20, 10, 0] > 200 and image[20, 10, 2] < 100
        assert np.abs(image.astype(int) - original).mean() < 12  # lossy MJPG
    assert [f.index for f in frames] == list(range(N_FRAMES))


def test_video_max_frames_and_reiteration(avi_video):
    source = open_frames(avi_video, max_frames=5)
    first, truncation = read_all(source)
    second, _ = read_all(source)
    assert len(first) == len(second) == 5 and not truncation
    np.testing.assert_array_equal(first[4].image, second[4].image)


def test_truncated_avi_keeps_frames_before_damage(avi_video, tmp_path):
    intact, _ = read_all(open_frames(avi_video))
    cut = truncate(avi_video, tmp_path / "cut.avi", 0.6)
    source = open_frames(cut)
    frames, truncation = read_all(source)
    assert 0 < len(frames) < N_FRAMES
    assert len(truncation) == 1
    assert f"the {len(frames)} frames before the damage were kept" in str(truncation[0].message)
    for kept, original in zip(frames, intact):
        np.testing.assert_array_equal(kept.image, original.image)


def test_truncated_faststart_mp4_keeps_frames_before_damage(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = str(tmp_path / "faststart.mp4")
    writer = imageio_ffmpeg.write_frames(
        path, (WIDTH, HEIGHT), fps=FPS, codec="libx264", macro_block_size=1, quality=None,
        output_params=["-movflags", "+faststart", "-g", "1"], ffmpeg_log_level="error")
    writer.send(None)
    for frame in synthetic_frames():
        writer.send(frame)
    writer.close()
    frames, truncation = read_all(open_frames(truncate(path, tmp_path / "cut.mp4", 0.6)))
    assert 0 < len(frames) < N_FRAMES and len(truncation) == 1


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path):
    # OpenCV's MP4 writer puts the index ('moov') at the end; cutting the end loses it.
    path = write_opencv_video(tmp_path / "clip.mp4", "mp4v", synthetic_frames())
    assert len(read_all(open_frames(path))[0]) == N_FRAMES
    with pytest.raises(FrameSourceError, match="moov"):
        open_frames(truncate(path, tmp_path / "cut.mp4", 0.6))


def test_not_a_video_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(FrameSourceError, match="cannot be opened as a video"):
        open_frames(path)


def test_missing_inputs_raise_file_not_found(tmp_path):
    for spec in (tmp_path / "absent.mp4", tmp_path / "absent.png"):
        with pytest.raises(FileNotFoundError, match="not found"):
            open_frames(spec)
    with pytest.raises(FileNotFoundError):
        VideoFileSource(tmp_path / "absent.avi")


def test_single_image_gray_and_rgba_become_rgb(tmp_path):
    gray = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    source = open_frames(tmp_path / "gray.png")
    assert isinstance(source, SingleImageSource)
    [(index, timestamp, image)] = list(source)
    assert (index, timestamp) == (0, 0.0)
    assert image.shape == (48, 64, 3)
    np.testing.assert_array_equal(image[..., 0], gray)
    np.testing.assert_array_equal(image[..., 2], gray)

    bgra = np.zeros((40, 40, 4), np.uint8)
    bgra[..., 0] = 200  # blue in OpenCV's BGRA
    bgra[..., 3] = 10
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    image = read_image(tmp_path / "rgba.png")
    assert image.shape == (40, 40, 3) and image[0, 0].tolist() == [0, 0, 200]


def test_tiny_and_corrupt_images_are_clear_errors(tmp_path):
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((20, 100, 3), np.uint8))
    with pytest.raises(FrameSourceError, match="smaller than the 32 px minimum"):
        open_frames(tmp_path / "tiny.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(FrameSourceError, match="not a readable image"):
        read_image(tmp_path / "broken.jpg")


def test_image_folder_natural_order_and_skips_corrupt(tmp_path):
    frames = synthetic_frames(4)
    for i, frame in zip((1, 2, 10, 11), frames):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (tmp_path / "f3.png").write_bytes(b"not a png")
    (tmp_path / "readme.txt").write_text("ignored")
    source = open_frames(tmp_path, fps=5.0)
    assert isinstance(source, ImageFolderSource) and source.expected_count == 5
    read, truncation = read_all(source)
    assert len(truncation) == 1 and "f3.png" in str(truncation[0].message)
    assert [f.index for f in read] == [0, 1, 3, 4]  # f1, f2, (f3 skipped), f10, f11
    assert [f.timestamp_s for f in read] == pytest.approx([0.0, 0.2, 0.6, 0.8])
    for got, want in zip(read, frames):
        np.testing.assert_array_equal(got.image, want)  # PNG is lossless


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(FrameSourceError, match="no image files"):
        open_frames(tmp_path)


def test_unavailable_webcam_is_a_clear_error():
    if os.path.exists("/dev/video63"):
        pytest.skip("a camera exists at index 63")
    with pytest.raises(FrameSourceError, match="webcam 63 cannot be opened"):
        WebcamSource(63)
    with pytest.raises(FrameSourceError, match="webcam 63"):
        open_frames("63")


# ---------------------------------------------------------------- images: orientation, truncation


def quadrants(height=64, width=96):
    """[H, W, 3] uint8 RGB: red top-left, green top-right, blue bottom-left, white bottom-right
    (blocks of 16 px multiples, so JPEG keeps their colours)."""
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w] = (255, 0, 0)
    image[:h, w:] = (0, 255, 0)
    image[h:, :w] = (0, 0, 255)
    image[h:, w:] = 255
    return image


# EXIF Orientation -> how the stored pixels relate to the upright picture.
STORED_FOR_ORIENTATION = {
    1: lambda upright: upright,
    3: lambda upright: np.rot90(upright, 2),
    6: lambda upright: np.rot90(upright, 1),    # shown after turning 90 degrees clockwise
    8: lambda upright: np.rot90(upright, -1),   # shown after turning 90 degrees anticlockwise
}


@pytest.mark.parametrize("orientation", sorted(STORED_FOR_ORIENTATION))
def test_exif_orientation_gives_upright_pixels(tmp_path, orientation):
    from PIL import Image
    upright = quadrants()
    stored = np.ascontiguousarray(STORED_FOR_ORIENTATION[orientation](upright))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"phone_{orientation}.jpg"
    Image.fromarray(stored).save(path, "JPEG", exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright).mean() < 4


def test_sixteen_bit_png_becomes_eight_bit_rgb(tmp_path):
    bgr16 = np.zeros((40, 48, 3), np.uint16)
    bgr16[..., 0] = 0xFFFF   # blue in OpenCV's BGR
    bgr16[..., 2] = 0x8040   # red
    cv2.imwrite(str(tmp_path / "deep.png"), bgr16)
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image[0, 0].tolist() == [0x80, 0, 0xFF]


def encoded(ext, height=120, width=160):
    """Noise encoded by OpenCV as `ext` -> bytes."""
    noise = np.random.default_rng(5).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(ext, noise)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp"])
def test_truncated_image_is_refused_by_name(tmp_path, ext):
    data = encoded(ext)
    whole, cut = tmp_path / f"whole{ext}", tmp_path / f"cut{ext}"
    whole.write_bytes(data)
    cut.write_bytes(data[: len(data) // 3])
    assert truncated_reason(data) is None
    assert read_image(whole).shape == (120, 160, 3)
    with pytest.raises(FrameSourceError, match=rf"cut{ext}: truncated image"):
        read_image(cut)


def test_jpeg_end_marker_decides_truncation():
    data = encoded(".jpg")
    assert data.endswith(b"\xff\xd9")
    assert "FFD9" in truncated_reason(data[:-2])
    # Bytes after the end marker (camera trailers, padding) do not make a file truncated.
    assert truncated_reason(data + b"\x00" * 64 + b"trailer \xff\xda\xff") is None


def test_truncated_image_in_a_folder_is_skipped_with_its_name(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((40, 40, 3), 60 * i, np.uint8))
    data = (tmp_path / "f1.png").read_bytes()
    (tmp_path / "f1.png").write_bytes(data[: len(data) // 3])
    read, truncation = read_all(open_frames(tmp_path))
    assert [f.index for f in read] == [0, 2]
    assert len(truncation) == 1 and "f1.png: truncated image" in str(truncation[0].message)


def test_natural_sort_key_orders_numbers_and_never_compares_int_with_str():
    names = ["f10.png", "F2.png", "f1.png", "a", "a1", "x\u00b2", "10", "2b"]
    assert sorted(names, key=natural_sort_key) == [
        "2b", "10", "a", "a1", "f1.png", "F2.png", "f10.png", "x\u00b2"]


# ---------------------------------------------------------------- video writer


def gradient_frames(n, height, width):
    """n smooth frames [H, W, 3] uint8 whose brightness grows with the index."""
    ramp = np.linspace(0, 120, width, dtype=np.float32)[None, :, None]
    return [np.broadcast_to(ramp + 10 * i, (height, width, 3)).astype(np.uint8)
            for i in range(n)]


def test_write_video_round_trip_pads_odd_sides(tmp_path):
    frames = gradient_frames(6, 33, 45)
    path = tmp_path / "sub" / "odd.mp4"
    assert write_video(path, iter(frames), fps=12.0) == 6
    source = open_frames(path)
    assert source.fps == pytest.approx(12.0)
    read, truncation = read_all(source)
    assert not truncation and len(read) == 6
    for got, want in zip(read, frames):
        assert got.image.shape == (34, 46, 3)
        # The added column repeats the last one (up to H.264's rounding).
        np.testing.assert_allclose(got.image[:33, 45], got.image[:33, 44], atol=3)
        assert np.abs(got.image[:33, :45].astype(int) - want).mean() < 4


def test_video_writer_incremental_and_bad_frames(tmp_path):
    path = tmp_path / "inc.mp4"
    with VideoWriter(path, fps=10.0, quality=9) as writer:
        for frame in gradient_frames(3, 32, 48):
            writer.append(frame)
        with pytest.raises(ValueError, match="resize every frame to one size"):
            writer.append(np.zeros((32, 40, 3), np.uint8))
        with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
            writer.append(np.zeros((32, 48, 3), np.float32))
    assert writer.count == 3
    assert len(read_all(open_frames(path))[0]) == 3
    with pytest.raises(ValueError, match="fps must be > 0"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
