"""Test helpers for real RPC services: free loopback ports and `tvmdeploy ...` processes in their own group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

CLI = [sys.executable, "-m", "tvmdeploy.tools.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A `tvmdeploy ...` process (or `command`) in its own process group; output collected in the background."""

    def __init__(self, *argv: str, env: dict[str, str] | None = None, command: list[str] = CLI):
        self.proc = subprocess.Popen(
            [*command, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"service did not print {text!r}: {self.output[-2000:]}")

    def signal(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def stop(self) -> int | None:
        """SIGTERM (after SIGCONT, in case a test froze it), SIGKILL if it lingers; the exit status."""
        if self.proc.poll() is None:
            for signum in (signal.SIGCONT, signal.SIGTERM):
                try:
                    self.signal(signum)
                except ProcessLookupError:
                    break
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        returncode = self.proc.returncode
        try:  # TVM's worker and forked session processes live in the same group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return returncode


BOARD_SERVER = [sys.executable, "-m", "tvmdeploy.runtime.rpc.board_server"]


def board_server(key: str, env: dict[str, str] | None = None) -> Service:
    """The board's RPC server (runtime/rpc/board_server.py) run natively here, as serve.py runs it on a board:
    a direct server on a free loopback port (`service.port`), with its board functions (info, ONNX Runtime)."""
    service = Service("--port", str(free_port()), "--key", key, env=env, command=BOARD_SERVER)
    line = service.wait_for("tvmdeploy-board: listening on", timeout_s=120)
    service.port = int(line.split()[3].rpartition(":")[2])
    service.key = key
    return service
