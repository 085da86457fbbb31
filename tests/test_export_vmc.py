"""The VMC stream, received by a real OSC server on loopback."""
import threading

import numpy as np
import pytest
from pythonosc import dispatcher, osc_server

from cpem_jax.export.arkit import ARKIT_NAMES
from cpem_jax.export.vmc import VmcSender, head_quaternion_unity, parse_address, vmc_names


@pytest.fixture
def receiver():
    """An OSC server on a free loopback port; yields (port, received messages list)."""
    messages, done = [], threading.Event()
    table = dispatcher.Dispatcher()

    def record(address, *args):
        messages.append((address, args))
        if address == "/VMC/Ext/Bone/Pos":
            done.set()

    table.set_default_handler(record)
    server = osc_server.ThreadingOSCUDPServer(("127.0.0.1", 0), table)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], messages, done
    server.shutdown()
    server.server_close()


def test_a_frame_arrives_whole_names_values_then_apply_then_head(receiver):
    port, messages, done = receiver
    weights = np.linspace(0.0, 1.0, len(ARKIT_NAMES), dtype=np.float32)
    sender = VmcSender("127.0.0.1", port)
    sender.send(weights, rotation=np.array([0.0, 0.3, 0.0]))
    assert done.wait(5.0), "no VMC bundle arrived"
    blend = [m for m in messages if m[0] == "/VMC/Ext/Blend/Val"]
    assert [name for name, _ in (m[1] for m in blend)] == list(vmc_names())
    assert blend[0][1][0] == "EyeBlinkLeft" and "JawOpen" in [m[1][0] for m in blend]
    np.testing.assert_allclose([m[1][1] for m in blend], weights, atol=1e-6)
    addresses = [m[0] for m in messages]
    assert addresses.index("/VMC/Ext/Blend/Apply") == len(ARKIT_NAMES)  # After every value.
    head = messages[addresses.index("/VMC/Ext/Bone/Pos")][1]
    assert head[0] == "Head" and head[1:4] == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(head[4:], head_quaternion_unity([0.0, 0.3, 0.0]), atol=1e-6)
    assert sender.sent == 1


def test_head_turn_to_the_subjects_left_is_a_negative_unity_yaw():
    q = head_quaternion_unity([0.0, 0.4, 0.0])  # Our +yaw: the face turns toward +x, its left.
    assert q[1] == pytest.approx(-np.sin(0.2)) and q[3] == pytest.approx(np.cos(0.2))
    pitch = head_quaternion_unity([0.3, 0.0, 0.0])
    assert pitch[0] == pytest.approx(np.sin(0.15))  # Pitch axis (x) keeps its sign.


def test_apple_spelling_and_address_parsing():
    assert vmc_names("arkit")[0] == "eyeBlinkLeft"
    assert parse_address("192.168.1.5:39540") == ("192.168.1.5", 39540)
    assert parse_address(":40000") == ("127.0.0.1", 40000)
    assert parse_address("localhost") == ("localhost", 39539)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("host:port")
    with pytest.raises(ValueError, match="1..65535"):
        parse_address("host:70000")
    with pytest.raises(ValueError, match="52 ARKit weights"):
        VmcSender("127.0.0.1", 9).send(np.zeros(10))
