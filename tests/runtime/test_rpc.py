"""Remote runs over TVM RPC against real trackers and servers on loopback: results, and bounded failures."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from rpc_processes import Service, free_port

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc import RemoteModule, RpcEndpoint, connect, tracker_summary


@pytest.fixture(scope="module")
def host_artifact(tmp_path_factory, tiny_classifier_factory) -> Path:
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    folder = tmp_path_factory.mktemp("rpc")
    build_artifact(tiny_classifier_factory(folder / "tiny.onnx"), load_profile("x86-avx2"), folder / "art")
    return folder / "art"


@pytest.fixture(scope="module")
def tracker():
    port = free_port()
    service = Service("rpc", "tracker", "--port", str(port))
    service.wait_for("RPC tracker listening on 127.0.0.1")
    yield RpcEndpoint("127.0.0.1", port, via_tracker=False)
    service.stop()


def _start_server(tracker: RpcEndpoint) -> Service:
    key = f"host-{os.getpid()}-{time.monotonic_ns() % 100000}"
    service = Service("rpc", "server", "--key", key, "--tracker", tracker.address, "--port", str(free_port()))
    line = service.wait_for("RPC server listening on")
    port = int(line.split()[4].rstrip(",").rpartition(":")[2])
    deadline = time.monotonic() + 30
    while not any(s["key"] == f"server:{key}" for s in tracker_summary(tracker)["server_info"]):
        assert time.monotonic() < deadline, "server never registered"
        time.sleep(0.2)
    service.key, service.port = key, port
    return service


@pytest.fixture(scope="module")
def host_server(tracker):
    """A real TVM RPC server on this machine, registered under a fresh key, shared by the module."""
    service = _start_server(tracker)
    yield service
    service.stop()


@pytest.fixture
def doomed_server(tracker):
    """A server of its own for a test that freezes or kills it."""
    service = _start_server(tracker)
    yield service
    service.stop()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word (a wedged service)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


# ------------------------------------------------------------------ endpoint parsing


def test_endpoint_parsing_and_validation():
    ep = RpcEndpoint.tracker("127.0.0.1:9190", "cortex-a72")
    assert (ep.host, ep.port, ep.key, ep.via_tracker) == ("127.0.0.1", 9190, "cortex-a72", True)
    assert RpcEndpoint.server("[::1]:9090").host == "::1"
    assert RpcEndpoint.server("[::1]:9090").address == "[::1]:9090"
    for bad in ("127.0.0.1", "host:", ":9190", "host:0", "host:70000", "host:abc", ""):
        with pytest.raises(TvmDeployError, match="HOST:PORT"):
            RpcEndpoint.tracker(bad, "k")
    with pytest.raises(TvmDeployError, match=r"^rpc_tracker needs a device key too \(rpc_key\)") as info:
        RpcEndpoint.tracker("127.0.0.1:9190", "")
    assert info.value.param == "rpc_key"  # the API's names; the CLI spells its flags (tests/tools/cli)
    with pytest.raises(TvmDeployError, match="letters, digits"):
        RpcEndpoint.tracker("127.0.0.1:9190", "bad key:1")


def test_one_rule_turns_server_tracker_and_key_options_into_an_endpoint():
    """What `tvmdeploy.load`, every verb's --rpc* flags and compare's targets share (RpcEndpoint.from_options)."""
    from tvmdeploy.runtime.errors import spelling

    assert RpcEndpoint.from_options() is None
    assert RpcEndpoint.from_options(server="127.0.0.1:9090") == RpcEndpoint("127.0.0.1", 9090, "", via_tracker=False)
    assert RpcEndpoint.from_options(tracker="127.0.0.1:9190", key="a72").via_tracker
    for options, message, param in [
        ({"server": "h:1", "tracker": "h:2", "key": "k"}, "use either rpc_server HOST:PORT", "rpc_server"),
        ({"tracker": "h:2"}, "rpc_tracker needs rpc_key", "rpc_key"),
        ({"key": "k"}, "rpc_key needs rpc_tracker HOST:PORT or rpc_server", "rpc_key"),
    ]:
        with pytest.raises(TvmDeployError, match=message) as info:
            RpcEndpoint.from_options(**options)
        assert info.value.param == param
    with spelling(lambda name: {"rpc_server": "--rpc"}.get(name, "--" + name.replace("_", "-"))):
        with pytest.raises(TvmDeployError, match=r"^--rpc-key needs --rpc-tracker HOST:PORT or --rpc HOST:PORT$"):
            RpcEndpoint.from_options(key="k")


# ------------------------------------------------------------------ bounded failures


def _bounded(fn, limit_s: float) -> str:
    started = time.monotonic()
    with pytest.raises(TvmDeployError) as exc:
        fn()
    took = time.monotonic() - started
    assert took < limit_s, f"took {took:.1f} s"
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_closed_tracker_port_fails_at_once():
    ep = RpcEndpoint.tracker(f"127.0.0.1:{free_port()}", "k")
    assert "connection refused" in _bounded(lambda: connect(ep, timeout_s=30), 5)


def test_closed_server_port_fails_at_once():
    ep = RpcEndpoint.server(f"127.0.0.1:{free_port()}")
    assert "connection refused" in _bounded(lambda: connect(ep, timeout_s=30), 5)


def test_silent_tracker_times_out(silent_port):
    ep = RpcEndpoint.tracker(f"127.0.0.1:{silent_port}", "k")
    message = _bounded(lambda: connect(ep, timeout_s=2), 8)
    assert "did not answer within 2 s" in message


def test_silent_server_times_out(silent_port):
    ep = RpcEndpoint.server(f"127.0.0.1:{silent_port}")
    message = _bounded(lambda: connect(ep, timeout_s=2), 8)
    assert "did not answer within 2 s" in message


def test_unknown_key_is_reported_with_the_keys_that_exist(tracker, host_server):
    ep = RpcEndpoint.tracker(tracker.address, "no-such-board")
    message = _bounded(lambda: connect(ep, timeout_s=30), 5)
    assert "no RPC server with key 'no-such-board'" in message and host_server.key in message


def test_busy_board_times_out(tracker, host_server):
    ep = RpcEndpoint.tracker(tracker.address, host_server.key)
    with connect(ep, timeout_s=30):  # holds the only server with this key
        message = _bounded(lambda: connect(ep, timeout_s=2), 8)
    assert "no free server with key" in message and "1 registered, all busy" in message


# ------------------------------------------------------------------ real remote runs on a host server


def test_remote_run_matches_local_and_times_on_the_device(tracker, host_server, host_artifact):
    from tvmdeploy.runtime.loader import LocalModule

    session = connect(RpcEndpoint.tracker(tracker.address, host_server.key), timeout_s=30)
    assert session.server.endswith(f":{host_server.port}")
    assert not session.is_emulated  # a plain TVM server has no tvmdeploy board info
    with RemoteModule(session, host_artifact) as module:
        x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
        np.testing.assert_allclose(module.run(x), LocalModule(host_artifact).run(x), atol=1e-5)
        times = module.time(x, number=2, repeat=3)
        assert len(times) == 3 and all(0 < t < 1 for t in times)
        assert "remote cpu at 127.0.0.1" in module.description and not module.emulated
    # Closed means the board is free again at once for the next client.
    connect(RpcEndpoint.tracker(tracker.address, host_server.key), timeout_s=5).close()


def test_direct_server_connection(host_artifact):
    service = Service("rpc", "server", "--port", str(free_port()))
    try:
        line = service.wait_for("RPC server listening on")
        address = line.split()[4].rstrip(",")
        assert "connect with --rpc" in line
        with RemoteModule(connect(RpcEndpoint.server(address), timeout_s=30), host_artifact) as module:
            assert module.run(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 10)
    finally:
        service.stop()


def test_tracker_registered_server_refuses_direct_clients(host_server):
    ep = RpcEndpoint.server(f"127.0.0.1:{host_server.port}", host_server.key)
    assert "accepts only clients the tracker sends" in _bounded(lambda: connect(ep, timeout_s=10), 10)


def test_tampered_library_is_not_uploaded(tracker, host_server, host_artifact, tmp_path):
    import shutil

    copy = tmp_path / "art"
    shutil.copytree(host_artifact, copy)
    with open(copy / "model.so", "ab") as handle:
        handle.write(b"\0")
    with connect(RpcEndpoint.tracker(tracker.address, host_server.key), timeout_s=30) as session:
        with pytest.raises(TvmDeployError, match="does not match the manifest"):
            RemoteModule(session, copy)


def test_hung_board_fails_after_the_call_timeout(tracker, doomed_server, host_artifact):
    host_server = doomed_server
    session = connect(RpcEndpoint.tracker(tracker.address, host_server.key), timeout_s=30, call_timeout_s=3)
    module = RemoteModule(session, host_artifact)
    x = np.zeros((1, 3, 16, 16), np.float32)
    module.run(x)
    host_server.signal(signal.SIGSTOP)  # the server and its session process freeze, connection stays open
    try:
        message = _bounded(lambda: module.run(x), 10)
    finally:
        host_server.signal(signal.SIGCONT)
    assert "got no answer within 3 s" in message
    with pytest.raises(TvmDeployError, match="closed"):
        module.run(x)


def test_board_dying_mid_session_is_a_clear_error(tracker, doomed_server, host_artifact):
    host_server = doomed_server
    session = connect(RpcEndpoint.tracker(tracker.address, host_server.key), timeout_s=30, call_timeout_s=30)
    module = RemoteModule(session, host_artifact)
    x = np.zeros((1, 3, 16, 16), np.float32)
    module.run(x)
    host_server.signal(signal.SIGKILL)
    message = _bounded(lambda: module.run(x), 10)
    assert "lost the connection" in message or "failed" in message


# ------------------------------------------------------------------ a tracker that is still starting


def test_wait_for_tracker_is_bounded_and_says_it_waits():
    from tvmdeploy.runtime.rpc import wait_for_tracker

    told = []
    ep = RpcEndpoint.server(f"127.0.0.1:{free_port()}")
    with pytest.raises(TvmDeployError, match=r"still refusing connections after waiting 0.5 s.*tvmdeploy rpc tracker"):
        wait_for_tracker(ep, 0.5, on_wait=told.append)
    assert len(told) == 1 and "waiting up to 0.5 s for the RPC tracker at 127.0.0.1:" in told[0]


def test_wait_for_tracker_does_not_wait_out_something_else():
    """Only "connection refused" means "still starting": a port answering with the wrong handshake fails at once."""
    import threading

    from tvmdeploy.runtime.rpc import wait_for_tracker

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)

    def answer_garbage():
        conn, _ = sock.accept()
        conn.recv(4)
        conn.sendall(b"HTTP")
        conn.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    told = []
    try:
        with pytest.raises(TvmDeployError, match="is not a TVM RPC tracker"):
            wait_for_tracker(RpcEndpoint.server(f"127.0.0.1:{sock.getsockname()[1]}"), 60, on_wait=told.append)
    finally:
        sock.close()
    assert told == []
