"""Tests for cpem_jax.io.frames on small videos and images synthesised in tmp_path."""
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
    WebcamSource,
    open_frames,
    read_image,
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


def write_video(path, fourcc, frames, fps=FPS):
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
    return write_video(path, "MJPG", synthetic_frames())


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
    path = write_video(tmp_path / "clip.mp4", "mp4v", synthetic_frames())
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
