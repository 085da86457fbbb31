"""A live stream for avatar software: the VMC protocol (OSC over UDP).

Per frame, one OSC bundle (so a receiver applies a frame whole):
  /VMC/Ext/Blend/Val (string) name (float) value   once per ARKit blendshape, ARKIT_NAMES order
  /VMC/Ext/Blend/Apply                             after the values
  /VMC/Ext/Bone/Pos (string) "Head" (float) px py pz qx qy qz qw
                                                   the head's local rotation (position 0)
VMC receivers (VSeeFace, VNyan, Warudo, EVMC4U, ...) apply BlendShapeProxy values by name, case
sensitively. "Perfect Sync" avatars carry the 52 ARKit shapes under Unity's ARKit enum spelling
(`EyeBlinkLeft`, `JawOpen`: Apple's names with a capital first letter), the default here;
`names="arkit"` sends Apple's spelling (`eyeBlinkLeft`).

Axes: VMC uses Unity's left-handed frame (x right, y up, z forward, the avatar facing +z, so its
right hand is +x). Our head rotation is right-handed with the face toward +z and +x on the
subject's left; mirroring x maps one onto the other, and turns a quaternion (x, y, z, w) into
(x, -y, -z, w): a head turned to the subject's left is a negative Unity yaw, as in Unity.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from pythonosc import osc_bundle_builder, osc_message_builder, udp_client

from cpem_jax.export.arkit import ARKIT_NAMES
from cpem_jax.export.gltf_io import euler_to_quaternion

DEFAULT_PORT = 39539  # The VMC receivers' usual port (a Marionette / VSeeFace receiver).
NAME_STYLES = ("perfectsync", "arkit")


def parse_address(text: str) -> Tuple[str, int]:
    """"HOST:PORT", "HOST" or ":PORT" -> (host, port); defaults 127.0.0.1 and DEFAULT_PORT."""
    host, _, port = str(text).rpartition(":") if ":" in str(text) else (str(text), "", "")
    host = host or "127.0.0.1"
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"--vmc takes HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT}), got {text!r}")
    if not 0 < number < 65536:
        raise ValueError(f"--vmc port must be 1..65535, got {number}")
    return host, number


def vmc_names(style: str = "perfectsync") -> Tuple[str, ...]:
    """The 52 blendshape names as sent: Perfect Sync (`EyeBlinkLeft`) or Apple's spelling."""
    if style not in NAME_STYLES:
        raise ValueError(f"VMC name style must be one of {NAME_STYLES}, got {style!r}")
    return ARKIT_NAMES if style == "arkit" else tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES)


def head_quaternion_unity(rotation: np.ndarray) -> np.ndarray:
    """rotation [3] (pitch, yaw, roll radians, ours) -> [4] (x, y, z, w) in Unity's frame."""
    x, y, z, w = np.asarray(euler_to_quaternion(np.asarray(rotation, np.float64)[None])[0],
                            np.float64)
    return np.array([x, -y, -z, w])


class VmcSender:
    """Sends frames to a VMC receiver at `host:port` (UDP: nothing waits for an answer).

    Args:
      host, port: the receiver.
      names: "perfectsync" or "arkit" (module docstring).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 names: str = "perfectsync"):
        self.address = (host, int(port))
        self.names = vmc_names(names)
        self._client = udp_client.UDPClient(host, int(port))
        self.sent = 0

    def frame_bundle(self, arkit_weights: np.ndarray, rotation: Optional[np.ndarray]):
        """The OSC bundle of one frame: weights [52] in ARKIT_NAMES order, rotation [3] or None."""
        weights = np.asarray(arkit_weights, np.float32).reshape(-1)
        if weights.shape != (len(ARKIT_NAMES),):
            raise ValueError(f"expected {len(ARKIT_NAMES)} ARKit weights, got {weights.shape}")
        bundle = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
        for name, value in zip(self.names, weights):
            bundle.add_content(_message("/VMC/Ext/Blend/Val", name, float(value)))
        bundle.add_content(_message("/VMC/Ext/Blend/Apply"))
        if rotation is not None:
            q = head_quaternion_unity(rotation)
            bundle.add_content(_message("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0,
                                        *(float(v) for v in q)))
        return bundle.build()

    def send(self, arkit_weights: np.ndarray, rotation: Optional[np.ndarray] = None) -> None:
        """Sends one frame (a network error is raised as OSError naming the receiver)."""
        try:
            self._client.send(self.frame_bundle(arkit_weights, rotation))
        except OSError as error:
            raise OSError(f"cannot send VMC frames to {self.address[0]}:{self.address[1]} "
                          f"({error.strerror or error}); check --vmc HOST:PORT") from None
        self.sent += 1


def _message(address: str, *arguments: Sequence):
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for value in arguments:
        builder.add_arg(value)
    return builder.build()
