"""Tests for cpem_jax.data: CPEM folder index, landmark scheme, sampling, augmentation, pipeline."""
import gc
import logging
import os

import cv2
import numpy as np
import pytest

from cpem_jax.data import augment, cpem_folder, ibug68, pipeline, sampling

SIZE = 32   # side of the fabricated vox frames
LP_SIZE = 48  # fabricated 300W-LP-like frames: image 48x48, mask 24x24 (as the real 450 / 224)


def _landmarks(rng, size):
    return rng.uniform(0.2 * size, 0.8 * size, size=(ibug68.NUM_LANDMARKS, 2))


def _write_frame(source, person, video, name, colour, size=SIZE, mask_size=None, rng=None,
                 lm_lines=ibug68.NUM_LANDMARKS, write_mask=True, ext=".png"):
    """Write one frame in the CPEM layout: a flat-colour image, a left-half mask, landmarks."""
    mask_size = mask_size or size
    rng = rng or np.random.default_rng(abs(hash(name)) % 2**32)
    for d in ("data", "face_mask", "landmarks", "landmarks2d"):
        os.makedirs(os.path.join(source, d, person, video), exist_ok=True)
    image = np.zeros((size, size, 3), np.uint8)
    image[:] = colour[::-1]  # stored BGR
    cv2.imwrite(os.path.join(source, "data", person, video, name + ext), image)
    if write_mask:
        mask = np.zeros((mask_size, mask_size), np.uint8)
        mask[:, : mask_size // 2] = 255
        cv2.imwrite(os.path.join(source, "face_mask", person, video, name + ".png"), mask)
    lm3 = _landmarks(rng, size)
    lm2 = lm3 + 1.0
    np.savetxt(os.path.join(source, "landmarks", person, video, name + ".txt"), lm3[:lm_lines])
    np.savetxt(os.path.join(source, "landmarks2d", person, video, name + ".txt"), lm2)
    return lm3, lm2


@pytest.fixture()
def fake_root(tmp_path):
    """Two sources. Usable: vox/p1/v1 (4), vox/p1/v2 (2), vox/p2/v1 (3), lp/s1/001 (3).
    Bad: a corrupt image, a 67-line landmark file, a missing mask, a csv row without an image,
    an image without a csv row."""
    vox = str(tmp_path / "vox")
    rows = []
    colours = {}
    n = 0

    def add(person, video, name, in_csv=True, flag=0, **kw):
        nonlocal n
        n += 1
        colour = (n * 10, 255 - n * 10, (n * 37) % 256)
        colours[(person, video, name)] = colour
        _write_frame(vox, person, video, name, colour, **kw)
        if in_csv:
            rows.append(f"{person},{video},{name},{flag}")

    for name in ("f_1", "f_2", "f_3", "f_10"):
        add("p1", "v1", name, flag=int(name == "f_2"))
    add("p1", "v1", "f_bad")
    with open(os.path.join(vox, "data", "p1", "v1", "f_bad.png"), "wb") as f:
        f.write(b"this is not a png")
    for name in ("g_1", "g_2"):
        add("p1", "v2", name, flag=1)
    add("p1", "v2", "g_3", lm_lines=67)
    for name in ("h_1", "h_2", "h_3"):
        add("p2", "v1", name)
    add("p2", "v1", "h_4", write_mask=False)
    add("p2", "v1", "h_5", in_csv=False)
    rows.append("p2,v1,h_9,0")
    with open(os.path.join(vox, "front_face_flag.csv"), "w") as f:
        f.write("person_id,video_id,frame_name,front_face_flag\n" + "\n".join(rows))

    lp = str(tmp_path / "lp")
    lp_rows = []
    for k in range(3):
        _write_frame(lp, "s1", "001", f"s1_{k}", (200, 100, 50), size=LP_SIZE,
                     mask_size=LP_SIZE // 2, ext=".jpg")
        lp_rows.append(f"s1,001,s1_{k},0")
    with open(os.path.join(lp, "front_face_flag.csv"), "w") as f:
        f.write("person_id,video_id,frame_name,front_face_flag\n" + "\n".join(lp_rows) + "\n")
    return str(tmp_path), colours


# ---------------------------------------------------------------- index


def test_index_groups_frames_into_clips_and_reports_bad_files(fake_root, caplog):
    root, _ = fake_root
    with caplog.at_level(logging.WARNING):
        index = cpem_folder.build_index(root)
    assert index.counts() == {
        "lp": {"people": 1, "clips": 1, "frames": 3},
        "vox": {"people": 2, "clips": 3, "frames": 9}}
    by_key = {c.key: c for c in index.clips}
    assert [index.frames[i].frame_name for i in by_key["vox/p1/v1"].frame_ids] == [
        "f_1", "f_2", "f_3", "f_10"]
    for clip in index.clips:
        frames = [index.frames[i] for i in clip.frame_ids]
        assert {(f.source, f.person_id, f.video_id) for f in frames} == {
            (clip.source, clip.person_id, clip.video_id)}
    assert index.frames[by_key["vox/p1/v1"].frame_ids[1]].front_flag
    assert not index.frames[by_key["vox/p1/v1"].frame_ids[0]].front_flag

    reasons = {os.path.relpath(s.path, root): s.reason for s in index.skipped}
    expected = {
        os.path.join("vox", "data", "p1", "v1", "f_bad.png"): "unreadable image",
        os.path.join("vox", "landmarks", "p1", "v2", "g_3.txt"): "found 67",
        os.path.join("vox", "face_mask", "p2", "v1", "h_4.*"): "missing skin mask",
        os.path.join("vox", "data", "p2", "v1", "h_5.png"): "no row in front_face_flag.csv",
        os.path.join("vox", "data", "p2", "v1", "h_9"): "listed in front_face_flag.csv",
    }
    assert set(reasons) == set(expected)
    for path, fragment in expected.items():
        assert fragment in reasons[path]
        assert any(os.path.basename(path) in r.getMessage() for r in caplog.records
                   if r.levelno == logging.WARNING)


def test_index_decode_mode_and_empty_root(fake_root, tmp_path_factory):
    root, _ = fake_root
    assert len(cpem_folder.build_index(root, check_images="decode").frames) == 12
    with pytest.raises(FileNotFoundError, match="holds no CPEM source"):
        cpem_folder.build_index(tmp_path_factory.mktemp("empty"))
    with pytest.raises(ValueError, match="check_images"):
        cpem_folder.build_index(root, check_images="full")


def test_read_landmarks_converts_to_pixel_centre_convention(tmp_path):
    path = tmp_path / "lm.txt"
    np.savetxt(path, np.arange(136, dtype=float).reshape(68, 2))
    lm = cpem_folder.read_landmarks(str(path))
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    np.testing.assert_allclose(lm, np.arange(136).reshape(68, 2) + 0.5)
    path.write_text("1 2\n" * 67 + "1 nan\n")
    with pytest.raises(cpem_folder.FrameReadError, match="non-finite"):
        cpem_folder.read_landmarks(str(path))


# ---------------------------------------------------------------- landmark scheme


def test_mirror_permutation_is_an_involution_with_the_axis_fixed():
    assert sorted(ibug68.MIRROR) == list(range(68))
    np.testing.assert_array_equal(ibug68.MIRROR[ibug68.MIRROR], np.arange(68))
    fixed = set(np.flatnonzero(ibug68.MIRROR == np.arange(68)))
    assert fixed == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}  # chin, nose, lip centres
    assert ibug68.MIRROR[0] == 16 and ibug68.MIRROR[36] == 45 and ibug68.MIRROR[48] == 54


def test_combine_landmarks_modes():
    lm3 = np.zeros((2, 68, 2), np.float32)
    lm2 = np.ones((2, 68, 2), np.float32)
    front = np.array([True, False])
    out = ibug68.combine_landmarks(lm3, lm2, front, "paper")
    np.testing.assert_array_equal(out[0, ibug68.CONTOUR.start:ibug68.CONTOUR.stop], 0)
    np.testing.assert_array_equal(out[0, ibug68.INNER_FACE.start:], 1)
    np.testing.assert_array_equal(out[1], 0)
    np.testing.assert_array_equal(ibug68.combine_landmarks(lm3, lm2, front, "2d"), 1)
    np.testing.assert_array_equal(ibug68.combine_landmarks(lm3, lm2, front, "3d"), 0)
    with pytest.raises(ValueError, match="combine mode"):
        ibug68.combine_landmarks(lm3, lm2, front, "dlib")


# ---------------------------------------------------------------- sampling


def test_sample_positions_modes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = sampling.sample_positions(10, 4, "random", rng)
        assert len(set(p)) == 4 and np.all(np.diff(p) > 0) and p.max() < 10
        s = sampling.sample_positions(10, 4, "sequential", rng)
        np.testing.assert_array_equal(np.diff(s), 1)
        r = sampling.sample_positions(2, 4, "random", rng)
        assert set(r) == {0, 1} and len(r) == 4


def test_eligible_clips_skip_and_repeat(fake_root, caplog):
    index = cpem_folder.build_index(fake_root[0])
    with caplog.at_level(logging.WARNING):
        kept = sampling.eligible_clips(index.clips, 3, "skip")
    assert {c.key for c in kept} == {"vox/p1/v1", "vox/p2/v1", "lp/s1/001"}
    assert "vox/p1/v2 (2 frames)" in caplog.text
    assert len(sampling.eligible_clips(index.clips, 3, "repeat")) == 4
    with pytest.raises(ValueError, match="short_clips='repeat'"):
        sampling.eligible_clips(index.clips, 5, "skip")


# ---------------------------------------------------------------- augmentation


def _blob(size, centre, sigma=1.5):
    """[size, size] Gaussian blob centred at `centre` = (u, v), pixel centres at i + 0.5."""
    grid = np.arange(size) + 0.5
    g = np.exp(-((grid[None, :] - centre[0]) ** 2 + (grid[:, None] - centre[1]) ** 2)
               / (2 * sigma ** 2))
    return g.astype(np.float32)


def _centroid(weights):
    grid = np.arange(weights.shape[0]) + 0.5
    total = weights.sum()
    return np.array([(weights.sum(0) * grid).sum() / total, (weights.sum(1) * grid).sum() / total])


@pytest.mark.parametrize("flip", [False, True])
def test_geometry_moves_pixels_and_landmarks_together(flip):
    size, t = 64, 2
    rng = np.random.default_rng(1)
    lm = np.tile(_landmarks(rng, size)[None], (t, 1, 1)).astype(np.float32)
    lm[:, 0] = [22.3, 27.8]
    blob = _blob(size, lm[0, 0])
    images = np.tile(blob[None, ..., None], (t, 1, 1, 3))
    masks = np.tile(blob[None], (t, 1, 1))
    aug = augment.ClipAugmentation(scale=1.1, rotation_deg=7.0, shift=(3.2, -2.1), flip=flip)
    out_img, out_mask, out_lm = augment.apply_geometry(images, masks, lm, aug)
    moved = ibug68.MIRROR[0] if flip else 0
    for k in range(t):
        np.testing.assert_allclose(_centroid(out_img[k, ..., 0]), out_lm[k, moved], atol=0.1)
        np.testing.assert_allclose(_centroid(out_mask[k]), out_lm[k, moved], atol=0.1)
    a, b = augment.geometry_matrix(aug, size)
    expected = lm[0] @ a.T + b
    np.testing.assert_allclose(out_lm[0], expected[ibug68.MIRROR] if flip else expected, atol=1e-4)


def test_flip_keeps_ibug_labels_on_their_image_sides():
    """After a flip the jaw still runs image-left (0) to image-right (16) and points 36-41 stay
    the eye on the image left."""
    size = 64
    u = np.full(68, 32.0)
    u[ibug68.CONTOUR.start:ibug68.CONTOUR.stop] = np.linspace(10, 54, len(ibug68.CONTOUR))
    u[ibug68.GROUPS["eye_image_left"].start:ibug68.GROUPS["eye_image_left"].stop] = 20.0
    u[ibug68.GROUPS["eye_image_right"].start:ibug68.GROUPS["eye_image_right"].stop] = 44.0
    lm = np.stack([u, np.full(68, 30.0)], -1)[None].astype(np.float32)   # [1, 68, 2]
    images = np.zeros((1, size, size, 3), np.float32)
    _, _, out = augment.apply_geometry(images, images[..., 0], lm,
                                       augment.ClipAugmentation(flip=True))
    assert np.all(np.diff(out[0, ibug68.CONTOUR.start:ibug68.CONTOUR.stop, 0]) > 0)
    np.testing.assert_allclose(out[0, ibug68.GROUPS["eye_image_left"].start, 0], 20.0)
    np.testing.assert_allclose(out[0, ibug68.GROUPS["eye_image_right"].start, 0], 44.0)


def test_resize_keeps_landmarks_on_their_pixels():
    src, dst = 96, 48
    centre = np.array([40.25, 57.5])
    image = np.repeat(_blob(src, centre, sigma=3.0)[..., None], 3, axis=-1)
    mask = _blob(src // 2, centre / 2, sigma=1.5)
    lm = np.tile(centre, (68, 1)).astype(np.float32)
    out_img, out_mask, out_lm = augment.resize_frame(image, mask, lm, dst)
    assert out_img.shape == (dst, dst, 3) and out_mask.shape == (dst, dst)
    np.testing.assert_allclose(out_lm[0], centre * dst / src)
    np.testing.assert_allclose(_centroid(out_img[..., 0]), out_lm[0], atol=0.05)
    np.testing.assert_allclose(_centroid(out_mask), out_lm[0], atol=0.05)


def test_colour_jitter_is_shared_by_the_frames_of_a_clip():
    rng = np.random.default_rng(2)
    frame = rng.uniform(0.2, 0.8, size=(8, 8, 3)).astype(np.float32)
    images = np.stack([frame, frame, frame])
    aug = augment.ClipAugmentation(brightness=1.15, contrast=0.85, saturation=1.2)
    out = augment.apply_color(images, aug)
    assert not np.allclose(out[0], frame)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_sampled_augmentation_respects_config():
    cfg = augment.AugmentConfig(max_shift=0.1, scale_range=(0.9, 1.1), max_rotation_deg=3.0,
                                flip_probability=1.0)
    rng = np.random.default_rng(3)
    for _ in range(10):
        aug = augment.sample_augmentation(cfg, 100, rng)
        assert aug.flip and 0.9 <= aug.scale <= 1.1 and abs(aug.rotation_deg) <= 3.0
        assert max(abs(s) for s in aug.shift) <= 10.0
    assert augment.sample_augmentation(augment.AugmentConfig(enabled=False), 100,
                                       rng).is_geometric_identity
    with pytest.raises(ValueError, match="scale_range"):
        augment.AugmentConfig(scale_range=(1.1, 0.9))


# ---------------------------------------------------------------- pipeline


def _config(**kw):
    base = dict(batch_size=2, num_frames=3, image_size=16, seed=0, read_threads=0,
                augment=augment.AugmentConfig(enabled=False))
    base.update(kw)
    return pipeline.PipelineConfig(**base)


def test_pipeline_batches_without_augmentation_match_the_files(fake_root):
    root, colours = fake_root
    index = cpem_folder.build_index(root)
    ds = pipeline.make_dataset(index, _config())
    for k in range(3):
        batch = ds[k]
        assert batch["image"].shape == (2, 3, 16, 16, 3) and batch["image"].dtype == np.float32
        assert batch["skin_mask"].shape == (2, 3, 16, 16)
        assert batch["landmarks"].shape == (2, 3, 68, 2)
        assert batch["front_flag"].shape == (2, 3) and batch["front_flag"].dtype == bool
        assert batch["frame_id"].shape == (2, 3) and batch["clip_id"].shape == (2,)
        for b in range(2):
            clip = index.clips[batch["clip_id"][b]]
            assert batch["clip_key"][b] == clip.key
            assert set(batch["frame_id"][b]) <= set(clip.frame_ids)
            assert len(set(batch["frame_id"][b])) == 3   # distinct frames, no repeats
            for t in range(3):
                frame = index.frames[batch["frame_id"][b, t]]
                assert (frame.person_id, frame.video_id) == (clip.person_id, clip.video_id)
                if frame.source == "vox":
                    colour = np.array(colours[(frame.person_id, frame.video_id,
                                               frame.frame_name)]) / 255.0
                    np.testing.assert_allclose(batch["image"][b, t, 8, 8], colour, atol=1e-6)
                lm = cpem_folder.read_landmarks(frame.landmarks_path)
                if frame.front_flag:  # "paper" merge: inner face from landmarks2d
                    lm[ibug68.INNER_FACE.start:] = cpem_folder.read_landmarks(
                        frame.landmarks2d_path)[ibug68.INNER_FACE.start:]
                np.testing.assert_allclose(batch["landmarks"][b, t],
                                           lm * 16 / frame.image_size[1], rtol=1e-6)
                assert batch["front_flag"][b, t] == frame.front_flag
                np.testing.assert_array_equal(batch["skin_mask"][b, t, :, :8], 1.0)
                np.testing.assert_array_equal(batch["skin_mask"][b, t, :, 8:], 0.0)


def test_pipeline_is_seeded_and_augments(fake_root):
    index = cpem_folder.build_index(fake_root[0])
    cfg = _config(augment=augment.AugmentConfig(flip_probability=0.5), num_frames=2)
    first = [pipeline.make_dataset(index, cfg)[k] for k in range(4)]
    again = [pipeline.make_dataset(index, cfg)[k] for k in range(4)]
    other = [pipeline.make_dataset(index, _config(augment=cfg.augment, num_frames=2,
                                                  seed=1))[k] for k in range(4)]
    for x, y in zip(first, again):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(first, other))
    flips = np.concatenate([x["flipped"] for x in first])
    assert flips.any() and not flips.all()


def test_pipeline_short_clip_repeat(fake_root):
    index = cpem_folder.build_index(fake_root[0])
    short = next(c for c in index.clips if c.key == "vox/p1/v2")
    cfg = _config(num_frames=3, short_clips="repeat", batch_size=1, shuffle=False)
    ds = pipeline.make_dataset(index, cfg)
    position = [c.clip_id for c in index.clips].index(short.clip_id)
    batch = ds[position]
    assert batch["clip_id"][0] == short.clip_id
    assert set(batch["frame_id"][0]) == set(short.frame_ids)


def test_pipeline_replaces_a_frame_that_breaks_after_indexing(fake_root, caplog):
    root, _ = fake_root
    index = cpem_folder.build_index(root)
    clip = next(c for c in index.clips if c.key == "vox/p2/v1")
    broken = index.frames[clip.frame_ids[0]]
    with open(broken.image_path, "wb") as f:
        f.write(b"truncated")
    loader = pipeline.ClipLoader(index.frames, [clip], _config(num_frames=3, short_clips="repeat"))
    with caplog.at_level(logging.WARNING):
        sample = loader.random_map(clip.clip_id, np.random.default_rng(0))
    assert os.path.basename(broken.image_path) in caplog.text
    assert clip.frame_ids[0] not in set(sample["frame_id"])
    assert set(sample["frame_id"]) <= set(clip.frame_ids)


def _cut_to_a_third(jpeg_path):
    """Overwrites a .jpg with noise of its size, cut to a third of its bytes (header intact)."""
    size = cv2.imread(jpeg_path).shape[0]
    noise = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 95])
    with open(jpeg_path, "wb") as f:
        f.write(data.tobytes()[: len(data) // 3])


def test_truncated_jpeg_is_skipped_by_name_at_load_and_at_index(fake_root, caplog):
    root, _ = fake_root
    index = cpem_folder.build_index(root)
    clip = next(c for c in index.clips if c.key == "lp/s1/001")
    cut = index.frames[clip.frame_ids[1]]
    _cut_to_a_third(cut.image_path)
    # Header mode reads only the (intact) header: the frame stays indexed ...
    assert len(cpem_folder.build_index(root).frames) == len(index.frames)
    # ... and is skipped by name when training loads it.
    loader = pipeline.ClipLoader(index.frames, [clip], _config(num_frames=3, short_clips="repeat"))
    with caplog.at_level(logging.WARNING):
        sample = loader.random_map(clip.clip_id, np.random.default_rng(0))
    assert f"skipping {cut.image_path} at load time: truncated image (JPEG" in caplog.text
    assert clip.frame_ids[1] not in set(sample["frame_id"])
    # Decode mode skips it while indexing.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        decoded = cpem_folder.build_index(root, check_images="decode")
    reasons = {s.path: s.reason for s in decoded.skipped}
    assert reasons[cut.image_path].startswith("truncated image (JPEG without")
    assert f"skipping {cut.image_path}: truncated image" in caplog.text
    assert decoded.counts()["lp"]["frames"] == 2


def test_header_size_is_the_upright_size_read_image_returns(tmp_path):
    from PIL import Image
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 48 wide and 32 high, shown turned a quarter
    path = str(tmp_path / "turned.jpg")
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(path, exif=exif)
    assert cpem_folder.read_image(path).shape == (48, 32, 3)
    assert cpem_folder._image_size(path, "header") == (48, 32)
    assert cpem_folder._image_size(path, "decode") == (48, 32)


def test_pipeline_worker_processes_give_the_same_batches(fake_root):
    index = cpem_folder.build_index(fake_root[0])
    cfg = _config(augment=augment.AugmentConfig())
    local = pipeline.make_iterator(index, cfg)
    expected = [next(local) for _ in range(2)]
    workers = pipeline.make_iterator(index, _config(augment=augment.AugmentConfig(),
                                                    worker_count=1))
    try:
        got = [next(workers) for _ in range(2)]
    finally:
        workers.close()
        del workers
        gc.collect()
    for x, y in zip(expected, got):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_pipeline_config_validation():
    with pytest.raises(ValueError, match="frame_sampling"):
        _config(frame_sampling="every")
    with pytest.raises(ValueError, match="batch_size"):
        _config(batch_size=0)
    with pytest.raises(ValueError, match="landmark_combine"):
        _config(landmark_combine="fan")


# ---------------------------------------------------------------- the shared demo set

DEMO = cpem_folder.default_shared_demo()
needs_demo = pytest.mark.skipif(
    not os.path.isdir(DEMO), reason=f"CPEM demo data not found at {DEMO}; set CPEM_SHARED")


@needs_demo
def test_demo_index_counts():
    index = cpem_folder.build_index(DEMO)
    assert index.skipped == []
    counts = index.counts()
    assert counts["voxceleb2"] == {"people": 2, "clips": 18, "frames": 176}
    assert counts["300w_lp"]["people"] == 2 and counts["300w_lp"]["frames"] == 27


@needs_demo
def test_demo_batches_keep_each_clip_to_one_person_and_video():
    index = cpem_folder.build_index(DEMO)
    cfg = pipeline.PipelineConfig(batch_size=4, num_frames=4, image_size=64, read_threads=0)
    ds = pipeline.make_dataset(index, cfg)
    for k in range(2):
        batch = ds[k]
        assert batch["image"].shape == (4, 4, 64, 64, 3)
        assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
        for b in range(4):
            frames = [index.frames[i] for i in batch["frame_id"][b]]
            assert len({(f.source, f.person_id, f.video_id) for f in frames}) == 1
        assert np.all(np.abs(batch["landmarks"] - 32) < 48)   # on or near the 64x64 crop
        assert 0.05 < batch["skin_mask"].mean() < 0.9


@needs_demo
def test_demo_300w_lp_frame_is_rescaled_from_its_own_resolution():
    index = cpem_folder.build_index(DEMO)
    frame = next(f for f in index.frames if f.source == "300w_lp")
    arrays = cpem_folder.load_frame(frame, combine="3d")
    assert arrays["image"].shape[:2] == frame.image_size
    _, _, lm = augment.resize_frame(arrays["image"], arrays["skin_mask"], arrays["landmarks"], 64)
    np.testing.assert_allclose(lm, cpem_folder.read_landmarks(frame.landmarks_path)
                               * 64 / frame.image_size[1], rtol=1e-6)


def test_pipeline_shards_are_disjoint_and_cover_one_epoch(fake_root):
    index = cpem_folder.build_index(fake_root[0])
    seen = []
    for shard in range(2):
        ds = pipeline.make_dataset(index, _config(batch_size=1, num_frames=2, num_epochs=1,
                                                  shard_index=shard, shard_count=2))
        seen.append([int(ds[k]["clip_id"][0]) for k in range(len(ds))])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(c.clip_id for c in index.clips)
