"""The preview's avatar path: per-frame weights of a read avatar, and rendering a MorphMesh.

Reading glTF into a MorphMesh is tested with the avatar code, in test_export_avatar.py.
"""
import numpy as np
import pytest

from cpem_jax.export import load_morph_mesh, retarget_avatar, write_glb
from cpem_jax.export.schema import FrameTrack
from cpem_jax.retarget.mesh_render import frame_mesh, render_mesh
from cpem_jax.retarget.preview import avatar_weights

QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
QUAD_TRIANGLES = np.array([[0, 1, 2], [0, 2, 3]], np.int32)


def test_reads_the_retargeted_file_and_weights_follow_the_report(tmp_path):
    path, out = tmp_path / "a.glb", tmp_path / "animated.glb"
    write_glb(path, QUAD * 100, QUAD_TRIANGLES, np.ones((3, 4, 3)),
              ("jawOpen", "browInnerUp", "other"))
    units = ("jawOpen", "browInnerUp_L", "browInnerUp_R")
    expression = np.array([[0.2, 0.4, 0.8], [0.6, 0.0, 1.0]], np.float32)
    track = FrameTrack.from_estimates(expression, np.zeros((2, 3)), np.zeros((2, 3)), units, 30.0)
    report = retarget_avatar(path, track, out)
    mesh = load_morph_mesh(out)  # data-URI buffers, an added animation
    np.testing.assert_allclose(mesh.vertices, load_morph_mesh(path).vertices)
    weights = avatar_weights(mesh, report, track)
    np.testing.assert_allclose(weights, [[0.2, 0.6, 0.0], [0.6, 0.5, 0.0]], atol=1e-6)
    np.testing.assert_allclose(avatar_weights(mesh, None, track), weights)  # same matching


def test_render_frames_the_mesh_and_turns_it():
    framing = frame_mesh(QUAD)
    poses = np.stack([QUAD, QUAD, QUAD])
    rotation = np.array([[0, 0, 0], [0, np.pi / 2, 0], [0, 0.8, 0]], np.float32)
    images = render_mesh(poses, QUAD_TRIANGLES, framing, rotation, size=40,
                         background=(0.0, 0.0, 0.0))
    assert images.shape == (3, 40, 40, 3)
    covered = images.sum(-1) > 0
    # The quad's half diagonal fills 92 % of the half image: side = 0.92 * 40 / sqrt(2) px.
    side = 0.92 * 40 / np.sqrt(2)
    assert covered[0].sum() == pytest.approx(side ** 2, rel=0.1)
    assert covered[0, 20, 20] and not covered[0, 1, 1]
    assert covered[1].sum() < 0.1 * covered[0].sum()  # edge-on after a quarter turn
    # Lambert: the turned quad is darker than the one facing the camera.
    assert images[2][covered[2]].mean() < images[0][covered[0]].mean()


def _box(low, high):
    """An axis-aligned box: 8 vertices [8, 3], 12 triangles [12, 3]."""
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1])
                        for z in (low[2], high[2])], np.float32)
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    triangles = [t for a, b, c, d in faces for t in ((a, b, c), (a, c, d))]
    return corners, np.array(triangles, np.int32)


def _row_width(image, row):
    covered = np.flatnonzero(image[row].sum(-1) > 0)
    return 0 if not len(covered) else covered[-1] - covered[0] + 1


def test_avatar_panel_frames_the_head_of_a_full_body_character():
    from cpem_jax.export import MorphMesh
    from cpem_jax.retarget.preview import avatar_panel
    # A body 1.5 m tall and a 20 x 25 cm head on top; only the head's front moves (jawOpen).
    body, body_triangles = _box((-0.25, 0.0, -0.15), (0.25, 1.5, 0.15))
    head, head_triangles = _box((-0.1, 1.55, -0.1), (0.1, 1.8, 0.1))
    vertices = np.concatenate([body, head])
    triangles = np.concatenate([body_triangles, head_triangles + 8])
    deltas = np.zeros((2, 16, 3), np.float32)
    deltas[0, 8:][head[:, 2] > 0, 1] = -0.02   # jawOpen: the face (front of the head) moves
    deltas[1, :8, 0] = 0.05                   # "Belly": a body target our track does not drive
    mesh = MorphMesh(vertices=vertices, triangles=triangles, deltas=deltas,
                     target_keys=(("head", "jawOpen"), ("body", "Belly")),
                     default_weights=np.zeros(2, np.float32))
    track = FrameTrack.from_estimates(np.full((1, 1), 0.5), np.zeros((1, 3)), np.zeros((1, 3)),
                                      ("jawOpen",), 30.0)
    panel = avatar_panel(mesh, None, track, "avatar")
    np.testing.assert_allclose(panel.framing.centre, (0.0, 1.675, 0.1), atol=1e-6)
    size = 64
    rest = np.zeros((1, 3), np.float32)
    image = render_mesh(mesh.posed(panel.weights[:1]), triangles, panel.framing, rest, size=size,
                        background=(0.0, 0.0, 0.0))[0]
    assert _row_width(image, size // 2) > 0.35 * size  # the head fills a good part of the panel
    whole = frame_mesh(vertices)
    scale = 0.92 * (size / 2) / whole.radius
    head_row = int(size / 2 - scale * (1.675 - whole.centre[1]))
    far = render_mesh(vertices[None], triangles, whole, rest, size=size,
                      background=(0.0, 0.0, 0.0))[0]
    assert 0 < _row_width(far, head_row) < 0.12 * size  # the old framing: a few pixels wide
