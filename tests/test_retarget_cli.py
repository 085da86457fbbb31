"""`cpem-jax retarget` end to end: every output from a known track, and the error paths.

The estimator is replaced by one returning a known VideoEstimate (the fitter and the network
have their own tests), so these tests exercise the command's wiring and outputs; one test runs
the real fit on a shared image when ../shared is present.
"""
import csv
import json
import os

import imageio.v2 as imageio
import numpy as np
import pygltflib
import pytest

from cpem_jax.cli.main import main
from cpem_jax.export.arkit import ARKIT_NAMES
from cpem_jax.estimation import VideoEstimate
from cpem_jax.export.coefficients import load_coefficients
from cpem_jax.export.gltf import write_glb
from cpem_jax.export.livelink import LIVELINK_HEADER
from cpem_jax.geometry.camera import crop_camera
from cpem_jax.retarget import pipeline as pipeline_module

from conftest import shared_path

# The test's own video writer forks ffmpeg after JAX started its threads (harmless: it execs).
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")

# ICT-style units: sided halves that ARKit merges, plus one unit per kind of match.
UNITS = ("browInnerUp_L", "browInnerUp_R", "cheekPuff_L", "cheekPuff_R", "eyeBlink_L",
         "eyeBlink_R", "jawOpen", "mouthSmile_L")
N_FRAMES = 7
NO_FACE = 3  # index of the frame without a face
SIZE = 32  # crop and preview size: small keeps the renders fast


@pytest.fixture(scope="module")
def unit_model(fake_model):
    """The fake ICT model with 8 ICT-named units (random deltas)."""
    rng = np.random.default_rng(1)
    basis = rng.normal(0, 0.3, fake_model.exp_basis.shape[:2] + (len(UNITS),)).astype(np.float32)
    return fake_model.replace(exp_basis=basis, expression_names=UNITS)


@pytest.fixture(scope="module")
def model_npz(unit_model, tmp_path_factory):
    from cpem_jax.face_model import cache
    path = str(tmp_path_factory.mktemp("model") / "units.npz")
    cache.save_model(unit_model, path)
    return path


def known_estimate(model) -> VideoEstimate:
    """N_FRAMES frames of noisy expressions and pose; frame NO_FACE has no face."""
    rng = np.random.default_rng(0)
    n, k = N_FRAMES, len(UNITS)
    found = np.ones(n, bool)
    found[NO_FACE] = False
    m = int(found.sum())
    lighting = np.zeros((m, 3, 9), np.float32)
    lighting[:, :, 0] = 0.8
    crops = np.full((n, SIZE, SIZE, 3), 128, np.uint8)
    crops[NO_FACE] = 90  # Where no face: the whole frame letterboxed (grey 90 in tiny_video).
    return VideoEstimate(
        frame_index=np.arange(n), timestamp_s=np.arange(n) / 25.0, face_found=found,
        crop_affine=np.tile(np.eye(2, 3)[None], (n, 1, 1)),
        landmarks_detected=np.zeros((n, 68, 2), np.float32),
        identity=np.zeros(model.n_identity, np.float32),
        albedo=np.zeros(model.n_albedo, np.float32),
        expression=rng.uniform(0.1, 0.9, (m, k)).astype(np.float32),
        rotation=rng.normal(0, 0.1, (m, 3)).astype(np.float32),
        translation=rng.normal(0, 1.0, (m, 3)).astype(np.float32), lighting=lighting,
        landmarks_fitted=np.zeros((m, 68, 2), np.float32), camera=crop_camera(SIZE),
        unit_names=UNITS, fps=25.0, face_model=model.name, method="fit", crops=crops,
        timings={"detect_crop_s": 0.5, "estimate_s": 2.0})


@pytest.fixture
def fake_estimator(monkeypatch, unit_model):
    """Replaces the estimator; returns the estimate it hands out and the calls it received."""
    estimate = known_estimate(unit_model)
    calls = []

    class FakeEstimator:
        model = unit_model

        def __init__(self, method, fit_config=None, face_model=None, checkpoint=None,
                     landmarker=None):
            self.options = dict(method=method, fit_config=fit_config)

        def __call__(self, source, face=0, max_frames=None, progress=True):
            calls.append(dict(source=source, face=face, max_frames=max_frames, **self.options))
            return estimate

    monkeypatch.setattr(pipeline_module, "make_estimator", FakeEstimator)
    monkeypatch.setattr(pipeline_module, "default_landmarker", lambda name="auto": None)
    return estimate, calls


def build_avatar(path, names=("browInnerUp", "EyeBlink_L", "eyeBlinkRight", "jawOpen",
                              "customThing"), translation=(0.0, 1.5, 0.0)):
    """A quad with ARKit/ICT-named morph targets under a translated 'Head' parent node."""
    vertices = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    deltas = np.random.default_rng(3).normal(size=(len(names), 4, 3)).astype(np.float32)
    write_glb(path, vertices, triangles, deltas, names)
    gltf = pygltflib.GLTF2().load(str(path))
    gltf.nodes.append(pygltflib.Node(name="Head", children=[0], translation=list(translation)))
    gltf.scenes[0].nodes = [1]
    gltf.save_binary(str(path))
    return vertices, deltas


def tiny_video(path):
    with imageio.get_writer(str(path), fps=25, codec="libx264", macro_block_size=1) as writer:
        for _ in range(N_FRAMES):
            writer.append_data(np.full((48, 48, 3), 90, np.uint8))


def summary_of(out):
    return json.loads((out / "summary.json").read_text())


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def animation_weights(gltf, node=0):
    """The weights channel of the first animation on `node` -> [keys, T]."""
    from cpem_jax.export.gltf_io import AccessorReader as _Reader
    reader = _Reader(gltf, ".")
    animation = gltf.animations[0]
    for channel in animation.channels:
        if channel.target.path == "weights" and channel.target.node == node:
            sampler = animation.samplers[channel.sampler]
            keys = reader.read(sampler.input)[:, 0]
            return keys, reader.read(sampler.output).reshape(len(keys), -1)
    raise AssertionError("no weights channel")


def test_every_output_from_a_known_track(fake_estimator, tmp_path, capsys):
    track, calls = fake_estimator
    video, out, avatar = tmp_path / "in.mp4", tmp_path / "out", tmp_path / "hero.glb"
    tiny_video(video)
    build_avatar(avatar)
    status = main(["retarget", str(video), "-o", str(out), "--avatar", str(avatar),
                   "--preview-size", str(SIZE), "--face", "1", "--max-frames", "50",
                   "--iterations-scale", "0.5", "--quiet"])
    assert status == 0
    assert calls[0]["face"] == 1 and calls[0]["max_frames"] == 50 and calls[0]["method"] == "fit"
    assert calls[0]["fit_config"].identity_landmark_iters == 150  # 300 * 0.5
    names = sorted(os.listdir(out))
    assert names == sorted(["coefficients.npz", "coefficients.json", "blendshapes.csv",
                            "blendshapes.json", "livelink.csv", "face.glb",
                            "hero_animated.glb", "preview.mp4", "summary.json"])
    printed = capsys.readouterr().out
    assert "lacks" in printed and "hero/customThing" not in printed  # mesh is named "face"
    assert "face/customThing" in printed

    # Coefficients: the estimator's track, exactly.
    saved = load_coefficients(str(out / "coefficients.npz"))
    np.testing.assert_array_equal(saved.face_found, track.face_found)
    for name in ("expression", "rotation", "translation", "lighting", "identity", "albedo"):
        np.testing.assert_array_equal(getattr(saved, name), getattr(track, name))

    # CSV: fixed columns, ARKit merge rules, face flag, no NaN.
    header, rows = read_csv(out / "blendshapes.csv")
    assert header == ["frame", "time", "face_found", *ARKIT_NAMES, "head_pitch", "head_yaw",
                      "head_roll", "head_tx", "head_ty", "head_tz"]
    assert len(rows) == N_FRAMES
    values = np.array([[float(v) for v in r] for r in rows])
    assert np.all(np.isfinite(values))
    col = {name: values[:, i] for i, name in enumerate(header)}
    np.testing.assert_array_equal(col["face_found"], track.face_found.astype(float))
    blob = json.loads((out / "blendshapes.json").read_text())
    units = np.array([f["units"] for f in blob["frames"]])
    unit = {u: units[:, k] for k, u in enumerate(blob["unit_names"])}
    np.testing.assert_allclose(col["browInnerUp"], (unit["browInnerUp_L"] + unit["browInnerUp_R"])
                               / 2, atol=2e-6)
    np.testing.assert_allclose(col["cheekPuff"], (unit["cheekPuff_L"] + unit["cheekPuff_R"]) / 2,
                               atol=2e-6)
    np.testing.assert_allclose(col["eyeBlinkLeft"], unit["eyeBlink_L"], atol=2e-6)
    assert np.all(col["tongueOut"] == 0) and np.all(col["mouthSmileRight"] == 0)
    assert "tongueOut" in blob["missing_arkit"]
    assert np.all(values[NO_FACE, 3:] == 0)  # missing="zero" by default

    # JSON: smoothed values plus the raw ones, which are the estimator's for frames with a face.
    raw = np.array([f["raw"]["units"] for f in blob["frames"]])
    found = track.face_found
    np.testing.assert_allclose(raw[found], track.expression, atol=1e-6)
    assert np.abs(units[found] - raw[found]).max() > 1e-3  # smoothing changed something
    assert blob["smoothing"]["enabled"] is True
    assert [f["face_found"] for f in blob["frames"]] == found.tolist()

    # Live Link: the app's column layout at its 60 fps: 0.24 s of video -> 15 rows, of which
    # rows 0 and 12 (0 and 0.2 s) fall on frames 0 and 5.
    ll_header, ll_rows = read_csv(out / "livelink.csv")
    assert tuple(ll_header) == LIVELINK_HEADER and len(ll_rows) == 15
    ll = np.array([[float(v) for v in r[1:]] for r in ll_rows])
    np.testing.assert_allclose(ll[[0, 12], ll_header.index("BrowInnerUp") - 1],
                               col["browInnerUp"][[0, 5]], atol=2e-6)
    assert ll_rows[1][0] == "00:00:00:01.000" and summary_of(out)["livelink_rows"] == 15

    # glTF face: read back with pygltflib, the 52 ARKit targets, one key per frame, the rate.
    gltf = pygltflib.GLTF2.load(str(out / "face.glb"))
    assert len(gltf.meshes[0].primitives[0].targets) == 52
    assert gltf.meshes[0].extras["targetNames"] == list(ARKIT_NAMES)
    keys, weights = animation_weights(gltf)
    np.testing.assert_allclose(keys, np.arange(N_FRAMES) / 25.0, atol=1e-6)
    arkit = np.array([[float(v) for v in r[3:55]] for r in rows])
    np.testing.assert_allclose(weights, arkit, atol=1e-5)  # the CSV's merged weights
    paths = {c.target.path for c in gltf.animations[0].channels}
    assert paths == {"weights", "rotation"}
    assert gltf.animations[0].extras["fps"] == 25.0 and gltf.asset.extras["fps"] == 25.0

    # The avatar: its targets driven by name, the report in summary.json.
    summary = json.loads((out / "summary.json").read_text())
    report = summary["avatar"]
    assert report["unused_targets"] == ["face/customThing"]
    assert set(report["missing_units"]) == {"cheekPuff_L", "cheekPuff_R", "mouthSmile_L"}
    animated = pygltflib.GLTF2.load(str(out / "hero_animated.glb"))
    _, avatar_weights = animation_weights(animated)
    np.testing.assert_allclose(avatar_weights[:, 0], col["browInnerUp"], atol=2e-6)
    np.testing.assert_allclose(avatar_weights[:, 1], unit["eyeBlink_L"], atol=2e-6)
    np.testing.assert_allclose(avatar_weights[:, 3], unit["jawOpen"], atol=2e-6)
    assert np.all(avatar_weights[:, 4] == 0)

    # Preview: one frame per input frame, three panels.
    frames = imageio.mimread(str(out / "preview.mp4"))
    assert len(frames) == N_FRAMES and frames[0].shape == (SIZE, 3 * SIZE, 3)
    assert frames[0][:, 2 * SIZE:].std() > 5  # the avatar panel shows something
    # No face: the whole input frame (grey 90) instead of the empty crop.
    assert 70 < np.median(frames[NO_FACE][SIZE // 2:, :SIZE]) < 110

    assert summary["frames"] == N_FRAMES and summary["frames_with_face"] == N_FRAMES - 1
    assert summary["phases"]["estimate"]["frames_per_second"] == pytest.approx(3.0)
    assert summary["outputs"]["glb"]["face.glb"] == os.path.getsize(out / "face.glb")
    assert summary["glb_check"] == {"targets": 52, "keyframes": N_FRAMES, "vertices": 6706,
                                    "names": "arkit"}
    assert summary["failures"] == {}


def test_output_subset_no_smoothing_and_hold(fake_estimator, tmp_path):
    track, _ = fake_estimator
    image, out = tmp_path / "face.png", tmp_path / "out"
    imageio.imwrite(str(image), np.full((40, 40), 100, np.uint8))  # grayscale is fine
    assert main(["retarget", str(image), "-o", str(out), "--outputs", "csv,json",
                 "--no-smoothing", "--missing", "hold", "--quiet"]) == 0
    assert sorted(os.listdir(out)) == ["blendshapes.csv", "blendshapes.json", "summary.json"]
    blob = json.loads((out / "blendshapes.json").read_text())
    units = np.array([f["units"] for f in blob["frames"]])
    found = track.face_found
    np.testing.assert_allclose(units[found], track.expression, atol=1e-6)
    np.testing.assert_allclose(units[NO_FACE], units[NO_FACE - 1])  # held
    assert blob["smoothing"]["enabled"] is False


def test_avatar_without_morph_targets_keeps_the_other_outputs(fake_estimator, tmp_path, capsys):
    video, out, avatar = tmp_path / "in.mp4", tmp_path / "out", tmp_path / "statue.glb"
    tiny_video(video)
    build_avatar(avatar)
    gltf = pygltflib.GLTF2.load(str(avatar))
    for primitive in gltf.meshes[0].primitives:
        primitive.targets = []
    gltf.meshes[0].weights, gltf.meshes[0].extras = None, {}
    gltf.save_binary(str(avatar))
    status = main(["retarget", str(video), "-o", str(out), "--avatar", str(avatar),
                   "--preview-size", str(SIZE), "--quiet"])
    assert status == 1
    captured = capsys.readouterr()
    assert "avatar not written" in captured.err and "no morph targets" in captured.err
    assert not (out / "statue_animated.glb").exists()
    for name in ("blendshapes.csv", "blendshapes.json", "livelink.csv", "face.glb",
                 "preview.mp4"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert "no morph targets" in summary["failures"]["avatar"]
    frames = imageio.mimread(str(out / "preview.mp4"))
    assert frames[0][:, 2 * SIZE:].std() > 5  # the rigid avatar is still drawn


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    return err[-1]


def test_no_face_in_a_blank_image_exits_2_with_one_line(model_npz, tmp_path, capsys):
    image = tmp_path / "blank.png"
    imageio.imwrite(str(image), np.full((120, 160, 3), 200, np.uint8))
    assert main(["retarget", str(image), "-o", str(tmp_path / "out"), "--face-model",
                 model_npz, "--quiet"]) == 2
    line = _error_line(capsys)
    assert line.startswith("cpem-jax: error: no face found in any of the 1 frames")
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("kind,expected", [
    ("corrupt_video", "cannot be opened as a video"),
    ("tiny_image", "smaller than the 32 px minimum"),
    ("missing_input", "does not exist"),
    ("missing_avatar", "avatar file"),
    ("net_missing_checkpoint", "not found; pass --checkpoint"),
    ("bad_outputs", "--outputs"),
])
def test_error_paths_exit_2(kind, expected, model_npz, tmp_path, capsys):
    video = tmp_path / "in.mp4"
    tiny_video(video)
    args = [str(video)]
    if kind == "corrupt_video":
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(video.read_bytes()[:300])  # the header only, cut off
        args = [str(broken)]
    elif kind == "tiny_image":
        tiny = tmp_path / "tiny.png"
        imageio.imwrite(str(tiny), np.zeros((16, 16, 3), np.uint8))
        args = [str(tiny)]
    elif kind == "missing_input":
        args = [str(tmp_path / "nothing.mp4")]
    elif kind == "missing_avatar":
        args += ["--avatar", str(tmp_path / "nobody.glb")]
    elif kind == "net_missing_checkpoint":
        args += ["--method", "net", "--checkpoint", str(tmp_path / "none.msgpack")]
    elif kind == "bad_outputs":
        args += ["--outputs", "csv,fbx"]
    status = main(["retarget", *args, "-o", str(tmp_path / "out"), "--face-model", model_npz,
                   "--quiet"])
    assert status == 2
    line = _error_line(capsys)
    assert line.startswith("cpem-jax: error:") and expected in line


def test_webcam_without_a_camera_exits_2(tmp_path, capsys):
    assert main(["retarget", "--webcam", "57", "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert "webcam 57 cannot be opened" in _error_line(capsys)


def test_real_fit_on_a_shared_image(tmp_path):
    """The real estimator on one photo (fast settings: landmarks only, few iterations)."""
    image = shared_path("data", "images", "JianzhuGuo.jpg")
    shared_path("assets", "ICT-FaceKit-master.zip")
    out = tmp_path / "out"
    assert main(["retarget", image, "-o", str(out), "--outputs", "csv,json,livelink",
                 "--no-photometric", "--iterations-scale", "0.05", "--quiet"]) == 0
    header, rows = read_csv(out / "blendshapes.csv")
    assert len(rows) == 1 and rows[0][2] == "1"
    values = np.array([float(v) for v in rows[0][3:]])
    assert np.all(np.isfinite(values)) and values[:52].max() <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_with_face"] == 1 and summary["method"] == "fit"


def test_glb_unit_names_and_livelink_rate_options(fake_estimator, tmp_path):
    video, out = tmp_path / "in.mp4", tmp_path / "out"
    tiny_video(video)
    assert main(["retarget", str(video), "-o", str(out), "--outputs", "glb,livelink",
                 "--glb-names", "units", "--livelink-fps", "30", "--quiet"]) == 0
    gltf = pygltflib.GLTF2.load(str(out / "face.glb"))
    assert gltf.meshes[0].extras["targetNames"] == list(UNITS)
    _, weights = animation_weights(gltf)
    raw = summary_of(out)
    assert raw["glb_check"]["names"] == "units" and raw["livelink_fps"] == 30.0
    _, rows = read_csv(out / "livelink.csv")
    assert len(rows) == 8 and rows[-1][0] == "00:00:00:07.000"  # 0.24 s at 30 fps
    assert weights.shape == (N_FRAMES, len(UNITS))
    assert main(["retarget", str(video), "-o", str(out), "--livelink-fps", "0"]) == 2
