"""The emulated board's RPC servers: start them under qemu-user (registered with a tracker), list and stop them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc import TRACKER_START_WAIT_S, RpcEndpoint, tracker_summary, wait_for_tracker
from tvmdeploy.runtime.rpc.board_server import LISTENING
from tvmdeploy.runtime.rpc.endpoint import is_loopback
from tvmdeploy.tools.devices.board.root import DEFAULT_KEY, EXTRA_RUNTIME_LIB, SERVER_MODULE, BoardRoot, board_dir, build_root


@dataclass
class BoardServer:
    """One RPC server process of the board, as recorded in its state file."""

    pid: int
    key: str
    arch: str
    emulator: str
    host: str
    port: int
    tracker: str  # "HOST:PORT", or "" for a direct server
    log: str
    started: float
    alive: bool = True

    @property
    def emulated(self) -> bool:
        return bool(self.emulator)


def ensure_built(arch: str = "aarch64", *, rebuild: bool = False, progress: bool = True) -> BoardRoot:
    """The board root (root.build_root), never rebuilt under running servers."""
    return build_root(arch, rebuild=rebuild, progress=progress, in_use=lambda: any(s.alive for s in status(arch)))


def _state_files(arch: str = "aarch64") -> list[Path]:
    folder = board_dir(arch) / "run"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _pid_is_board(pid: int) -> bool:
    """The pid is alive and is still our server (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return SERVER_MODULE.encode() in cmdline


def status(arch: str = "aarch64") -> list[BoardServer]:
    """The board servers started from this machine; dead ones are reported once and their state removed."""
    servers = []
    for path in _state_files(arch):
        try:
            server = BoardServer(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)
            continue
        server.alive = _pid_is_board(server.pid)
        if not server.alive:
            path.unlink(missing_ok=True)
        servers.append(server)
    return servers


def board_is_emulated(key: str, arch: str = "aarch64") -> bool:
    """True when a board server started here under emulation serves `key` (its timings are not the CPU's)."""
    return any(s.alive and s.emulated and s.key == key for s in status(arch))


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _listening_port(log: Path) -> int | None:
    try:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(LISTENING):
                return int(line.split()[3].rpartition(":")[2])
    except OSError:
        pass
    return None


def _registered(tracker: RpcEndpoint, key: str, port: int) -> bool:
    try:
        summary = tracker_summary(tracker, timeout_s=5.0)
    except TvmDeployError:
        return False
    return any(s.get("key") == f"server:{key}" and int(s["addr"][1]) == port for s in summary.get("server_info", []))


def start(
    *,
    arch: str = "aarch64",
    key: str = DEFAULT_KEY,
    tracker: RpcEndpoint | None = None,
    host: str = "127.0.0.1",
    port: int = 9090,
    count: int = 1,
    timeout_s: float = 600.0,
    progress: bool = True,
    tracker_wait_s: float = TRACKER_START_WAIT_S,
) -> list[BoardServer]:
    """Start `count` RPC servers with `key` on the emulated board; return once each listens (and is registered).

    A tracker that is still starting is waited for (up to `tracker_wait_s`); one that is not there
    fails now, not after the emulated start.
    """
    if tracker is not None:
        wait_for_tracker(tracker, tracker_wait_s)
    board = ensure_built(arch, progress=progress)
    board.run_dir.mkdir(parents=True, exist_ok=True)
    library = board.site / EXTRA_RUNTIME_LIB
    started: list[tuple[subprocess.Popen, Path, BoardServer]] = []
    next_port = port
    for index in range(count):
        log = board.run_dir / f"{key}-{int(time.time() * 1000)}-{index}.log"
        # Under qemu-user, bind() on a busy port can succeed and only listen() fails, which defeats
        # TVM's own port scan: pick a free port natively here and give the server exactly that one.
        server_port = _first_free_port(host, next_port)
        next_port = server_port + 1
        argv = board.command(
            "-m",
            SERVER_MODULE,
            "--host",
            host,
            "--port",
            str(server_port),
            "--port-end",
            str(server_port + 1),
            "--key",
            key,
            "--load-library",
            str(library),
            "--emulated-by",
            board.arch.qemu,
        )
        if tracker is not None:
            argv += ["--tracker", f"{tracker.host}:{tracker.port}"]
        if not is_loopback(host):
            argv.append("--listen-any")  # the CLI checked its own --listen-any (rpc_services.check_bind)
        with open(log, "wb") as out:
            # Own session: `stop` ends the server and the session processes it forked, as one group.
            proc = subprocess.Popen(
                argv, env=board.env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        server = BoardServer(
            pid=proc.pid,
            key=key,
            arch=arch,
            emulator=board.arch.qemu,
            host=host,
            port=0,
            tracker=f"{tracker.host}:{tracker.port}" if tracker else "",
            log=str(log),
            started=time.time(),
        )
        _write_state(board, server)
        started.append((proc, log, server))
    deadline = time.monotonic() + timeout_s
    try:
        for proc, log, server in started:
            _wait_ready(board, proc, log, server, tracker, deadline, timeout_s)
    except BaseException:
        for _, _, server in started:
            _terminate(server.pid)
            (board.run_dir / f"{server.pid}.json").unlink(missing_ok=True)
        raise
    return [server for _, _, server in started]


def _first_free_port(host: str, start: int, span: int = 100) -> int:
    """The first port from `start` on which this machine can listen now."""
    for candidate in range(start, start + span):
        with socket.socket() as sock:
            try:
                sock.bind((host, candidate))
                sock.listen(1)
            except OSError:
                continue
            return candidate
    raise TvmDeployError(f"no free port in {start}-{start + span - 1} on {host} for the board server")


def _write_state(board: BoardRoot, server: BoardServer) -> None:
    data = asdict(server)
    data.pop("alive")
    (board.run_dir / f"{server.pid}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _wait_ready(
    board: BoardRoot,
    proc: subprocess.Popen,
    log: Path,
    server: BoardServer,
    tracker: RpcEndpoint | None,
    deadline: float,
    timeout_s: float,
) -> None:
    """Until the server listens and (with a tracker) is registered; an error if it dies or the deadline passes."""
    while True:
        code = proc.poll()
        if code is not None:
            raise TvmDeployError(f"the board server exited with code {code} before it was ready: {_log_tail(log)}")
        if not server.port:
            server.port = _listening_port(log) or 0
            if server.port:
                _write_state(board, server)
        if server.port and (tracker is None or _registered(tracker, server.key, server.port)):
            return
        if time.monotonic() > deadline:
            where = f"register with the tracker {tracker.host}:{tracker.port}" if tracker and server.port else "listen"
            raise TvmDeployError(f"the board server did not {where} within {timeout_s:.0f} s (log: {log}): {_log_tail(log, 2)}")
        time.sleep(1.0)


def _terminate(pid: int, grace_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent (tests start and stop in one process)
        if not _pid_is_board(pid) or _is_zombie(pid):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    # Session processes forked by the server stay in its process group; none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop(*, arch: str = "aarch64", key: str | None = None) -> list[BoardServer]:
    """Stop the board servers started from here (all, or those with `key`); return what was stopped."""
    stopped = []
    for server in status(arch):
        if key is not None and server.key != key:
            continue
        if server.alive:
            _terminate(server.pid)
        (board_dir(arch) / "run" / f"{server.pid}.json").unlink(missing_ok=True)
        stopped.append(server)
    return stopped
