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
