"""Similarity alignment, point-to-plane error, scan readers, MICC and FaceWarehouse protocols.

The synthetic "face" is an analytic height field (cm) with a nose bump and asymmetric terms, so
the alignment is well posed; the scan samples it densely (mm), is moved by a random similarity
and noised; the prediction is a coarser grid mesh of the same surface.
"""
import struct

import cv2
import numpy as np
import pytest

from cpem_jax.evaluation import facewarehouse, geometry_error, micc, scan_io

NOISE_MM = 0.3


def _height(x, y, nose=2.5):
    return (10.0 - 0.03 * x ** 2 - 0.015 * y ** 2 + nose * np.exp(-(x ** 2 + (y + 1) ** 2) / 4)
            + 0.3 * np.tanh(y) + 0.05 * x)


def _grid_mesh(nx=60, ny=75, nose=2.5):
    xs, ys = np.meshgrid(np.linspace(-7, 7, nx), np.linspace(-9, 9, ny))
    verts = np.stack([xs, ys, _height(xs, ys, nose)], -1).reshape(-1, 3)
    a = (np.arange(ny - 1)[:, None] * nx + np.arange(nx - 1)[None, :]).ravel()
    tris = np.concatenate([np.stack([a, a + 1, a + nx + 1], 1),
                           np.stack([a, a + nx + 1, a + nx], 1)])
    return verts, tris.astype(np.int64)


def _rotation(rng, max_deg):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(0.5, 1.0) * max_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.fixture(scope="module")
def surfaces():
    rng = np.random.default_rng(0)
    pred, tris = _grid_mesh()
    nose_index = int(np.argmax(pred[:, 2]))
    xy = np.stack([rng.uniform(-6.5, 6.5, 6000), rng.uniform(-8.5, 8.5, 6000)], 1)
    scan_cm = np.concatenate([xy, _height(xy[:, 0], xy[:, 1])[:, None]], 1)
    return {"pred": pred, "tris": tris, "nose_index": nose_index, "scan_mm": scan_cm * 10.0,
            "xy": xy}


def _moved_scan(surfaces, rng, max_deg, noise=NOISE_MM):
    sim = geometry_error.Similarity(rng.uniform(0.85, 1.15), _rotation(rng, max_deg),
                                    rng.uniform(-50, 50, 3))
    scan = sim.apply(surfaces["scan_mm"]) + rng.normal(0, noise, surfaces["scan_mm"].shape)
    return scan, sim


def test_umeyama_recovers_an_exact_similarity():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(30, 3))
    sim = geometry_error.Similarity(1.7, _rotation(rng, 170), np.array([1.0, -2.0, 3.0]))
    est = geometry_error.umeyama(pts, sim.apply(pts))
    assert est.scale == pytest.approx(1.7)
    np.testing.assert_allclose(est.rotation, sim.rotation, atol=1e-9)
    np.testing.assert_allclose(est.translation, sim.translation, atol=1e-9)
    assert np.linalg.det(est.rotation) == pytest.approx(1.0)
    mirrored = sim.apply(pts) * np.array([1.0, 1.0, -1.0])
    assert np.linalg.det(geometry_error.umeyama(pts, mirrored).rotation) == pytest.approx(1.0)


def test_point_to_plane_on_a_plane():
    xs, ys = np.meshgrid(np.arange(10.0), np.arange(10.0))
    plane = np.stack([xs.ravel(), ys.ravel(), np.zeros(100)], 1)
    normals = np.tile([0.0, 0.0, 1.0], (100, 1))
    q = np.array([[3.2, 4.4, 0.7], [5.0, 5.0, -2.0]])
    np.testing.assert_allclose(geometry_error.point_to_plane(q, plane, normals), [0.7, 2.0])


def test_error_after_alignment_is_the_noise_level(surfaces):
    rng = np.random.default_rng(2)
    scan, sim = _moved_scan(surfaces, rng, max_deg=10)
    res = geometry_error.scan_error(surfaces["pred"], surfaces["tris"], scan,
                                    surfaces["nose_index"])
    assert 0.85 * NOISE_MM < res["rmse_mm"] < 1.15 * NOISE_MM
    assert res["scale"] == pytest.approx(sim.scale, rel=0.005)  # After the cm -> mm conversion.
    assert res["n_points"] < len(scan)  # The 95 mm crop removed the far corners.


def test_deformed_prediction_scores_worse(surfaces):
    rng = np.random.default_rng(3)
    scan, _ = _moved_scan(surfaces, rng, max_deg=10)
    good = geometry_error.scan_error(surfaces["pred"], surfaces["tris"], scan,
                                     surfaces["nose_index"])
    wrong, _ = _grid_mesh(nose=3.5)  # The nose 10 mm too high.
    bad = geometry_error.scan_error(wrong, surfaces["tris"], scan, surfaces["nose_index"])
    assert bad["rmse_mm"] > good["rmse_mm"] + 0.3


def test_landmark_initialisation_handles_large_rotations(surfaces):
    rng = np.random.default_rng(4)
    scan, sim = _moved_scan(surfaces, rng, max_deg=150)
    pred = surfaces["pred"]
    ids = np.array([surfaces["nose_index"], 0, 59, len(pred) - 1, len(pred) - 60, 2000])
    scan_lm = sim.apply(pred[ids] * 10.0)
    tip = sim.apply(pred[surfaces["nose_index"]] * 10.0)
    res = geometry_error.scan_error(pred, surfaces["tris"], scan, surfaces["nose_index"],
                                    scan_nose_tip=tip, landmark_pairs=(ids, scan_lm))
    assert res["rmse_mm"] < 1.15 * NOISE_MM
    # Without the landmarks (nose-tip init, identity rotation) ICP is lost.
    lost = geometry_error.scan_error(pred, surfaces["tris"], scan, surfaces["nose_index"],
                                     scan_nose_tip=tip)
    assert lost["rmse_mm"] > 3 * res["rmse_mm"]


def _tiny_mesh():
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.5]], np.float64)
    return v, [[0, 1, 2, 3]]


def test_scan_readers_agree(tmp_path):
    v, polys = _tiny_mesh()
    want_tris = np.array([[0, 1, 2], [0, 2, 3]])
    obj = tmp_path / "m.obj"
    obj.write_text("".join(f"v {a} {b} {c}\n" for a, b, c in v) + "f 1/1 2/2 3/3 4/4\n")
    ply_a = tmp_path / "a.ply"
    ply_a.write_text("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y"
                     "\nproperty float z\nproperty uchar red\nelement face 1\n"
                     "property list uchar int vertex_indices\nend_header\n"
                     + "".join(f"{a} {b} {c} 7\n" for a, b, c in v) + "4 0 1 2 3\n")
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty double x\n"
              "property double y\nproperty double z\nelement face 1\n"
              "property list uchar int vertex_indices\nend_header\n").encode()
    body = b"".join(struct.pack("<3d", *p) for p in v) + struct.pack("<B4i", 4, 0, 1, 2, 3)
    ply_b = tmp_path / "b.ply"
    ply_b.write_bytes(header + body)
    wrl = tmp_path / "m.wrl"
    wrl.write_text("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet {\n coord Coordinate { point"
                   " [ " + ", ".join(f"{a} {b} {c}" for a, b, c in v) + " ] }\n"
                   " texCoord TextureCoordinate { point [ 0 0, 1 0, 1 1, 0 1 ] }\n"
                   " coordIndex [ 0, 1, 2, 3, -1 ]\n texCoordIndex [ 3, 2, 1, 0, -1 ] } }\n")
    for path in (obj, ply_a, ply_b, wrl):
        verts, tris = scan_io.read_scan(str(path))
        np.testing.assert_allclose(verts, v, err_msg=str(path))
        np.testing.assert_array_equal(tris, want_tris, err_msg=str(path))


def test_scan_reader_errors(tmp_path):
    bad = tmp_path / "x.stl"
    bad.write_text("solid")
    with pytest.raises(scan_io.ScanFormatError, match="unsupported"):
        scan_io.read_scan(str(bad))
    ply = tmp_path / "x.ply"
    ply.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")
    with pytest.raises(scan_io.ScanFormatError, match="x, y, z"):
        scan_io.read_scan(str(ply))


def _write_obj_points(path, pts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"v {a:.5f} {b:.5f} {c:.5f}\n" for a, b, c in pts))


def test_evaluate_micc_on_a_fabricated_subject(tmp_path, surfaces):
    rng = np.random.default_rng(5)
    scan, _ = _moved_scan(surfaces, rng, max_deg=8)
    subject = tmp_path / "subject_01"
    _write_obj_points(subject / "Model" / "frontal1" / "obj" / "scan.obj", scan)
    for rel in ("Video/Indoor-Cooperative/a.avi", "Video/PTZ-Indoor/b.avi",
                "Video/PTZ-Outdoor/c.avi", "Video/misc/d.avi"):
        (subject / rel).parent.mkdir(parents=True, exist_ok=True)
        (subject / rel).write_bytes(b"")
    wrong, _ = _grid_mesh(nose=3.5)

    def predict(video):
        return wrong if "Outdoor" in video else surfaces["pred"]

    res = micc.evaluate_micc(predict, str(tmp_path), surfaces["tris"], surfaces["nose_index"])
    conds = res["conditions"]
    assert [conds[c]["count"] for c in micc.CONDITIONS] == [1, 1, 1]
    assert conds["cooperative"]["rmse_mm_mean"] < 1.15 * NOISE_MM
    assert conds["outdoor"]["rmse_mm_mean"] > conds["indoor"]["rmse_mm_mean"] + 0.3
    assert len(res["skipped_videos"]) == 1 and res["skipped_videos"][0].endswith("d.avi")


def test_micc_missing_scan_raises(tmp_path):
    (tmp_path / "subject_02" / "Video").mkdir(parents=True)
    with pytest.raises(micc.MiccFormatError, match="no scan"):
        micc.find_subjects(str(tmp_path))


def test_evaluate_facewarehouse(tmp_path, surfaces):
    rng = np.random.default_rng(6)
    scan, _ = _moved_scan(surfaces, rng, max_deg=8)
    tester = tmp_path / "Tester_1"
    _write_obj_points(tester / "Blendshape" / "shape_0.obj", scan / 100.0)  # 1 unit = 100 mm.
    (tester / "TrainingPose").mkdir(parents=True)
    for k in (0, 1):
        cv2.imwrite(str(tester / "TrainingPose" / f"pose_{k}.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="gt_unit_to_mm"):
        facewarehouse.evaluate_facewarehouse(lambda p: surfaces["pred"], str(tmp_path),
                                             surfaces["tris"], surfaces["nose_index"], None)
    res = facewarehouse.evaluate_facewarehouse(lambda p: surfaces["pred"], str(tmp_path),
                                               surfaces["tris"], surfaces["nose_index"], 100.0)
    assert res["conditions"]["all"]["count"] == 1
    assert res["conditions"]["all"]["rmse_mm_mean"] < 1.15 * NOISE_MM
    assert len(res["skipped_images"]) == 1
