"""Tests for the dlib file reader and the converted-params cache (cpem_jax/recognition)."""
import os

import numpy as np
import pytest

from cpem_jax.recognition import dlib_format, weights


def _dlib_int(value: int) -> bytes:
    """dlib's variable-length integer, written independently of the reader."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def _reader(data: bytes):
    return dlib_format._Reader(data, "<test>")  # pylint: disable=protected-access


@pytest.mark.parametrize("value", [0, 1, 150, 4736, -28, 2**40, -(2**33)])
def test_integer_round_trip(value):
    r = _reader(_dlib_int(value))
    assert r.int() == value
    assert r.pos == len(r.data)


def test_float_string_bool_tensor():
    data = (_dlib_int(10737418) + _dlib_int(-28)            # 0.04 as dlib writes it
            + _dlib_int(5) + b"con_4" + b"1"
            + _dlib_int(2) + b"".join(_dlib_int(d) for d in (2, 3, 1, 1))
            + np.arange(6, dtype="<f4").tobytes())
    r = _reader(data)
    assert r.float() == pytest.approx(0.04, rel=1e-7)
    assert r.string() == "con_4"
    assert r.bool() is True
    np.testing.assert_array_equal(r.tensor(), np.arange(6, dtype=np.float32))
    with pytest.raises(dlib_format.DlibFormatError, match="end of file"):
        r.int()


def test_garbage_file_raises_clear_error(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(_dlib_int(1) + _dlib_int(7) + b"garbage" + b"\0" * 32)
    with pytest.raises(dlib_format.DlibFormatError, match="face-recognition-models"):
        dlib_format.read_dlib_net(str(bad))


def test_missing_file_names_the_package(tmp_path, monkeypatch):
    missing = str(tmp_path / "nope.dat")
    with pytest.raises(FileNotFoundError, match="pip install face-recognition-models"):
        weights.locate_dlib_model(missing)
    monkeypatch.setenv(weights.MODEL_ENV, missing)
    with pytest.raises(FileNotFoundError, match="pip install face-recognition-models"):
        weights.load_params()


def test_missing_package_names_the_package(monkeypatch):
    import builtins  # pylint: disable=import-outside-toplevel
    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "face_recognition_models":
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv(weights.MODEL_ENV, raising=False)
    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(FileNotFoundError, match="pip install face-recognition-models"):
        weights.locate_dlib_model()


@pytest.fixture(scope="module")
def dlib_path():
    try:
        return weights.locate_dlib_model()
    except FileNotFoundError as err:
        pytest.skip(f"dlib model file unavailable: {err}")


def test_real_file_layers(dlib_path):
    net = dlib_format.read_dlib_net(dlib_path)
    assert net.input_size == 150
    np.testing.assert_allclose(net.channel_means, [122.782, 117.001, 104.298], atol=1e-4)
    kinds = [layer.kind for layer in net.layers]
    # 1 stem + 14 blocks x 2 convolutions; one add per block; 4 downsampling shortcuts + global.
    assert kinds.count("con") == 29 and kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14 and kinds.count("avg_pool") == 5
    assert net.layers[0].arrays["filters"].shape == (32, 3, 7, 7)
    assert net.layers[-1].arrays["weights"].shape == (256, 128)
    assert all(np.isfinite(a).all() for layer in net.layers for a in layer.arrays.values())


def test_cache_written_once_and_reloaded(dlib_path, tmp_path):
    fresh = weights.load_params(dlib_path, cache_dir=str(tmp_path))
    cached_files = os.listdir(tmp_path)
    assert len(cached_files) == 1 and cached_files[0].endswith(".msgpack")
    target = tmp_path / cached_files[0]
    mtime = target.stat().st_mtime_ns
    again = weights.load_params(dlib_path, cache_dir=str(tmp_path))
    assert target.stat().st_mtime_ns == mtime
    flat_a = dict(_flatten(fresh))
    flat_b = dict(_flatten(again))
    assert flat_a.keys() == flat_b.keys()
    for key, value in flat_a.items():
        np.testing.assert_array_equal(value, flat_b[key])
    assert flat_a["params/stem_conv/kernel"].shape == (7, 7, 3, 32)
    assert flat_a["params/fc/kernel"].shape == (256, 128)


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", np.asarray(value)
