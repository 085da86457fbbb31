"""The synthetic benchmark generator: reproducible, disjoint splits, valid CPEM layout."""
import filecmp
import os

import numpy as np
import pytest

from cpem_jax.synthetic import expressions, scene

SIZE = 64


def _config(split, **kw):
    from cpem_jax.synthetic.generator import SynthConfig
    base = dict(n_clips=2, n_frames=3, image_size=SIZE, seed=3, split=split, batch_size=4)
    base.update(kw)
    return SynthConfig(**base)


@pytest.fixture(scope="module")
def splits(model, tmp_path_factory):
    from cpem_jax.synthetic.generator import generate_split
    root = tmp_path_factory.mktemp("synth")
    gts = {}
    for split, clips, frames in (("train", 3, 2), ("test", 2, 3)):
        gts[split] = generate_split(model, str(root / split),
                                    _config(split, n_clips=clips, n_frames=frames),
                                    progress=False)
    return root, gts


def test_contradictory_pairs_never_both_on(model, splits):
    pairs = np.asarray(model.contradictory_pairs)
    assert len(pairs) > 0
    rng = np.random.default_rng(0)
    many = np.concatenate([expressions.sample_clip_expressions(
        model.expression_names, pairs, 6, rng) for _ in range(300)])
    for weights in [many] + [gt.expression for gt in splits[1].values()]:
        both = (weights[:, pairs[:, 0]] > 0) & (weights[:, pairs[:, 1]] > 0)
        assert not both.any()
        assert weights.min() >= 0.0 and weights.max() <= 1.0
    # Sparse, and strong units occur (the ten categories need entries above 0.8).
    assert np.mean(many > 0) < 0.25
    assert np.mean(many.max(axis=1) > 0.8) > 0.25


def test_resolve_contradictions_keeps_the_larger():
    w = np.array([[0.9, 0.4, 0.0], [0.2, 0.7, 0.5], [0.5, 0.5, 0.0]])
    out = expressions.resolve_contradictions(w, np.array([[0, 1], [1, 2]]))
    np.testing.assert_allclose(out, [[0.9, 0.0, 0.0], [0.0, 0.7, 0.0], [0.5, 0.0, 0.0]])


def test_clip_expressions_are_smooth():
    names = ["jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R"]
    x = expressions.sample_clip_expressions(names, np.zeros((0, 2), int), 13,
                                            np.random.default_rng(1), frames_per_key=4)
    assert x.shape == (13, 5)
    # Cosine easing between keys 4 frames apart: a step is at most sin(pi/8) ~ 0.38 of a jump.
    assert np.abs(np.diff(x, axis=0)).max() < 0.4
    np.testing.assert_array_equal(expressions.key_positions(8, 2), [0, 2, 4, 6, 7])


def test_pose_ranges_and_lighting():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rot, trans = scene.sample_clip_pose(8, rng)
        deg = np.degrees(np.abs(rot))
        assert deg[:, 0].max() <= 20.0 + 1e-4 and deg[:, 1].max() <= 40.0 + 1e-4
        assert deg[:, 2].max() <= 10.0 + 1e-4 and np.abs(trans).max() <= 5.0 + 1e-5
        assert np.abs(np.diff(deg, axis=0)).max() < 12.0  # smooth over the clip
    light = scene.sample_lighting(rng)
    assert light.shape == (3, 9) and np.all(light[:, 0] > 0)


def test_same_seed_same_files_other_seed_differs(model, splits, tmp_path):
    from cpem_jax.synthetic.generator import generate_split
    root, _ = splits
    again = tmp_path / "test"
    generate_split(model, str(again), _config("test", n_clips=2, n_frames=3), progress=False)
    original = root / "test"
    files = sorted(os.path.relpath(os.path.join(d, f), original)
                   for d, _, fs in os.walk(original) for f in fs)
    assert len(files) == 2 * 3 * 4 + 3  # 4 files per frame + csv, ground truth, config
    match, mismatch, errors = filecmp.cmpfiles(original, again, files, shallow=False)
    assert mismatch == [] and errors == []
    other = tmp_path / "other"
    gt = generate_split(model, str(other), _config("test", n_clips=2, n_frames=3, seed=4),
                        progress=False)
    assert not np.allclose(gt.identity, splits[1]["test"].identity)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_split(model, str(other), _config("test"), progress=False)


def test_train_and_test_identities_are_disjoint(splits):
    _, gts = splits
    train, test = gts["train"], gts["test"]
    assert not set(train.person_id) & set(test.person_id)
    assert not set(train.identity_seed) & set(test.identity_seed)
    dist = np.linalg.norm(train.identity[:, None] - test.identity[None], axis=-1)
    assert dist.min() > 1.0
    for gt in gts.values():  # one identity per clip, different between clips
        for rows in gt.clip_rows():
            assert np.all(gt.identity[rows] == gt.identity[rows[0]])
        assert len({tuple(r) for r in gt.identity}) == gt.n_clips


def test_readable_by_index_and_pipeline(splits):
    from cpem_jax.data import PipelineConfig, build_index, make_iterator
    root, gts = splits
    index = build_index(str(root / "train"), check_images="decode")
    assert index.skipped == []
    assert index.counts() == {"train": {"people": 3, "clips": 3, "frames": 6}}
    flags = {(f.person_id, f.frame_name): f.front_flag for f in index.frames}
    gt = gts["train"]
    for p, n, yaw in zip(gt.person_id, gt.frame_name, gt.rotation[:, 1]):
        assert flags[(p, n)] == (abs(np.degrees(yaw)) <= 15.0)
    batches = make_iterator(index, PipelineConfig(batch_size=2, num_frames=2, image_size=SIZE,
                                                  read_threads=0, num_epochs=1))
    batch = next(batches)
    assert batch["image"].shape == (2, 2, SIZE, SIZE, 3)
    assert batch["landmarks"].shape == (2, 2, 68, 2)
    assert 0.2 < batch["skin_mask"].mean() < 0.9


def test_landmarks_match_the_projection_within_the_noise(model, splits):
    from cpem_jax.data.cpem_folder import build_index, read_landmarks
    from cpem_jax.geometry.camera import default_camera
    from cpem_jax.geometry.pipeline import project_landmarks
    from cpem_jax.face_model.model import Coefficients
    root, gts = splits
    gt = gts["test"]
    index = build_index(str(root / "test"))
    by_key = {f"{f.person_id}/{f.video_id}/{f.frame_name}": f for f in index.frames}
    sigma = 1.5 * SIZE / 224.0
    diffs = []
    for key, exact in zip(gt.frame_key, gt.landmarks):
        frame = by_key[key]
        a, b = read_landmarks(frame.landmarks_path), read_landmarks(frame.landmarks2d_path)
        diffs += [a - exact, b - exact]
        assert not np.allclose(a, b)   # independent noise draws
    diffs = np.stack(diffs)
    assert abs(diffs.std() - sigma) < 0.25 * sigma and abs(diffs.mean()) < 0.2 * sigma
    # The stored exact landmarks are the projection of the stored coefficients.
    coeffs = Coefficients(identity=gt.identity, expression=gt.expression, albedo=gt.albedo,
                          lighting=gt.lighting, rotation=gt.rotation, translation=gt.translation)
    camera = default_camera(SIZE, focal=gt.focal_px, distance_cm=gt.distance_cm)
    np.testing.assert_allclose(np.asarray(project_landmarks(model, coeffs, camera)),
                               gt.landmarks, atol=1e-3)
    # And the landmarks sit on the rendered face: most fall inside the skin mask.
    import cv2
    inside = []
    for key, exact in zip(gt.frame_key, gt.landmarks):
        mask = cv2.imread(by_key[key].mask_path, cv2.IMREAD_GRAYSCALE)
        u, v = np.clip(np.floor(exact).astype(int), 0, SIZE - 1).T
        inside.append(mask[v, u] > 0)
    assert np.mean(inside) > 0.6


def test_ground_truth_round_trip_and_errors(splits, tmp_path):
    from cpem_jax.synthetic.ground_truth import load_ground_truth
    root, gts = splits
    loaded = load_ground_truth(str(root / "test"))
    np.testing.assert_array_equal(loaded.expression, gts["test"].expression)
    assert loaded.unit_names == gts["test"].unit_names and loaded.split == "test"
    assert [len(r) for r in loaded.clip_rows()] == [3, 3]
    with pytest.raises(FileNotFoundError, match="ground_truth.npz"):
        load_ground_truth(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_ground_truth(str(tmp_path / "nope"))


def test_synth_cli_writes_both_splits(model, tmp_path, capsys):
    from cpem_jax.cli.main import main
    out = tmp_path / "bench"
    rc = main(["synth", "--out", str(out), "--clips", "1", "--frames", "2", "--test-clips", "1",
               "--test-frames", "2", "--size", str(SIZE), "--batch-size", "4", "--montage"])
    assert rc == 0
    for split in ("train", "test"):
        assert (out / split / "ground_truth.npz").is_file()
        assert (out / split / "montage.png").is_file()
    assert main(["synth", "--out", str(out), "--size", str(SIZE)]) == 2
    assert "--overwrite" in capsys.readouterr().err
