"""Shared fixtures: paths to ../shared assets (skipped when absent) and small fabricated models."""
import json
import os
import zipfile

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("CPEM_SHARED", os.path.join(os.path.dirname(REPO_ROOT), "shared"))
ICT_ZIP = os.path.join(SHARED, "assets", "ICT-FaceKit-master.zip")


def pytest_configure(config):
    """JAX's persistent compilation cache for the whole session: the two xdist workers, the
    in-process tests and the `cpem-jax` subprocesses share what any of them compiled (the
    folder of `cpem_jax.compilation_cache`: $CPEM_CACHE/jax or $CPEM_COMPILE_CACHE)."""
    from cpem_jax import compilation_cache
    compilation_cache.enable()


def shared_path(*parts: str) -> str:
    """A path under ../shared (or $CPEM_SHARED); the test skips with a reason when absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent (set CPEM_SHARED to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def ict_model():
    """The real ICT-FaceKit model (narrow face area), through the .npz cache of converted
    models (converted once for every worker and the `model` fixture)."""
    zip_path = shared_path("assets", "ICT-FaceKit-master.zip")
    from cpem_jax.face_model import load_face_model
    return load_face_model(zip_path)


@pytest.fixture(scope="session")
def model():
    """The default face model (CPEM_FACE_MODEL or the shared ICT archive, via the .npz cache)."""
    from cpem_jax.face_model import load_face_model
    from cpem_jax.face_model.registry import FaceModelNotFound
    try:
        return load_face_model()
    except FaceModelNotFound as err:
        pytest.skip(f"no face model: {err}")


GRID = (85, 80)  # 6800 vertices: enough for ICT's narrow face area (6706).


def _grid_mesh():
    nx, ny = GRID
    xs, ys = np.meshgrid(np.linspace(-7, 7, nx), np.linspace(-10, 10, ny))
    zs = 10.0 - 0.02 * (xs ** 2 + ys ** 2)
    verts = np.stack([xs, ys, zs], -1).reshape(-1, 3)
    quads = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            a = j * nx + i
            quads.append((a, a + 1, a + nx + 1, a + nx))  # Counter-clockwise seen from +z.
    return verts, quads


def _obj_text(verts, quads=()):
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in q) for q in quads]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def fake_ict_dir(tmp_path_factory):
    """A tiny ICT-FaceKit-shaped folder: a curved grid with 3 identity modes and 2 expressions."""
    root = tmp_path_factory.mktemp("fake_ict") / "ICT-FaceKit-master"
    model_dir = root / "FaceXModel"
    model_dir.mkdir(parents=True)
    verts, quads = _grid_mesh()
    rng = np.random.default_rng(0)
    (model_dir / "generic_neutral_mesh.obj").write_text(_obj_text(verts, quads))
    for k in range(3):
        (model_dir / f"identity{k:03d}.obj").write_text(
            _obj_text(verts + rng.normal(0, 0.1, verts.shape)))
    names = ["jawOpen", "eyeBlink_L"]
    for name in names:
        (model_dir / f"{name}.obj").write_text(_obj_text(verts + rng.normal(0, 0.2, verts.shape)))
    landmarks = rng.choice(6706, 68, replace=False).tolist()
    (model_dir / "vertex_indices.json").write_text(json.dumps(
        {"expressions": names, "idx_to_landmark_verts": landmarks}))
    return root


@pytest.fixture(scope="session")
def fake_ict_zip(fake_ict_dir, tmp_path_factory):
    """The fake ICT folder as a GitHub-style archive."""
    path = tmp_path_factory.mktemp("zip") / "ICT-FaceKit-master.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(fake_ict_dir.rglob("*")):
            zf.write(file, "ICT-FaceKit-master/" + str(file.relative_to(fake_ict_dir)))
    return path


@pytest.fixture(scope="session")
def fake_model(fake_ict_dir):
    from cpem_jax.face_model import ict
    return ict.load_ict(str(fake_ict_dir), progress=False, n_albedo_modes=3)
