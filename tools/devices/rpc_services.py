"""TVM's own RPC tracker and server, run in the foreground, bound to loopback unless told otherwise."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.rpc import RpcEndpoint, servers_for_key
from tvmdeploy.runtime.rpc.endpoint import exposure_warning, is_loopback


def check_bind(host: str, listen_any: bool, what: str) -> str:
    """The address to bind: loopback by default; anything else only with --listen-any (and a warning)."""
    if listen_any and host in ("", "127.0.0.1"):
        host = "0.0.0.0"
    if is_loopback(host):
        return host
    if not listen_any:
        raise TvmDeployError(
            f"refusing to bind the {what} to {host}: a TVM RPC server runs any code it is sent; "
            f"pass {arg('listen_any')} to accept connections from other machines",
            param="listen_any",
        )
    print(exposure_warning(host), file=sys.stderr, flush=True)
    return host


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the `finally` that stops TVM's worker process always runs."""

    def _raise(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_forever(worker: Any) -> None:
    """Block until TVM's worker process dies or we are interrupted."""
    while worker is not None and worker.is_alive():
        time.sleep(0.5)


def start_tracker(host: str = "127.0.0.1", port: int = 9190) -> Any:
    """TVM's tracker (in a TVM PopenWorker process) bound to exactly host:port."""
    from tvm.rpc.tracker import Tracker  # lazy: tornado and the RPC stack load only for this verb

    try:
        return Tracker(host, port=port, port_end=port + 1, silent=True)
    except (ValueError, OSError, RuntimeError) as exc:
        raise TvmDeployError(f"cannot start the RPC tracker on {host}:{port}: {_reason(exc)}") from None


def stop_tracker(tracker: Any) -> None:
    try:
        tracker.terminate()  # asks it to stop through 127.0.0.1, which fails when bound elsewhere
    except (OSError, AssertionError, RuntimeError):
        if tracker.proc is not None:
            tracker.proc.kill()
            tracker.proc = None


def serve_tracker(host: str, port: int, on_ready: Callable[[int], None] | None = None) -> None:
    """Run a tracker until interrupted."""
    tracker = start_tracker(host, port)
    _serve(tracker.proc, tracker.port, on_ready, stop=lambda: stop_tracker(tracker))


def start_server(
    host: str = "127.0.0.1",
    port: int = 9090,
    *,
    key: str = "",
    tracker: RpcEndpoint | None = None,
    load_library: str | None = None,
    port_end: int = 9199,
) -> Any:
    """TVM's RPC server (in a TVM PopenWorker process): the first free port in [port, port_end), offering the board
    functions (runtime/rpc/board_functions.py: what it is, ONNX Runtime there) like a board's server does."""
    import functools

    from tvm import rpc  # lazy

    from tvmdeploy.runtime.rpc.board_functions import register_here

    try:
        return rpc.Server(
            host,
            port=port,
            port_end=max(port_end, port + 1),
            key=key,
            tracker_addr=(tracker.host, tracker.port) if tracker else None,
            load_library=load_library,
            silent=True,
            # Run in TVM's server process before it forks sessions (pickled by reference: a module-level function).
            server_init_callback=functools.partial(register_here, key),
        )
    except (ValueError, OSError, RuntimeError) as exc:
        raise TvmDeployError(f"cannot start the RPC server on {host}:{port}: {_reason(exc)}") from None


def serve_server(
    host: str,
    port: int,
    *,
    key: str,
    tracker: RpcEndpoint | None,
    load_library: str | None = None,
    on_ready: Callable[[int], None] | None = None,
    tracker_wait_s: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Run a server until interrupted (registered with the tracker when one is given).

    A tracker still starting is waited for up to `tracker_wait_s` (default TRACKER_START_WAIT_S);
    `on_wait(message)` is told when that wait begins.
    """
    if tracker is not None:
        from tvmdeploy.runtime.rpc import TRACKER_START_WAIT_S, wait_for_tracker

        tracker_wait_s = TRACKER_START_WAIT_S if tracker_wait_s is None else tracker_wait_s
        # Wait for a tracker that is still starting; fail now, not in TVM's retry loop, when it is not there.
        wait_for_tracker(tracker, tracker_wait_s, on_wait=on_wait)
    server = start_server(host, port, key=key, tracker=tracker, load_library=load_library)
    _serve(server.proc, server.port, on_ready, stop=server.terminate)


def _serve(proc: Any, port: int, on_ready: Callable[[int], None] | None, stop: Callable[[], None]) -> None:
    """Report the port, then wait on TVM's service process until a signal or Ctrl-C; always stop it."""
    try:
        with _stop_on_signals():
            if on_ready:
                on_ready(port)
            _wait_forever(proc)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


def _reason(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def format_summary(summary: dict[str, Any], emulated_keys: set[str] | None = None) -> str:
    """The tracker's queue as a table: key, servers, free, pending, and server addresses."""
    emulated_keys = emulated_keys or set()
    queue = summary.get("queue_info", {})
    keys = sorted(set(queue) | {s.get("key", "").removeprefix("server:") for s in summary.get("server_info", [])} - {""})
    if not keys:
        return "no servers registered and no requests waiting"
    width = max(len("key"), *(len(k) for k in keys))
    lines = [f"{'key':<{width}}  servers  free  pending  addresses"]
    for key in keys:
        addresses = servers_for_key(summary, key)
        info = queue.get(key, {})
        note = "  (emulated: timings are not the real CPU's)" if key in emulated_keys else ""
        lines.append(
            f"{key:<{width}}  {len(addresses):>7}  {info.get('free', 0):>4}  {info.get('pending', 0):>7}  "
            f"{', '.join(addresses) or '-'}{note}"
        )
    return "\n".join(lines)
