"""Face-model loaders (ICT-FaceKit, BFM09), the .npz cache, the registry and clear errors."""
import json
import os
import shutil
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from cpem_jax.face_model import bfm, cache, ict, registry
from cpem_jax.face_model.archive import ModelSourceError
from cpem_jax.face_model.model import COEFF_GROUPS, CoeffLayout
from cpem_jax.face_model.obj_reader import ObjFormatError, triangulate
from cpem_jax.geometry import camera as cam
from cpem_jax.geometry.pipeline import project_landmarks
from cpem_jax.geometry.mesh import face_normals


def _same_model(a, b):
    for field in ("mean_shape", "id_basis", "exp_basis", "albedo_mean", "albedo_basis",
                  "triangles", "landmark_ids", "contradictory_pairs"):
        np.testing.assert_array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)))
        assert np.asarray(getattr(a, field)).dtype == np.asarray(getattr(b, field)).dtype
    assert a.expression_names == b.expression_names and a.name == b.name
    assert sorted(a.regions) == sorted(b.regions)
    for k in a.regions:
        np.testing.assert_array_equal(a.regions[k], b.regions[k])


def test_layout_splits_by_name_and_round_trips():
    layout = CoeffLayout(identity=4, expression=3, albedo=2)
    flat = jnp.arange(layout.total, dtype=jnp.float32)[None].repeat(2, 0)
    coeffs = layout.split(flat)
    assert coeffs.identity.shape == (2, 4) and coeffs.lighting.shape == (2, 3, 9)
    np.testing.assert_array_equal(coeffs.expression[0], [4, 5, 6])
    np.testing.assert_array_equal(layout.join(coeffs), flat)
    assert [g for g, _, _ in layout.spans()] == list(COEFF_GROUPS)
    with pytest.raises(ValueError, match="layout expects"):
        layout.split(jnp.zeros((layout.total + 1,)))


def test_quads_become_two_triangles_keeping_winding():
    tris = triangulate([[0, 1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(tris, [[0, 1, 2], [0, 2, 3], [4, 5, 6]])


def test_fake_ict_folder_and_zip_load_alike(fake_ict_dir, fake_ict_zip):
    a = ict.load_ict(str(fake_ict_dir), progress=False, n_albedo_modes=3)
    b = ict.load_ict(str(fake_ict_zip), progress=False, n_albedo_modes=3)
    _same_model(a, b)
    assert a.n_vertices == 6706 and a.n_identity == 3 and a.n_expression == 2
    assert a.expression_names == ("jawOpen", "eyeBlink_L")
    assert a.triangles.max() < a.n_vertices
    # Only polygons inside the narrow area survive, as two triangles per quad.
    assert a.n_triangles % 2 == 0 and a.n_triangles > 0
    assert a.albedo_basis.shape == (6706, 3, 9)


def test_convert_load_round_trip_is_exact(fake_model, tmp_path):
    path = cache.save_model(fake_model, str(tmp_path / "model"))
    assert path.endswith(".npz") and os.listdir(tmp_path) == ["model.npz"]  # No temporary left.
    _same_model(fake_model, cache.load_model(path))


def test_bad_paths_and_malformed_files_raise_clear_errors(fake_ict_dir, tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        ict.load_ict(str(tmp_path / "nope.zip"))
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ModelSourceError, match="not a readable zip"):
        ict.load_ict(str(corrupt))
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("README.md", "hello")
    with pytest.raises(ModelSourceError, match="vertex_indices.json"):
        ict.load_ict(str(empty))

    broken = tmp_path / "broken"
    shutil.copytree(fake_ict_dir, broken)
    (broken / "FaceXModel" / "vertex_indices.json").write_text("{not json")
    with pytest.raises(ModelSourceError, match="malformed"):
        ict.load_ict(str(broken), progress=False)

    missing = tmp_path / "missing"
    shutil.copytree(fake_ict_dir, missing)
    os.remove(missing / "FaceXModel" / "jawOpen.obj")
    with pytest.raises(ModelSourceError, match="jawOpen.obj"):
        ict.load_ict(str(missing), progress=False)

    short = tmp_path / "short"
    shutil.copytree(fake_ict_dir, short)
    (short / "FaceXModel" / "identity001.obj").write_text("v 0 0 0\nv 1 1 1\n")
    with pytest.raises(ModelSourceError, match="inconsistent"):
        ict.load_ict(str(short), progress=False)

    garbage = tmp_path / "garbage"
    shutil.copytree(fake_ict_dir, garbage)
    (garbage / "FaceXModel" / "eyeBlink_L.obj").write_text("v 0 zero 0\n")
    with pytest.raises(ObjFormatError, match="eyeBlink_L.obj"):
        ict.load_ict(str(garbage), progress=False)

    with pytest.raises(ValueError, match="face area"):
        ict.load_ict(str(fake_ict_dir), area="whole")

    with pytest.raises(cache.ModelCacheError, match="convert"):
        cache.load_model(str(tmp_path / "absent.npz"))
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"not an npz")
    with pytest.raises(cache.ModelCacheError, match="not a readable"):
        cache.load_model(str(bad_npz))
    partial = tmp_path / "partial.npz"
    np.savez(partial, mean_shape=np.zeros((3, 3)))
    with pytest.raises(cache.ModelCacheError, match="lacks"):
        cache.load_model(str(partial))


def test_registry_resolves_flag_then_environment(fake_model, tmp_path, monkeypatch):
    path = cache.save_model(fake_model, str(tmp_path / "m.npz"))
    monkeypatch.setenv(registry.ENV_MODEL, path)
    _same_model(registry.load_face_model(), fake_model)
    with pytest.raises(registry.FaceModelNotFound, match="does not exist"):
        registry.load_face_model(str(tmp_path / "other.npz"))
    monkeypatch.setenv(registry.ENV_MODEL, str(tmp_path / "gone.npz"))
    with pytest.raises(registry.FaceModelNotFound, match="CPEM_FACE_MODEL"):
        registry.load_face_model()


def test_registry_converts_an_archive_once_into_the_cache(fake_ict_zip, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.ENV_CACHE, str(tmp_path / "cache"))
    first = registry.load_face_model(str(fake_ict_zip))
    cached = os.listdir(tmp_path / "cache")
    assert len(cached) == 1 and cached[0].endswith(".npz")
    _same_model(first, registry.load_face_model(str(fake_ict_zip)))


def test_unknown_expression_name_lists_the_known_ones(fake_model):
    with pytest.raises(KeyError, match="known units: jawOpen, eyeBlink_L"):
        fake_model.expression_index("mouthSmileLeft")


# ---- BFM09 + expression basis, on fabricated files with the real keys and layouts ----

def _fake_bfm(tmp_path, n=200, units_scale=1.0):
    rng = np.random.default_rng(1)
    mean = rng.normal(0, 3, (n, 3))
    keypoints = np.arange(68) + 1
    mean[keypoints[36] - 1] = [-4.5, 3.0, 8.0]
    mean[keypoints[45] - 1] = [4.5, 3.0, 8.0]
    tri = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], -1) + 1
    mat = {"meanshape": (mean * units_scale).reshape(1, -1),
           "idBase": rng.normal(0, 0.1, (3 * n, 80)) * units_scale,
           "meantex": rng.uniform(0, 255, (1, 3 * n)),
           "texBase": rng.normal(0, 5, (3 * n, 80)),
           "tri": tri.astype(np.float64), "keypoints": keypoints[None].astype(np.float64),
           "point_buf": np.zeros((n, 8))}
    path = tmp_path / "BFM_model_front.mat"
    scipy.io.savemat(path, mat)
    exp = tmp_path / "exp.npz"
    np.savez(exp, exp_basis=rng.normal(0, 0.2, (3 * n, 46)) * units_scale,
             names=np.array([f"unit{i}" for i in range(46)]),
             pairs=np.array([["unit0", "unit1"], ["unit2", "absent"]]))
    return path, exp, mat


@pytest.mark.parametrize("units, scale", [("mm", 10.0), ("cm", 1.0), ("um", 1e4)])
def test_bfm_loader_reads_deep3d_layout_and_converts_units(tmp_path, units, scale):
    path, exp, mat = _fake_bfm(tmp_path, units_scale=scale)
    model = bfm.load_bfm(str(path), str(exp))
    assert model.n_vertices == 200 and model.n_identity == 80 and model.n_expression == 46
    assert model.n_albedo == 80 and model.n_triangles == 198
    np.testing.assert_allclose(model.mean_shape, mat["meanshape"].reshape(-1, 3) / scale,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.triangles, mat["tri"] - 1)
    np.testing.assert_array_equal(model.landmark_ids, np.arange(68))
    np.testing.assert_array_equal(model.contradictory_pairs, [[0, 1]])
    assert model.albedo_mean.max() <= 1.0


def test_bfm_loader_names_what_is_missing(tmp_path):
    path, exp, mat = _fake_bfm(tmp_path)
    with pytest.raises(FileNotFoundError, match="Basel Face Model"):
        bfm.load_bfm(str(tmp_path / "absent.mat"), str(exp))
    del mat["idBase"]
    scipy.io.savemat(tmp_path / "partial.mat", mat)
    with pytest.raises(bfm.BfmFormatError, match="idBase"):
        bfm.load_bfm(str(tmp_path / "partial.mat"), str(exp))
    bad_exp = tmp_path / "bad_exp.npz"
    np.savez(bad_exp, something=np.zeros(3))
    with pytest.raises(bfm.BfmFormatError, match="exp_basis"):
        bfm.load_bfm(str(path), str(bad_exp))
    wrong = tmp_path / "wrong_exp.npz"
    np.savez(wrong, exp_basis=np.zeros((7, 46)))
    with pytest.raises(bfm.BfmFormatError, match="expected"):
        bfm.load_bfm(str(path), str(wrong))


# ---- the real ICT-FaceKit archive (skipped when ../shared is absent) ----

def test_ict_counts_and_faces_front(ict_model):
    assert ict_model.n_vertices == 6706 and ict_model.n_triangles == 13120
    assert ict_model.n_identity == 100 and ict_model.n_expression == 53
    assert ict_model.contradictory_pairs.shape == (24, 2)
    normals = np.asarray(face_normals(ict_model.mean_shape, ict_model.triangles))
    assert normals[:, 2].mean() > 0.4  # Counter-clockwise from the front: normals face +z.


def test_ict_identity_modes_scale_like_standard_deviations(ict_model):
    rms = np.sqrt((np.asarray(ict_model.id_basis) ** 2).sum(1).mean(0))  # [K_id], cm
    assert 0.1 < rms[0] < 1.0  # One standard deviation of the first mode: a few mm.
    assert rms[0] > rms[10] > rms[50] > rms[99] > 0
    decades = rms.reshape(10, 10).mean(1)
    assert np.all(np.diff(decades) < 0) and decades[0] > 10 * decades[-1]


def test_ict_frontal_landmarks_follow_the_ibug_layout(ict_model):
    camera = cam.default_camera(224)
    uv = np.asarray(project_landmarks(ict_model, ict_model.layout().zeros(), camera))
    eyes, mouth, nose_tip, chin = uv[36:48], uv[48:68], uv[30], uv[8]
    assert eyes[:, 1].max() < nose_tip[1] < mouth[:, 1].min() < chin[1]  # v grows downward.
    # The subject's left (iBUG 42-47, 9-16, 22-26) is on the image right in a frontal view.
    assert uv[42:48, 0].mean() > uv[36:42, 0].mean()
    assert uv[9:17, 0].min() > uv[8, 0] > uv[0:8, 0].max()
    assert uv[22:27, 0].min() > uv[17:22, 0].max()
    np.testing.assert_allclose(uv[:, 0].mean(), 112.0, atol=3.0)  # Symmetric face, centred.
    assert np.all((uv > 0) & (uv < 224))


def test_ict_expressions_move_the_right_landmarks(ict_model):
    camera = cam.default_camera(224)
    zero = ict_model.layout().zeros()

    def landmarks(**units):
        w = np.zeros(ict_model.n_expression, np.float32)
        for k, v in units.items():
            w[ict_model.expression_index(k)] = v
        return np.asarray(project_landmarks(ict_model, zero.replace(expression=jnp.asarray(w)),
                                            camera))

    neutral = landmarks()
    opened = landmarks(jawOpen=1.0)
    assert opened[8, 1] - neutral[8, 1] > 10  # The chin drops.
    blink = landmarks(eyeBlink_R=1.0)
    lid_gap = lambda lm, top, bottom: lm[bottom, 1] - lm[top, 1]
    assert lid_gap(blink, 37, 41) < 0.3 * lid_gap(neutral, 37, 41)  # Subject's right eye shut.
    assert abs(lid_gap(blink, 43, 47) - lid_gap(neutral, 43, 47)) < 0.5  # Left eye open.
    smile = landmarks(mouthSmile_L=1.0)
    assert smile[54, 1] < neutral[54, 1] - 1 and abs(smile[48, 1] - neutral[48, 1]) < 1.0


def test_ict_real_archive_round_trip(ict_model, tmp_path):
    _same_model(ict_model, cache.load_model(cache.save_model(ict_model, str(tmp_path / "ict"))))
