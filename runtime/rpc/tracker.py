"""TVM's RPC tracker protocol with a timeout on every read and write: summary, wait for start, request a server."""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc.endpoint import RpcEndpoint

logger = logging.getLogger(__name__)
TRACKER_START_WAIT_S = 30.0  # `tvmdeploy rpc tracker &` needs ~8 s (importing TVM) before it listens


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


def request_server(endpoint: RpcEndpoint, timeout_s: float) -> tuple[str, int, str]:
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
