"""Eyes, mouth, brows and lips of the synthetic renders (`cpem_jax.synthetic.features`)."""
import numpy as np
import pytest

SIZE = 224


@pytest.fixture(scope="module")
def painter(model):
    from cpem_jax.geometry.camera import default_camera
    from cpem_jax.synthetic import features
    painter = features.painter_for(model, default_camera(SIZE), SIZE)
    if painter is None:
        pytest.skip("the face model has no dense landmark table (not ICT)")
    return painter


def _look():
    from cpem_jax.synthetic.features import ClipFeatures
    grey = np.full(3, 0.5, np.float32)
    return ClipFeatures(iris=np.array([0.2, 0.1, 0.05], np.float32),
                        sclera=np.array([0.8, 0.78, 0.75], np.float32), pupil_fraction=0.4,
                        mouth=np.array([0.2, 0.05, 0.05], np.float32), teeth=grey, hair=0.6,
                        lips=1.0)


def _frame(model, painter, **units):
    """(painted background, exact dense points in pixels) of a frontal mean face."""
    from cpem_jax.geometry.shading import ambient_lighting
    expression = np.zeros(model.n_expression, np.float32)
    for name, value in units.items():
        expression[model.expression_names.index(name)] = value
    identity = np.zeros(model.n_identity, np.float32)
    lighting = np.asarray(ambient_lighting(1.0), np.float32)
    background = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    zero = np.zeros(3, np.float32)
    image = painter.paint(background, identity, expression, zero, zero, lighting, _look())
    return image, painter.frame_points(identity, expression, zero, zero)[2]


def _pixel(image, uv):
    u, v = np.floor(uv).astype(int)
    return image[v, u]


def test_iris_drawn_where_the_fit_puts_it_and_turned_by_the_gaze(model, painter):
    from cpem_jax.synthetic.features import LIMBUS_CENTRE, LID_RING
    image, uv = _frame(model, painter)
    for eye in (0, 1):
        centre = uv[LIMBUS_CENTRE[eye]]
        assert _pixel(image, centre).max() < 0.05                 # the pupil
        corner = uv[LID_RING[eye][0]]                              # outer corner
        sclera = _pixel(image, 0.3 * centre + 0.7 * corner)
        assert sclera.min() > 0.4
    turned, uv_turned = _frame(model, painter, eyeLookOut_L=1.0)
    rest, moved = uv[LIMBUS_CENTRE[0]], uv_turned[LIMBUS_CENTRE[0]]
    assert moved[0] - rest[0] > 4.0                                # toward +x: image right
    assert _pixel(turned, moved).max() < 0.05
    assert _pixel(turned, rest).max() > 0.1                        # no pupil left there
    # The other eye does not move.
    np.testing.assert_allclose(uv_turned[LIMBUS_CENTRE[1]], uv[LIMBUS_CENTRE[1]], atol=1e-6)


def test_open_mouth_shows_a_dark_interior_and_teeth(model, painter):
    image, uv = _frame(model, painter, jawOpen=1.0)
    upper, lower = uv[13], uv[14]          # inner lip midpoints
    assert lower[1] - upper[1] > 8.0
    middle = _pixel(image, 0.5 * (upper + lower))
    assert middle.max() < 0.25 and middle[0] > middle[2]           # dark red, not the grey
    below_upper_lip = _pixel(image, upper + np.array([0.0, 1.5]))
    assert below_upper_lip.min() > 0.3                              # teeth
    # A closed mouth paints at most a thin line (the lips of the mesh cover it).
    closed, _ = _frame(model, painter)
    band = slice(int(upper[1]) - 15, int(upper[1]) + 25)
    painted = lambda im: int(np.any(im[band] != 0.5, axis=-1).sum())
    assert painted(closed) < 0.2 * painted(image)


def test_feature_weights_sit_on_brows_lids_and_lips(model, painter):
    from cpem_jax.face_model import dense_landmarks as dl
    from cpem_jax.synthetic.features import BROW_LOWER, BROW_UPPER, feature_weights
    points = np.asarray(dl.dense_points(painter.dense, np.zeros(model.n_identity, np.float32),
                                        np.zeros(model.n_expression, np.float32)), np.float64)
    # Weights at points: the mean shape plus the probes as extra "vertices".
    brow_mid = 0.5 * (points[BROW_UPPER[0][2]] + points[BROW_LOWER[0][2]])
    lip_mid = 0.5 * (points[0] + points[13])
    probes = np.stack([brow_mid, lip_mid, points[1], points[168], points[152]])
    hair, lips = feature_weights(points, probes)
    np.testing.assert_allclose(hair[:2], [1.0, 0.0])
    np.testing.assert_allclose(lips[:2], [0.0, 1.0])
    assert np.all(hair[2:] == 0.0) and np.all(lips[2:] == 0.0)     # nose tip, nose bridge, chin


def test_features_change_the_pixels_not_the_truth_or_the_mask(model, tmp_path):
    from cpem_jax.io import read_image
    from cpem_jax.synthetic.generator import SynthConfig, generate_split
    config = dict(n_clips=1, n_frames=2, image_size=96, seed=5, split="test", batch_size=2)
    plain = generate_split(model, str(tmp_path / "plain"), SynthConfig(features=False, **config),
                           progress=False)
    drawn = generate_split(model, str(tmp_path / "drawn"), SynthConfig(**config),
                           progress=False)
    for name in ("identity", "albedo", "expression", "rotation", "translation", "lighting",
                 "landmarks", "blur_px", "noise"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(drawn, name))
    frame = "test00000/000/test00000_000"
    masks = [read_image(str(tmp_path / s / "face_mask" / (frame + ".png"))) for s in
             ("plain", "drawn")]
    np.testing.assert_array_equal(masks[0], masks[1])
    images = [read_image(str(tmp_path / s / "data" / (frame + ".jpg"))).astype(np.float32)
              for s in ("plain", "drawn")]
    assert np.abs(images[0] - images[1]).mean() > 0.5


def test_synth_cli_plain_faces_flag(model, tmp_path):
    import json
    from cpem_jax.cli.main import main
    out = tmp_path / "plain"
    assert main(["synth", "--out", str(out), "--split", "test", "--clips", "1", "--frames", "1",
                 "--size", "64", "--batch-size", "1", "--plain-faces"]) == 0
    with open(out / "test" / "synth_config.json") as f:
        assert json.load(f)["features"] is False


def test_signed_polygon_distance_matches_opencv():
    """The vectorised even-odd signed distance agrees with cv2.pointPolygonTest."""
    import cv2
    from cpem_jax.synthetic.features import _signed_distance_2d
    angles = np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)
    radius = 1.0 + 0.4 * np.sin(3.0 * angles)                       # a non-convex star
    polygon = np.stack([radius * np.cos(angles), 0.6 * radius * np.sin(angles)], axis=-1)
    points = np.random.default_rng(0).uniform(-1.6, 1.6, size=(400, 2))
    ours = _signed_distance_2d(points, polygon)
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    theirs = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True)
                       for x, y in points])
    assert (ours > 0).sum() > 50 and (ours < 0).sum() > 50
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
