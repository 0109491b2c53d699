"""Tuning through an RPC tracker: MetaSchedule's RPCRunner measures on a server registered under a key."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.compile.test_tuning import inverted_residual_onnx

CLI = [sys.executable, "-m", "tvmdeploy.tools.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Service:
    """A `tvmdeploy rpc ...` process in its own process group, output collected in the background."""

    def __init__(self, *argv: str):
        self.proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def wait_for(self, text: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any(text in line for line in list(self.lines)):
                return
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} in: {''.join(self.lines)[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.mark.rpc
def test_tuning_measures_through_the_tracker(tmp_path):
    from tvmdeploy.compile.tuning import tune
    from tvmdeploy.targets import load_profile

    profile = load_profile("x86-avx2")
    if not profile.runs_on_this_machine:
        pytest.skip("the local RPC server must be able to run x86-avx2 code")
    port = _free_port()
    tracker = _Service("rpc", "tracker", "--port", str(port))
    server = None
    try:
        tracker.wait_for("RPC tracker listening")
        server = _Service("rpc", "server", "--key", "tune-test", "--tracker", f"127.0.0.1:{port}",
                          "--port", str(_free_port()))
        server.wait_for("registering as 'tune-test'")
        model = inverted_residual_onnx(tmp_path / "tiny_ir.onnx")
        result = tune(model, profile, trials=2, ops="depthwise", log_dir=tmp_path / "db", trials_per_iter=2,
                      rpc_tracker=f"127.0.0.1:{port}", rpc_key="tune-test", progress_bar=False, quick_measure=True)
    finally:
        if server is not None:
            server.stop()
        tracker.stop()
    tuned = [o for o in result.outcomes if o.trials_after]
    assert [o.info.op_class for o in tuned] == ["depthwise"]
    assert tuned[0].after_ms is not None  # measured remotely, not failed
    assert sum(o.run_failures + o.build_failures for o in result.outcomes) == 0
