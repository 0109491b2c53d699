"""A TVM RPC session to one device: connect within a deadline, and every call bounded and turned into one-line errors."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any, TypeVar

from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.module import DEFAULT_RPC_CALL_TIMEOUT_S
from tvmdeploy.runtime.rpc.board_functions import BOARD_INFO_FUNCTION
from tvmdeploy.runtime.rpc.endpoint import RpcEndpoint
from tvmdeploy.runtime.rpc.tracker import request_server
from tvmdeploy.runtime.rpc.watchdog import Watchdog, socket_fds

DEFAULT_CONNECT_TIMEOUT_S = 60.0  # tracker answer + a free board + the server handshake
DEFAULT_CALL_TIMEOUT_S = DEFAULT_RPC_CALL_TIMEOUT_S
T = TypeVar("T")


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # TVM puts the useful line last in its multi-line messages (after the traceback).
    useful = [line for line in lines if "Error" in line or "failed" in line.lower()]
    return (useful or lines or [type(exc).__name__])[-1][:300]


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
        with Watchdog(limit, lambda: set(fds)) as dog:
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
                    raise TvmDeployError(f"{what} on {self.server}: lost the connection to the device ({first_line(exc)})") from None
                raise TvmDeployError(f"{what} on {self.server} failed: {first_line(exc)}") from None

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
        host, port, matchkey = request_server(endpoint, timeout_s)
    else:
        host, port, matchkey = endpoint.host, endpoint.port, endpoint.key
    server = f"{host}:{port}"
    before = socket_fds()
    with Watchdog(timeout_s, lambda: socket_fds() - before) as dog:
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
            raise TvmDeployError(f"cannot connect to RPC server {server}: {first_line(exc)}") from None
    return RemoteSession(endpoint, session, socket_fds() - before, server, call_timeout_s)
