"""`tvmdeploy rpc tracker|server|status`: TVM's RPC tracker and server in the foreground, and the tracker's queue."""

from __future__ import annotations

import argparse
import json

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc import RpcEndpoint, tracker_summary
from tvmdeploy.tools.devices import rpc_services


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rpc_command", metavar="COMMAND")
    sub.required = True

    tracker = sub.add_parser(
        "tracker",
        help="run an RPC tracker until Ctrl-C",
        description="Run TVM's RPC tracker until Ctrl-C. Servers register with it; clients ask it for a free device.",
    )
    tracker.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --listen-any)")
    tracker.add_argument("--port", type=int, default=9190, help="port to bind (default 9190)")
    tracker.add_argument("--listen-any", action="store_true", help="allow binding beyond loopback (0.0.0.0 if --host is not given)")

    server = sub.add_parser(
        "server",
        help="run an RPC server on this machine until Ctrl-C",
        description="Run TVM's RPC server until Ctrl-C. It runs any code a client sends: loopback only by default.",
    )
    server.add_argument("--key", default="", help="device key to register under (required with --tracker)")
    server.add_argument("--tracker", metavar="HOST:PORT", help="tracker to register with (default: none, connect with --rpc)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --listen-any)")
    server.add_argument("--port", type=int, default=9090, help="first port to try (default 9090; the next free one up to 9199)")
    server.add_argument("--listen-any", action="store_true", help="allow binding beyond loopback (0.0.0.0 if --host is not given)")
    server.add_argument("--load-library", metavar="LIB[:LIB]", help="extra shared libraries the server loads")

    status = sub.add_parser("status", help="show the tracker's servers and queue")
    status.add_argument("--tracker", metavar="HOST:PORT", default="127.0.0.1:9190", help="tracker (default 127.0.0.1:9190)")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the tracker (default 10)")
    status.add_argument("--json", action="store_true", help="print the tracker's raw summary as JSON")


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise TvmDeployError(f"--port must be 1..65535, got {port}")


def run(args: argparse.Namespace) -> int:
    if args.rpc_command == "tracker":
        _check_port(args.port)
        host = rpc_services.check_bind(args.host, args.listen_any, "RPC tracker")

        def ready(port: int) -> None:
            print(f"RPC tracker listening on {host}:{port} (Ctrl-C to stop)", flush=True)

        rpc_services.serve_tracker(host, args.port, on_ready=ready)
        return 0

    if args.rpc_command == "server":
        _check_port(args.port)
        if args.tracker and not args.key:
            raise TvmDeployError("--tracker needs --key: the device key clients will ask the tracker for")
        tracker = RpcEndpoint.parse(args.tracker, args.key, param="tracker") if args.tracker else None
        if args.key:
            RpcEndpoint.parse("127.0.0.1:1", args.key)  # same key rules as clients use
        host = rpc_services.check_bind(args.host, args.listen_any, "RPC server")

        def ready(port: int) -> None:
            where = f"registering as '{args.key}' with tracker {tracker.address}" if tracker else f"connect with --rpc {host}:{port}"
            print(f"RPC server listening on {host}:{port}, {where} (Ctrl-C to stop)", flush=True)

        rpc_services.serve_server(
            host,
            args.port,
            key=args.key,
            tracker=tracker,
            load_library=args.load_library,
            on_ready=ready,
            on_wait=lambda message: print(message, flush=True),
        )
        return 0

    endpoint = RpcEndpoint.parse(args.tracker, "", via_tracker=False, param="tracker")
    summary = tracker_summary(endpoint, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print(f"RPC tracker {endpoint.address}")
    print(rpc_services.format_summary(summary, _local_emulated_keys()))
    return 0


def _local_emulated_keys() -> set[str]:
    """Keys served by emulated boards started from this machine (their timings need a caveat)."""
    from tvmdeploy.tools.devices import board

    return {s.key for s in board.status() if s.alive and s.emulated}
