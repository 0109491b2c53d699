"""`tvmdeploy rpc`: TVM's tracker and server bind loopback by default, warn when exposed, and report the queue."""

from __future__ import annotations

import time

import psutil
import pytest
from rpc_processes import Service, free_port

from tvmdeploy.runtime.rpc import RpcEndpoint, connect, tracker_summary
from tvmdeploy.tools.cli.main import main
from tvmdeploy.tools.devices import rpc_services


def listening_addresses(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_tracker_binds_loopback_by_default_and_stops_cleanly():
    port = free_port()
    tracker = Service("rpc", "tracker", "--port", str(port))
    try:
        tracker.wait_for(f"RPC tracker listening on 127.0.0.1:{port}")
        assert listening_addresses(port) == {"127.0.0.1"}
        assert "warning" not in tracker.output
    finally:
        assert tracker.stop() == 0  # SIGTERM is a clean stop, TVM's worker included
    assert listening_addresses(port) == set()


def test_listen_any_binds_all_interfaces_and_warns():
    port = free_port()
    tracker = Service("rpc", "tracker", "--port", str(port), "--listen-any")
    try:
        tracker.wait_for(f"RPC tracker listening on 0.0.0.0:{port}")
        assert listening_addresses(port) == {"0.0.0.0"}
        assert "warning:" in tracker.output and "runs any code it is sent" in tracker.output
    finally:
        tracker.stop()


@pytest.mark.parametrize("verb", [["rpc", "tracker"], ["rpc", "server"], ["board", "up"]])
def test_other_bind_addresses_need_listen_any(capsys, verb):
    code = main([*verb, "--host", "0.0.0.0", "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: refusing to bind") and "--listen-any" in err and err.count("\n") == 1


def test_server_warning_says_it_runs_any_code(capsys):
    assert rpc_services.check_bind("127.0.0.1", False, "RPC server") == "127.0.0.1"
    assert rpc_services.check_bind("::1", False, "RPC server") == "::1"
    assert capsys.readouterr().err == ""
    assert rpc_services.check_bind("127.0.0.1", True, "RPC server") == "0.0.0.0"
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and "runs any code it is sent" in err


def test_status_shows_registered_servers_and_the_queue(capsys):
    port = free_port()
    tracker = Service("rpc", "tracker", "--port", str(port))
    servers = []
    try:
        tracker.wait_for("RPC tracker listening")
        # Two servers with one key: a device farm the tracker hands out one at a time.
        for _ in range(2):
            server = Service("rpc", "server", "--key", "farm", "--tracker", f"127.0.0.1:{port}", "--port", str(free_port()))
            servers.append(server)
            server.wait_for("registering as 'farm'")
        endpoint = RpcEndpoint("127.0.0.1", port, via_tracker=False)
        deadline = time.monotonic() + 30
        # A server shows in server_info first and is put in the queue just after: wait for both.
        while tracker_summary(endpoint)["queue_info"].get("farm", {}).get("free") != 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert main(["rpc", "status", "--tracker", f"127.0.0.1:{port}"]) == 0
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if line.startswith("farm"))
        assert row.split()[1:4] == ["2", "2", "0"]  # servers, free, pending
        # Both can be held at once: parallel measurements (MetaSchedule's RPCRunner) get one each.
        farm = RpcEndpoint.tracker(f"127.0.0.1:{port}", "farm")
        with connect(farm, timeout_s=30) as first, connect(farm, timeout_s=30) as second:
            assert first.server != second.server
    finally:
        for server in servers:
            server.stop()
        tracker.stop()


def test_status_of_a_dead_tracker_is_a_one_line_error(capsys):
    started = time.monotonic()
    code = main(["rpc", "status", "--tracker", f"127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert code == 2 and "connection refused" in err and err.count("\n") == 1
    assert time.monotonic() - started < 10


def test_server_with_a_tracker_needs_a_key(capsys):
    code = main(["rpc", "server", "--tracker", "127.0.0.1:9190"])
    assert code == 2 and "--tracker needs --key" in capsys.readouterr().err


def test_format_summary_marks_emulated_keys():
    summary = {
        "queue_info": {"qemu-aarch64": {"free": 1, "pending": 2}},
        "server_info": [{"key": "server:qemu-aarch64", "addr": ["127.0.0.1", 9090]}],
    }
    text = rpc_services.format_summary(summary, {"qemu-aarch64"})
    assert "127.0.0.1:9090" in text and "emulated" in text
    assert rpc_services.format_summary({"queue_info": {}, "server_info": []}).startswith("no servers")


def test_server_started_right_after_the_tracker_waits_for_it():
    """`tvmdeploy rpc tracker &` then at once `tvmdeploy rpc server --tracker ...` (the README pasted as a script)."""
    port = free_port()
    tracker = Service("rpc", "tracker", "--port", str(port))
    server = Service("rpc", "server", "--key", "early", "--tracker", f"127.0.0.1:{port}", "--port", str(free_port()))
    try:
        server.wait_for("registering as 'early'")
        assert "error" not in server.output
        endpoint = RpcEndpoint("127.0.0.1", port, via_tracker=False)
        deadline = time.monotonic() + 30
        while tracker_summary(endpoint)["queue_info"].get("early", {}).get("free") != 1:
            assert time.monotonic() < deadline, server.output
            time.sleep(0.2)
    finally:
        server.stop()
        tracker.stop()
