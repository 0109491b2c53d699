"""Run an artifact on a remote device through TVM RPC (tracker or direct server), with bounded waits everywhere."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tvmdeploy.runtime import tvm_api
from tvmdeploy.runtime.artifact import read_manifest, verify_library
from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.loader import check_input, run_in_batches
from tvmdeploy.runtime.module import DEFAULT_RPC_CALL_TIMEOUT_S

logger = logging.getLogger(__name__)
TRACKER_START_WAIT_S = 30.0  # `tvmdeploy rpc tracker &` needs ~8 s (importing TVM) before it listens
DEFAULT_CONNECT_TIMEOUT_S = 60.0  # tracker answer + a free board + the server handshake
DEFAULT_CALL_TIMEOUT_S = DEFAULT_RPC_CALL_TIMEOUT_S
BOARD_INFO_FUNCTION = "tvmdeploy.board.info"  # registered by tools/devices/board_server.py on boards we start
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")  # the tracker splits on ':' and the handshake on spaces
T = TypeVar("T")


@dataclass(frozen=True)
class RpcEndpoint:
    """Where to find a device: a tracker plus a device key, or one RPC server directly."""

    host: str
    port: int
    key: str = ""
    via_tracker: bool = True

    @classmethod
    def parse(cls, address: str, key: str = "", *, via_tracker: bool = True, param: str = "rpc_tracker") -> RpcEndpoint:
        """Validate "HOST:PORT" (IPv6 as "[::1]:9190") and the key; errors name `param`, the address's parameter."""
        host, sep, port_text = (address or "").strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise TvmDeployError(f"{arg(param)} expects HOST:PORT (e.g. 127.0.0.1:9190), got {address!r}", param=param)
        if via_tracker and not key:
            raise TvmDeployError(
                f"{arg(param)} needs a device key too ({arg('rpc_key')}), e.g. the key the board " "registered with", param="rpc_key"
            )
        if key and not _KEY_PATTERN.match(key):
            raise TvmDeployError(f"RPC key {key!r} may use only letters, digits, '.', '_' and '-'", param="rpc_key")
        return cls(host=host, port=int(port_text), key=key, via_tracker=via_tracker)

    @classmethod
    def tracker(cls, address: str, key: str) -> RpcEndpoint:
        """A device with `key`, requested from the tracker at "HOST:PORT"."""
        return cls.parse(address, key, via_tracker=True, param="rpc_tracker")

    @classmethod
    def server(cls, address: str, key: str = "") -> RpcEndpoint:
        """One RPC server at "HOST:PORT", no tracker."""
        return cls.parse(address, key, via_tracker=False, param="rpc_server")

    @classmethod
    def from_options(cls, server: str | None = None, tracker: str | None = None, key: str | None = None) -> RpcEndpoint | None:
        """The endpoint a caller's server / tracker / key options name, or None for a local run: the one rule of
        `tvmdeploy.load` and every verb's --rpc, --rpc-tracker and --rpc-key."""
        if server and tracker:
            raise TvmDeployError(
                f"use either {arg('rpc_server')} HOST:PORT (a server) or {arg('rpc_tracker')} " f"HOST:PORT {arg('rpc_key')} KEY, not both",
                param="rpc_server",
            )
        if tracker and not key:
            raise TvmDeployError(f"{arg('rpc_tracker')} needs {arg('rpc_key')} (the device key, e.g. cortex-a72)", param="rpc_key")
        if key and not (tracker or server):
            raise TvmDeployError(
                f"{arg('rpc_key')} needs {arg('rpc_tracker')} HOST:PORT or {arg('rpc_server')} " "HOST:PORT", param="rpc_key"
            )
        if server:
            return cls.server(server, key or "")
        return cls.tracker(tracker, key or "") if tracker else None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        if self.via_tracker:
            return f"key '{self.key}' at tracker {self.address}"
        return f"RPC server {self.address}"


# ---------------------------------------------------------------- tracker protocol (TVM's, with timeouts)


def _rpc_base():
    from tvm.rpc import base  # lazy: the tracker protocol helpers live with the RPC client

    return base


class TrackerNotListening(TvmDeployError):
    """Nothing accepts connections at the tracker's address (not started, or still starting)."""


def _open_tracker(endpoint: RpcEndpoint, timeout_s: float) -> socket.socket:
    """A tracker connection whose every read and write gives up after `timeout_s`."""
    base = _rpc_base()
    where = f"RPC tracker {endpoint.address}"
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
    except ConnectionRefusedError:
        raise TrackerNotListening(f"no {where}: connection refused (start one with `tvmdeploy rpc tracker`)") from None
    except TimeoutError:
        raise TvmDeployError(f"{where} is unreachable: no connection within {timeout_s:g} s") from None
    except OSError as exc:
        raise TvmDeployError(f"cannot reach {where}: {exc.strerror or exc}") from None
    try:
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        magic = struct.unpack("<i", base.recvall(sock, 4))[0]
    except TimeoutError:
        sock.close()
        raise TvmDeployError(f"{where} accepted the connection but did not answer within {timeout_s:g} s") from None
    except OSError as exc:
        sock.close()
        raise TvmDeployError(f"{where} closed the connection during the handshake ({exc}); is it a TVM RPC tracker?") from None
    if magic != base.RPC_TRACKER_MAGIC:
        sock.close()
        raise TvmDeployError(f"{endpoint.address} is not a TVM RPC tracker (wrong handshake)")
    return sock


def _tracker_call(sock: socket.socket, message: list, endpoint: RpcEndpoint, what: str) -> Any:
    base = _rpc_base()
    try:
        base.sendjson(sock, message)
        return base.recvjson(sock)
    except TimeoutError:
        raise TvmDeployError(f"RPC tracker {endpoint.address}: {what}") from None
    except OSError as exc:
        raise TvmDeployError(f"RPC tracker {endpoint.address} dropped the connection ({exc})") from None


def tracker_summary(endpoint: RpcEndpoint, timeout_s: float = 10.0) -> dict[str, Any]:
    """The tracker's state: {"queue_info": {key: {"free", "pending"}}, "server_info": [{"key", "addr"}]}."""
    base = _rpc_base()
    sock = _open_tracker(endpoint, timeout_s)
    try:
        value = _tracker_call(sock, [base.TrackerCode.SUMMARY], endpoint, f"no summary within {timeout_s:g} s")
    finally:
        sock.close()
    if not isinstance(value, list) or value[0] != base.TrackerCode.SUCCESS:
        raise TvmDeployError(f"RPC tracker {endpoint.address} answered the summary request with {value!r}")
    return value[1]


def wait_for_tracker(
    endpoint: RpcEndpoint, timeout_s: float = TRACKER_START_WAIT_S, on_wait: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The tracker's summary, waiting up to `timeout_s` for a tracker that is still starting.

    Only "connection refused" is waited out (a tracker started a moment ago does not listen yet);
    anything else (unreachable host, not a tracker, no answer) fails at once as in `tracker_summary`.
    `on_wait(message)` is told once when the wait begins (default: logged).
    """
    deadline = None  # counted from the first refusal (the first attempt may pay for importing TVM's RPC module)
    while True:
        try:
            return tracker_summary(endpoint, timeout_s=10.0)
        except TrackerNotListening:
            if deadline is None:
                deadline = time.monotonic() + timeout_s
                message = f"waiting up to {timeout_s:g} s for the RPC tracker at {endpoint.address} to start listening ..."
                (on_wait or logger.info)(message)
            elif time.monotonic() >= deadline:
                raise TvmDeployError(
                    f"no RPC tracker at {endpoint.address}: still refusing connections after waiting {timeout_s:g} s "
                    "(start one with `tvmdeploy rpc tracker`)"
                ) from None
            time.sleep(0.25)


def servers_for_key(summary: dict[str, Any], key: str) -> list[str]:
    """Addresses ("HOST:PORT") of the servers registered under `key`."""
    return [f"{s['addr'][0]}:{s['addr'][1]}" for s in summary.get("server_info", []) if s.get("key") == f"server:{key}"]


def _request_server(endpoint: RpcEndpoint, timeout_s: float) -> tuple[str, int, str]:
    """Ask the tracker for a free server with the key: (host, port, one-time match key)."""
    base = _rpc_base()
    deadline = time.monotonic() + timeout_s
    summary = tracker_summary(endpoint, timeout_s)
    servers = servers_for_key(summary, endpoint.key)
    if not servers:
        known = sorted({s.get("key", "").removeprefix("server:") for s in summary.get("server_info", [])} - {""})
        raise TvmDeployError(
            f"no RPC server with key '{endpoint.key}' is registered at tracker {endpoint.address} "
            f"(registered keys: {', '.join(known) or 'none'}); start one with `tvmdeploy board up` or `tvmdeploy rpc server`"
        )
    left = max(1.0, deadline - time.monotonic())
    sock = _open_tracker(endpoint, left)
    try:
        value = _tracker_call(
            sock,
            [base.TrackerCode.REQUEST, endpoint.key, "tvmdeploy", 1],
            endpoint,
            f"no free server with key '{endpoint.key}' within {timeout_s:g} s ({len(servers)} registered, all busy)",
        )
    finally:
        # Closing also withdraws a request still queued: the tracker then skips it.
        sock.close()
    if not isinstance(value, list) or value[0] != base.TrackerCode.SUCCESS:
        raise TvmDeployError(f"RPC tracker {endpoint.address} refused the request for key '{endpoint.key}': {value!r}")
    host, port, matchkey = value[1]
    return str(host), int(port), str(matchkey)


# ---------------------------------------------------------------- watchdog for blocking TVM calls


def _socket_fds() -> set[int]:
    """This process's open socket descriptors (Linux /proc)."""
    fds: set[int] = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return fds
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                fds.add(int(name))
        except OSError:
            continue
    return fds


def _shutdown_fd(fd: int) -> None:
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()  # the descriptor belongs to TVM's C++ session: unblock it, never close it


class _Watchdog:
    """Unblocks a TVM RPC call stuck past its deadline by shutting down the session's sockets.

    TVM's C++ client has no socket timeouts: a board that hangs (or a port that accepts and never
    answers) would block the call forever. TVM releases the GIL while it waits, so this timer
    thread can run; after a shutdown the blocked read returns and TVM raises, which we turn into
    a one-line error.
    """

    def __init__(self, timeout_s: float, fds: Callable[[], set[int]]):
        self.timeout_s = timeout_s
        self.fds = fds
        self.fired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        for fd in self.fds():
            _shutdown_fd(fd)

    def __enter__(self) -> _Watchdog:
        if self.timeout_s and self.timeout_s > 0:
            self._timer = threading.Timer(self.timeout_s, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()  # deterministic: no thread left holding what `fds` refers to
            self._timer = None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # TVM puts the useful line last in its multi-line messages (after the traceback).
    useful = [line for line in lines if "Error" in line or "failed" in line.lower()]
    return (useful or lines or [type(exc).__name__])[-1][:300]


# ---------------------------------------------------------------- sessions


class RemoteSession:
    """A TVM RPC session to one device; every call through `call` is bounded by `call_timeout_s`."""

    def __init__(self, endpoint: RpcEndpoint, session: Any, fds: set[int], server: str, call_timeout_s: float):
        self.endpoint = endpoint
        self.tvm = session  # the tvm.rpc.RPCSession
        self.server = server  # "HOST:PORT" of the server actually used
        self.call_timeout_s = call_timeout_s
        self._fds = fds
        self._info: dict[str, Any] | None = None

    def call(self, what: str, fn: Callable[[], T], timeout_s: float | None = None) -> T:
        """Run `fn` (which talks to the device) under the watchdog; failures become TvmDeployError."""
        if self.tvm is None:
            raise TvmDeployError(f"the RPC session to {self.server} is closed")
        limit = self.call_timeout_s if timeout_s is None else timeout_s
        fds = frozenset(self._fds)  # not `self`: the timer must not keep the session alive
        with _Watchdog(limit, lambda: set(fds)) as dog:
            try:
                return fn()
            except (RuntimeError, OSError) as exc:
                if dog.fired:
                    self.tvm = None
                    raise TvmDeployError(
                        f"{what} on {self.server} got no answer within {limit:g} s; the device hung or is too slow "
                        f"(raise {arg('call_timeout_s')})",
                        param="call_timeout_s",
                    ) from None
                if "RPCSessionTimeoutError" in str(exc):
                    raise TvmDeployError(f"{what} on {self.server}: the server ended the session (its session timeout expired)") from None
                if _connection_lost(exc):
                    self.tvm = None
                    raise TvmDeployError(f"{what} on {self.server}: lost the connection to the device ({_first_line(exc)})") from None
                raise TvmDeployError(f"{what} on {self.server} failed: {_first_line(exc)}") from None

    def info(self) -> dict[str, Any]:
        """What the server says about itself ({} when it is not a board started by tvmdeploy)."""
        if self._info is None:

            def _query() -> dict[str, Any]:
                try:
                    fn = self.tvm.get_function(BOARD_INFO_FUNCTION)
                except (RuntimeError, AttributeError, ValueError):
                    return {}
                return json.loads(str(fn()))

            try:
                self._info = self.call("asking the device what it is", _query, timeout_s=min(self.call_timeout_s, 60.0))
            except TvmDeployError:
                self._info = {}
        return self._info

    @property
    def is_emulated(self) -> bool:
        """True for a board running under an emulator: its timings are not the real CPU's."""
        return bool(self.info().get("emulated"))

    def close(self) -> None:
        """Hang up now, freeing the device for the next client."""
        self.tvm = None
        # TVM closes the connection when the last object of the session goes away, and TVM's VM
        # wrapper sits in reference cycles: without a collection the board stays busy for a while.
        gc.collect()

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connection_lost(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("RecvAll", "SendAll", "connection", "Connection", "Socket", "socket", "closed"))


def connect(
    endpoint: RpcEndpoint,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    *,
    session_timeout_s: float = 0.0,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> RemoteSession:
    """Open a session to the endpoint's device within `timeout_s` (tracker: wait at most that long for a free one).

    `session_timeout_s` (0: none) makes the server end the session after that long, even if we vanish.
    """
    from tvm import rpc  # lazy: the RPC client is needed only for remote runs

    if endpoint.via_tracker:
        host, port, matchkey = _request_server(endpoint, timeout_s)
    else:
        host, port, matchkey = endpoint.host, endpoint.port, endpoint.key
    server = f"{host}:{port}"
    before = _socket_fds()
    with _Watchdog(timeout_s, lambda: _socket_fds() - before) as dog:
        try:
            session = rpc.connect(host, port, matchkey, session_timeout=session_timeout_s)
        except (RuntimeError, OSError) as exc:
            if dog.fired:
                raise TvmDeployError(f"RPC server {server} accepted the connection but did not answer within {timeout_s:g} s") from None
            text = str(exc)
            if "refused" in text or "Connect to" in text:
                raise TvmDeployError(f"no RPC server at {server} (connection refused)") from None
            if "cannot find server that matches key" in text:
                raise TvmDeployError(
                    f"RPC server {server} does not accept key '{endpoint.key}': give the key it was started with "
                    f"(an emulated board's: qemu-aarch64 unless {arg('key')} said otherwise); a server registered with a "
                    f"tracker accepts only clients the tracker sends (use {arg('rpc_tracker')} and {arg('rpc_key')})",
                    param="rpc_key",
                ) from None
            if "RecvAll" in text:
                raise TvmDeployError(
                    f"RPC server {server} closed the connection during the handshake (wrong key, or not a TVM RPC server)"
                ) from None
            raise TvmDeployError(f"cannot connect to RPC server {server}: {_first_line(exc)}") from None
    return RemoteSession(endpoint, session, _socket_fds() - before, server, call_timeout_s)


# ---------------------------------------------------------------- the artifact on the device


class RemoteModule:
    """An artifact uploaded to a remote device and loaded in a Relax VM there (implements runtime.module.ArtifactModule)."""

    def __init__(self, session: RemoteSession, artifact_dir: Path):
        self.session = session
        self.artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(self.artifact_dir)
        library = verify_library(self.artifact_dir, self.manifest)  # never ship a .so the manifest does not vouch for
        remote_name = f"tvmdeploy-{self.manifest.library_sha256[:16]}.so"
        sess = session.tvm

        def _load() -> tuple[Any, Any]:
            sess.upload(str(library), target=remote_name)
            remote_lib = sess.load_module(remote_name)
            device = tvm_api.device(self.manifest.device, 0, session=sess)
            return device, tvm_api.virtual_machine(remote_lib, device)

        self.device, self.vm = session.call(f"uploading and loading {library.name}", _load)

    @property
    def emulated(self) -> bool:
        """True on a board under an emulator: show its timings only with that caveat."""
        return self.session.is_emulated

    @property
    def description(self) -> str:
        """Where it runs, for run/bench output, e.g. "remote cpu at 127.0.0.1:9090 via key 'k' at tracker ..."."""
        info = self.session.info()
        where = f"remote {self.manifest.device} at {self.session.server}"
        if self.session.endpoint.via_tracker:
            where += f", {self.session.endpoint}"
        if info.get("emulated"):
            where += f"; EMULATED {info.get('arch', '')} board ({info.get('emulator') or 'emulator'}): timings are not the real CPU's"
        return where

    def _set_input(self, x: np.ndarray) -> None:
        # set_input + invoke_stateful is the VM's RPC-safe calling convention (tensors stay on the device).
        self.vm.set_input("main", tvm_api.to_device(x, self.device))

    def close(self) -> None:
        self.vm = self.device = None
        self.session.close()

    def __enter__(self) -> RemoteModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits for one batch of exactly the artifact's input shape, computed on the device."""
        x = check_input(self.manifest, x)

        def _run() -> np.ndarray:
            self._set_input(x)
            self.vm.invoke_stateful("main")
            return tvm_api.to_numpy(self.vm.get_outputs("main"))

        return self.session.call("running the model", _run)

    def run_images(self, images: np.ndarray) -> np.ndarray:
        return run_in_batches(self.run, self.manifest, images)

    def time(self, x: np.ndarray, *, number: int = 1, repeat: int = 50) -> list[float]:
        """Seconds per call, `repeat` samples of `number` calls each, timed by the device's own clock."""
        x = check_input(self.manifest, x)

        def _time() -> list[float]:
            self._set_input(x)
            timer = self.vm.time_evaluator("invoke_stateful", self.device, number=number, repeat=repeat)
            return [float(t) for t in timer("main").results]

        return self.session.call("timing the model", _time)
