"""Distillation toward teacher fits: teacher files, mirroring, the terms, their schedule, and a
training run that uses them (tiny network on synthetic clips of the fabricated face model)."""
import csv
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.data import cpem_folder, pipeline
from cpem_jax.data import teacher as teacher_lib
from cpem_jax.face_model.model import Coefficients
from cpem_jax.losses.distillation import distill_weight, distillation_terms

from test_train_loop import CLIPS, FRAMES, SIZE, fake_model_npz, synthetic_root, tiny_config  # noqa: F401


def test_mirror_swaps_left_and_right_units_and_flips_yaw_roll_and_x():
    names = ["jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthLeft", "mouthRight", "eyeLookIn_L",
             "eyeLookIn_R"]
    perm = teacher_lib.mirror_permutation(names)
    assert [names[i] for i in perm] == ["jawOpen", "eyeBlink_R", "eyeBlink_L", "mouthRight",
                                        "mouthLeft", "eyeLookIn_R", "eyeLookIn_L"]
    expression = np.arange(7, dtype=np.float32)[None] / 10
    rotation = np.array([[0.1, 0.2, 0.3]], np.float32)
    translation = np.array([[1.0, 2.0, 3.0]], np.float32)
    e, r, t = teacher_lib.mirror_targets(expression, rotation, translation, perm)
    np.testing.assert_allclose(e[0], [0.0, 0.2, 0.1, 0.4, 0.3, 0.6, 0.5])
    np.testing.assert_allclose(r, [[0.1, -0.2, -0.3]])
    np.testing.assert_allclose(t, [[-1.0, 2.0, 3.0]])
    twice = teacher_lib.mirror_targets(e, r, t, perm)
    for a, b in zip(twice, (expression, rotation, translation)):
        np.testing.assert_allclose(a, b)


def _coeffs(expression, rotation, translation):
    n = expression.shape[0]
    return Coefficients(identity=jnp.zeros((n, 2)), expression=jnp.asarray(expression),
                        albedo=jnp.zeros((n, 2)), lighting=jnp.zeros((n, 3, 9)),
                        rotation=jnp.asarray(rotation), translation=jnp.asarray(translation))


def test_distillation_terms_average_over_valid_frames_only():
    expression = np.array([[0.5, 0.5], [0.0, 0.0]], np.float32)
    rotation = np.zeros((2, 3), np.float32)
    translation = np.zeros((2, 3), np.float32)
    coeffs = _coeffs(expression + np.array([[0.1, 0.3], [0.9, 0.9]]),
                     rotation + np.array([[0.0, 0.3, 0.0], [1.0, 1.0, 1.0]]),
                     translation + np.array([[0.0, 0.0, 3.0], [50.0, 0.0, 0.0]]))
    terms = distillation_terms(coeffs, expression, rotation, translation,
                               jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(terms["distill_exp"], (0.01 + 0.09) / 2, rtol=1e-5)
    np.testing.assert_allclose(terms["distill_pose"], 0.09 / 3 + 0.09 / 3, rtol=1e-5)
    none = distillation_terms(coeffs, expression, rotation, translation, jnp.zeros(2))
    assert float(none["distill_exp"]) == 0.0 and float(none["distill_pose"]) == 0.0
    # A 30 cm translation unit weighs the 3 cm depth error a ninth as much.
    wide = distillation_terms(coeffs, expression, rotation, translation, jnp.array([1.0, 0.0]),
                              translation_scale_cm=30.0)
    np.testing.assert_allclose(wide["distill_pose"], 0.09 / 3 + 0.01 / 3, rtol=1e-5)


def test_a_non_positive_translation_unit_is_a_setup_error():
    from configs import default
    from cpem_jax.train.errors import TrainingSetupError
    from cpem_jax.train.loop import distill_translation_cm
    config = default.get_config()
    assert distill_translation_cm(config) == 10.0
    config.loss.distill_translation_cm = 0.0
    with pytest.raises(TrainingSetupError, match="distill_translation_cm"):
        distill_translation_cm(config)


def test_distill_weight_is_full_then_fades_linearly():
    values = [float(distill_weight(s, 100, 20.0, 0.6, 0.25)) for s in (0, 60, 80, 100, 150)]
    np.testing.assert_allclose(values, [20.0, 20.0, 12.5, 5.0, 5.0], rtol=1e-6)


def test_ground_truth_of_a_synthetic_split_is_its_teacher(synthetic_root, fake_model):
    from cpem_jax.synthetic.ground_truth import load_ground_truth
    index = cpem_folder.build_index(synthetic_root)
    names = list(fake_model.expression_names)
    teachers = teacher_lib.load_teachers(index, names)
    assert sorted(teachers) == [c.clip_id for c in index.clips]
    gt = load_ground_truth(synthetic_root)
    for fid, frame in enumerate(index.frames):
        row = int(np.flatnonzero(gt.frame_key == f"{frame.person_id}/{frame.video_id}/"
                                                  f"{frame.frame_name}")[0])
        clip = next(c for c in index.clips if fid in c.frame_ids)
        e, r, t, ok = teachers[clip.clip_id].lookup(fid)
        assert ok
        np.testing.assert_allclose(e, gt.expression[row])
        np.testing.assert_allclose(r, gt.rotation[row])
        np.testing.assert_allclose(t, gt.translation[row])


def test_flipped_clips_carry_mirrored_targets(synthetic_root, fake_model):
    index = cpem_folder.build_index(synthetic_root)
    names = list(fake_model.expression_names)
    teachers = teacher_lib.load_teachers(index, names)
    perm = teacher_lib.mirror_permutation(names)
    for flip in (0.0, 1.0):
        config = pipeline.PipelineConfig(
            batch_size=2, num_frames=2, image_size=SIZE, shuffle=False,
            augment=pipeline.augment_lib.AugmentConfig(  # Only the flip: the rest is
                flip_probability=flip, max_shift=0.0, scale_range=(1.0, 1.0),  # tested below.
                max_rotation_deg=0.0))
        batch = next(pipeline.make_iterator(index, config, teachers, names))
        assert batch["teacher_expression"].shape == (2, 2, len(names))
        assert batch["teacher_valid"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
        assert batch["flipped"].tolist() == [bool(flip)] * 2
        for b in range(2):
            clip = teachers[int(batch["clip_id"][b])]
            for t in range(2):
                e, r, tr, _ = clip.lookup(int(batch["frame_id"][b, t]))
                if flip:
                    e, r, tr = teacher_lib.mirror_targets(e, r, tr, perm)
                np.testing.assert_allclose(batch["teacher_expression"][b, t], e)
                np.testing.assert_allclose(batch["teacher_rotation"][b, t], r)
                np.testing.assert_allclose(batch["teacher_translation"][b, t], tr)


def _as_prepared(synthetic_root, dest, fake_model):
    """A copy of the split whose teachers are prepare-style files (ground truth removed), the
    first clip's frame 1 marked as 'no face'."""
    from cpem_jax.synthetic.ground_truth import load_ground_truth
    shutil.copytree(synthetic_root, dest)
    gt = load_ground_truth(dest)
    os.remove(os.path.join(dest, teacher_lib.GROUND_TRUTH_FILE))
    for clip_rows in gt.clip_rows():
        person, video = str(gt.person_id[clip_rows[0]]), str(gt.video_id[clip_rows[0]])
        npz_path, csv_path = teacher_lib.teacher_paths(dest, person, video)
        os.makedirs(os.path.dirname(npz_path), exist_ok=True)
        np.savez(npz_path, unit_names=np.asarray(gt.unit_names),
                 expression=gt.expression[clip_rows], rotation=gt.rotation[clip_rows],
                 translation=gt.translation[clip_rows])
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("row", "frame_index", "face_found", "frame_name"))
            for row, r in enumerate(clip_rows):
                lost = row == 1 and clip_rows[0] == 0
                writer.writerow((row, row, 0 if lost else 1, str(gt.frame_name[r])))
    return gt


def test_prepared_teacher_files_skip_frames_without_a_face(synthetic_root, fake_model,
                                                           tmp_path):
    dest = str(tmp_path / "prepared")
    gt = _as_prepared(synthetic_root, dest, fake_model)
    index = cpem_folder.build_index(dest)
    teachers = teacher_lib.load_teachers(index, list(fake_model.expression_names))
    lost_key = (str(gt.person_id[1]), str(gt.video_id[1]), str(gt.frame_name[1]))
    for fid, frame in enumerate(index.frames):
        clip = next(c for c in index.clips if fid in c.frame_ids)
        _, _, _, ok = teachers[clip.clip_id].lookup(fid)
        assert ok == ((frame.person_id, frame.video_id, frame.frame_name) != lost_key)


def test_teacher_file_of_another_face_model_is_refused_by_name(synthetic_root, fake_model,
                                                               tmp_path):
    dest = str(tmp_path / "prepared")
    _as_prepared(synthetic_root, dest, fake_model)
    index = cpem_folder.build_index(dest)
    with pytest.raises(teacher_lib.TeacherError, match="another face model"):
        teacher_lib.load_teachers(index, ["browDown_L"])


def test_training_with_teachers_logs_the_distillation_terms(synthetic_root, fake_model_npz,
                                                            tmp_path):
    from cpem_jax.train.loop import train_and_evaluate
    from test_train_loop import read_history
    config = tiny_config(synthetic_root, fake_model_npz, 2)
    config.data.teacher = True
    config.loss.distill_exp, config.loss.distill_pose = 20.0, 20.0
    config.loss.distill_fade_start, config.loss.distill_final_fraction = 0.0, 0.5
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    history = read_history(workdir)
    logged = [h for h in history if "loss/distill_exp" in h]
    assert logged and all(np.isfinite(h["loss/distill_exp"]) and h["loss/distill_exp"] > 0
                          for h in logged)
    assert any("eval/distill_pose" in h for h in history)
    lam = [h["train/lambda_distill_exp"] for h in history if "train/lambda_distill_exp" in h]
    assert lam and all(10.0 <= v < 20.0 for v in lam)  # Fading from step 0 to half at step 2.


def test_teacher_asked_for_without_teacher_files_is_one_clear_error(synthetic_root,
                                                                    fake_model_npz, tmp_path):
    from cpem_jax.train.errors import TrainingDataError
    from cpem_jax.train.loop import train_and_evaluate
    dest = str(tmp_path / "plain")
    shutil.copytree(synthetic_root, dest)
    os.remove(os.path.join(dest, teacher_lib.GROUND_TRUTH_FILE))
    config = tiny_config(dest, fake_model_npz, 2)
    config.data.teacher = True
    workdir = tmp_path / "run"
    with pytest.raises(TrainingDataError, match=r"cpem-jax prepare"):
        train_and_evaluate(config, str(workdir))
    assert not workdir.exists()


def test_held_out_person_is_left_out_and_a_typo_refused(synthetic_root, fake_model_npz):
    from cpem_jax.train import inputs
    from cpem_jax.train.errors import TrainingDataError
    config = tiny_config(synthetic_root, fake_model_npz, 2)
    people = sorted({c.person_id for c in cpem_folder.build_index(synthetic_root).clips})
    config.data.exclude_people = people[0]
    index = inputs.load_index(config)
    assert people[0] not in {c.person_id for c in index.clips}
    assert len({c.person_id for c in index.clips}) == len(people) - 1
    config.data.exclude_people = "nobody_here"
    with pytest.raises(TrainingDataError, match="nobody_here"):
        inputs.load_index(config)


def test_window_weighting_draws_long_clips_by_their_length(synthetic_root):
    index = cpem_folder.build_index(synthetic_root)
    long_clip = index.clips[0]
    # With T = 1 every clip of n frames holds n windows: an epoch draws it n times.
    config = pipeline.PipelineConfig(batch_size=1, num_frames=1, image_size=SIZE,
                                     clip_weighting="window", num_epochs=1, shuffle=False)
    ds = pipeline.make_dataset(index, config)
    drawn = [int(ds[k]["clip_id"][0]) for k in range(len(ds))]
    assert len(drawn) == sum(len(c) for c in index.clips)
    assert drawn.count(long_clip.clip_id) == len(long_clip)
    with pytest.raises(ValueError, match="clip_weighting"):
        pipeline.PipelineConfig(clip_weighting="frames")


@pytest.mark.parametrize("scale, rotation_deg, shift", [
    (1.05, 5.0, (1.5, -1.0)), (0.95, -5.0, (-1.6, 1.6)), (1.0, 3.0, (0.0, 0.0))])
def test_augmented_pose_targets_follow_the_augmented_image(synthetic_root, fake_model, scale,
                                                           rotation_deg, shift):
    """The model posed with the moved targets lands where the augmentation moved the points."""
    from cpem_jax.data.augment import ClipAugmentation, geometry_matrix
    from cpem_jax.geometry.camera import (DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL,
                                          crop_camera)
    from cpem_jax.geometry.pipeline import project_landmarks
    from cpem_jax.synthetic.ground_truth import load_ground_truth
    gt = load_ground_truth(synthetic_root)
    coeffs = Coefficients(identity=jnp.asarray(gt.identity), expression=jnp.asarray(gt.expression),
                          albedo=jnp.asarray(gt.albedo), lighting=jnp.asarray(gt.lighting),
                          rotation=jnp.asarray(gt.rotation),
                          translation=jnp.asarray(gt.translation))
    camera = crop_camera(SIZE)
    points = np.asarray(project_landmarks(fake_model, coeffs, camera))
    np.testing.assert_allclose(points, gt.landmarks, atol=1e-3)
    a, b = geometry_matrix(ClipAugmentation(scale=scale, rotation_deg=rotation_deg, shift=shift),
                           SIZE)
    wanted = points @ a.T + b
    rotation, translation = teacher_lib.augment_targets(
        gt.rotation, gt.translation, scale, rotation_deg, shift, SIZE, DEFAULT_FOCAL_PER_PIXEL,
        DEFAULT_DISTANCE_CM)
    moved = np.asarray(project_landmarks(fake_model, coeffs.replace(
        rotation=jnp.asarray(rotation), translation=jnp.asarray(translation)), camera))
    unmoved_error = np.abs(points - wanted).mean()
    assert unmoved_error > 0.2  # The augmentation moves the points by a fraction of a pixel+.
    error = np.abs(moved - wanted).mean()
    if scale == 1.0 and shift == (0.0, 0.0):
        assert error < 1e-3  # An in-plane rotation is exact.
    else:  # Scale and shift are exact at the model origin, first-order over the face's depth.
        assert error < 0.15 * unmoved_error
