"""Network weights files: export from a training run, load them back, refuse damaged ones, and
the weights shipped with the package."""
import json
import os

import numpy as np
import pytest

from cpem_jax.estimation.net_weights import (export_weights, load_weights, shipped_weights_path,
                                             sidecar_path)
from cpem_jax.estimation.network import CheckpointError, NetPredictor

from test_train_loop import SIZE, fake_model_npz, synthetic_root, tiny_config  # noqa: F401


@pytest.fixture(scope="module")
def trained_workdir(synthetic_root, fake_model_npz, tmp_path_factory):
    from cpem_jax.train.loop import train_and_evaluate
    workdir = str(tmp_path_factory.mktemp("run"))
    train_and_evaluate(tiny_config(synthetic_root, fake_model_npz, 2), workdir)
    return workdir


def test_exported_weights_predict_like_the_checkpoint(trained_workdir, tmp_path):
    out = str(tmp_path / "net.msgpack")
    meta = export_weights(trained_workdir, out, provenance={"note": "test"})
    assert meta["step"] == 2 and meta["bytes"] == os.path.getsize(out)
    with open(sidecar_path(out)) as f:
        assert json.load(f)["provenance"] == {"note": "test"}
    original = NetPredictor.from_workdir(trained_workdir)
    loaded = load_weights(out)
    crops = np.random.default_rng(0).integers(0, 255, (3, SIZE, SIZE, 3), dtype=np.uint8)
    a, b = original(crops), loaded(crops)
    assert loaded.step == 2 and loaded.image_size == SIZE
    # float16 storage: the same coefficients to a few parts in a thousand.
    np.testing.assert_allclose(b.expression, a.expression, atol=5e-3)
    np.testing.assert_allclose(b.rotation, a.rotation, atol=5e-3)


def test_damaged_or_missing_weights_are_refused_by_name(trained_workdir, tmp_path):
    out = str(tmp_path / "net.msgpack")
    export_weights(trained_workdir, out)
    with open(out, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(CheckpointError, match="sha256"):
        load_weights(out)
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(str(tmp_path / "none.msgpack"))


def test_shipped_weights_load_and_run_when_present():
    path = shipped_weights_path()
    if not os.path.isfile(path):
        pytest.skip(f"no shipped weights at {path}")
    from cpem_jax.face_model.ict import default_ict_path
    if not default_ict_path():
        pytest.skip("the ICT face model the shipped network was trained for is not available "
                    "(set CPEM_SHARED)")
    predictor = load_weights(path)
    assert os.path.getsize(path) <= 20e6
    s = predictor.image_size
    coeffs = predictor(np.full((2, s, s, 3), 128, np.uint8))
    assert np.isfinite(coeffs.expression).all() and coeffs.expression.shape[0] == 2
    assert ((coeffs.expression >= 0) & (coeffs.expression <= 1)).all()


def test_export_net_command_writes_the_file_and_refuses_a_wrong_name(trained_workdir, tmp_path,
                                                                     capsys):
    from cpem_jax.cli.main import main
    out = tmp_path / "net.msgpack"
    assert main(["model", "export-net", trained_workdir, "-o", str(out)]) == 0
    assert out.is_file() and (tmp_path / "net.json").is_file()
    assert "step 2" in capsys.readouterr().out
    assert main(["model", "export-net", trained_workdir, "-o", str(tmp_path / "net.bin")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must end in .msgpack" in err[0]
    assert main(["model", "export-net", str(tmp_path / "nowhere"), "-o", str(out)]) == 2
    assert "config.json" in capsys.readouterr().err
