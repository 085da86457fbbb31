"""dlib's serialized weights -> `DlibFaceResNet` params, cached once as a Flax msgpack file.

Where the dlib file comes from, in order: the `path` argument, the environment variable
`CPEM_DLIB_FACE_REC_MODEL`, then the copy shipped by the PyPI package `face-recognition-models`.
The converted params go to `$CPEM_CACHE/dlib_face_recognition_resnet_v1.msgpack`
(default `~/.cache/cpem_jax`) and are read from there on later calls.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any, Dict, Iterator, List, Optional

import flax.serialization
import numpy as np

from cpem_jax.recognition import network
from cpem_jax.recognition.dlib_format import DlibFormatError, DlibLayer, DlibNet, read_dlib_net

MODEL_ENV = "CPEM_DLIB_FACE_REC_MODEL"
CACHE_ENV = "CPEM_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "cpem_jax")
CACHE_STEM = "dlib_face_recognition_resnet_v1"
INSTALL_HINT = ("install it with `pip install face-recognition-models` (it ships "
                "dlib_face_recognition_resnet_model_v1.dat) or set "
                f"{MODEL_ENV}=/path/to/dlib_face_recognition_resnet_model_v1.dat")

Params = Dict[str, Any]


def locate_dlib_model(path: Optional[str] = None) -> str:
    """Returns the path of `dlib_face_recognition_resnet_model_v1.dat`.

    Raises:
      FileNotFoundError naming `pip install face-recognition-models` when no file is found.
    """
    path = path or os.environ.get(MODEL_ENV)
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"dlib face-recognition model {path!r} does not exist; "
                                    + INSTALL_HINT)
        return path
    try:
        import face_recognition_models  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise FileNotFoundError(
            "The face-recognition network needs dlib's model file and the package "
            "`face_recognition_models` is not installed; " + INSTALL_HINT) from err
    path = face_recognition_models.face_recognition_model_location()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"face_recognition_models is installed but {path!r} is missing; "
                                + INSTALL_HINT)
    return path


def cache_path(dlib_path: str, cache_dir: Optional[str] = None) -> str:
    """Where the converted params of `dlib_path` live (keyed by the file's size and mtime)."""
    cache_dir = os.path.expanduser(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)
    stat = os.stat(dlib_path)
    key = f"{os.path.abspath(dlib_path)}:{stat.st_size}:{int(stat.st_mtime)}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return os.path.join(cache_dir, f"{CACHE_STEM}_{digest}.msgpack")


class _LayerStream:
    """Hands out the parsed layers in order, checking each one's kind and fields."""

    def __init__(self, layers: List[DlibLayer]):
        self._layers: Iterator[DlibLayer] = iter(layers)
        self.index = -1

    def take(self, kind: str, **fields: int) -> DlibLayer:
        self.index += 1
        layer = next(self._layers, None)
        if layer is None or layer.kind != kind:
            got = "the end of the file" if layer is None else layer.kind
            raise DlibFormatError(f"layer {self.index}: expected {kind}, found {got}; the file is "
                                  "not dlib's face-recognition ResNet v1")
        for name, want in fields.items():
            if layer.fields.get(name) != want:
                raise DlibFormatError(
                    f"layer {self.index} ({kind}): {name} = {layer.fields.get(name)}, "
                    f"expected {want}; the file is not dlib's face-recognition ResNet v1")
        return layer

    def finished(self) -> bool:
        return next(self._layers, None) is None


def _conv(layer: DlibLayer) -> Params:
    # dlib filters [N_out, C_in, nr, nc] (cross-correlation) -> Flax kernel [nr, nc, C_in, N_out].
    kernel = np.transpose(layer.arrays["filters"], (2, 3, 1, 0))
    return {"kernel": np.ascontiguousarray(kernel), "bias": layer.arrays["biases"]}


def _affine(layer: DlibLayer) -> Params:
    return {"scale": layer.arrays["gamma"], "bias": layer.arrays["beta"]}


def dlib_net_to_params(net: DlibNet) -> Params:
    """Maps the parsed layers onto `DlibFaceResNet`'s param tree, checking the architecture.

    Returns:
      {"params": {...}} with float32 numpy arrays, ready for `DlibFaceResNet().apply`.
    """
    if net.input_size != network.CHIP_SIZE or not np.allclose(
            net.channel_means, network.PIXEL_MEANS, atol=1e-3):
        raise DlibFormatError(
            f"unexpected input layer (size {net.input_size}, means {net.channel_means}); the "
            "file is not dlib's face-recognition ResNet v1")
    stream = _LayerStream(list(net.layers))
    params: Params = {}
    params["stem_conv"] = _conv(stream.take(
        "con", num_filters=network.STEM_FILTERS, nr=network.STEM_KERNEL, stride_y=2,
        padding_y=0, in_channels=3))
    params["stem_affine"] = _affine(stream.take("affine", channels=network.STEM_FILTERS))
    stream.take("relu")
    stream.take("max_pool", nr=3, nc=3, stride_y=2, stride_x=2, padding_y=0, padding_x=0)
    for s, (filters, blocks, downsample) in enumerate(network.DLIB_STAGES):
        for k in range(blocks):
            down = downsample and k == 0
            stride, pad = (2, 0) if down else (1, 1)
            block = {
                "conv1": _conv(stream.take("con", num_filters=filters, nr=3, nc=3,
                                           stride_y=stride, stride_x=stride,
                                           padding_y=pad, padding_x=pad)),
                "affine1": _affine(stream.take("affine", channels=filters)),
            }
            stream.take("relu")
            block["conv2"] = _conv(stream.take("con", num_filters=filters, nr=3, nc=3,
                                               stride_y=1, padding_y=1, in_channels=filters))
            block["affine2"] = _affine(stream.take("affine", channels=filters))
            if down:
                stream.take("avg_pool", nr=2, nc=2, stride_y=2, stride_x=2, padding_y=0)
            stream.take("add_prev")
            stream.take("relu")
            params[f"stage{s}_block{k}"] = block
    stream.take("avg_pool", nr=0, nc=0)  # avg_pool_everything
    fc = stream.take("fc", num_outputs=network.EMBEDDING_DIM)
    params["fc"] = {"kernel": fc.arrays["weights"]}
    if not stream.finished():
        raise DlibFormatError("extra layers after the fully connected layer; the file is not "
                              "dlib's face-recognition ResNet v1")
    return {"params": params}


def load_params(path: Optional[str] = None, cache_dir: Optional[str] = None,
                use_cache: bool = True) -> Params:
    """The `DlibFaceResNet` variables for dlib's weights, converted once and cached.

    Args:
      path: the dlib `.dat` file; default `$CPEM_DLIB_FACE_REC_MODEL`, else the one in
        `face_recognition_models`.
      cache_dir: where the converted msgpack goes; default `$CPEM_CACHE` or ~/.cache/cpem_jax.
      use_cache: False converts from the `.dat` file and writes nothing.
    Returns:
      {"params": ...} float32 numpy arrays.
    """
    dlib_path = locate_dlib_model(path)
    if not use_cache:
        return dlib_net_to_params(read_dlib_net(dlib_path))
    target = cache_path(dlib_path, cache_dir)
    if os.path.isfile(target):
        with open(target, "rb") as f:
            return flax.serialization.msgpack_restore(f.read())
    variables = dlib_net_to_params(read_dlib_net(dlib_path))
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(flax.serialization.msgpack_serialize(variables))
        os.replace(tmp, target)  # atomic: concurrent loaders never see a partial file
    except OSError as err:
        warnings.warn(f"could not cache the converted face-recognition params at {target} "
                      f"({err}); set {CACHE_ENV} to a writable folder to skip the conversion "
                      "next time.")
    return variables
