"""`tvmdeploy board up|down|status|build`: the emulated aarch64 board (qemu-user) as an RPC device."""

from __future__ import annotations

import argparse
import time

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc import TRACKER_START_WAIT_S, RpcEndpoint, wait_for_tracker
from tvmdeploy.tools.devices import board, rpc_services

EMULATION_CAVEAT = "emulated by {emulator}: its timings are not a Cortex-A's, they only prove the workflow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="board_command", metavar="COMMAND")
    sub.required = True
    arches = sorted(board.ARCHES)

    up = sub.add_parser("up", help="build the board once (cached), start its RPC server(s), wait until registered")
    up.add_argument("--arch", choices=arches, default="aarch64", help="board architecture (default aarch64)")
    up.add_argument("--key", default=board.DEFAULT_KEY, help=f"device key to register under (default {board.DEFAULT_KEY})")
    up.add_argument("--tracker", metavar="HOST:PORT", help="tracker to register with (default: none, connect with --rpc)")
    up.add_argument(
        "--tracker-wait",
        type=float,
        default=TRACKER_START_WAIT_S,
        metavar="S",
        help=f"seconds to wait for a tracker that is still starting (default {TRACKER_START_WAIT_S:g})",
    )
    up.add_argument("--count", type=int, default=1, help="servers to start with this key: a device farm (default 1)")
    up.add_argument("--host", default="127.0.0.1", help="address the server binds (default 127.0.0.1; others need --listen-any)")
    up.add_argument("--port", type=int, default=9090, help="first port to try (default 9090)")
    up.add_argument("--listen-any", action="store_true", help="allow binding beyond loopback")
    up.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the server(s) to register (default 600)")
    up.add_argument("--rebuild", action="store_true", help="rebuild the board root first")

    down = sub.add_parser("down", help="stop the board servers started from this machine")
    down.add_argument("--arch", choices=arches, default="aarch64")
    down.add_argument("--key", help="stop only the servers with this key")

    status = sub.add_parser("status", help="list the board servers started from this machine")
    status.add_argument("--arch", choices=arches, default="aarch64")

    build = sub.add_parser("build", help="build (or rebuild) the board root without starting anything")
    build.add_argument("--arch", choices=arches, default="aarch64")
    build.add_argument("--rebuild", action="store_true", help="rebuild even if already built")


def run(args: argparse.Namespace) -> int:
    if args.board_command == "up":
        return _up(args)
    if args.board_command == "down":
        stopped = board.stop(arch=args.arch, key=args.key)
        for server in stopped:
            print(f"stopped board server pid {server.pid} (key '{server.key}', port {server.port})")
        if not stopped:
            print("no board servers were running" + (f" with key '{args.key}'" if args.key else ""))
        return 0
    if args.board_command == "build":
        root = board.ensure_built(args.arch, rebuild=args.rebuild)
        print(f"board root ready: {root.dir}")
        return 0
    return _status(args)


def _up(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise TvmDeployError("--count must be at least 1")
    tracker = RpcEndpoint.parse(args.tracker, args.key, param="tracker") if args.tracker else None
    RpcEndpoint.parse("127.0.0.1:1", args.key)  # validates the key
    host = rpc_services.check_bind(args.host, args.listen_any, "board's RPC server")
    if args.rebuild:
        board.ensure_built(args.arch, rebuild=True)
    if tracker is not None:
        # `tvmdeploy rpc tracker &` just before this command is still importing TVM: wait for it, saying so.
        wait_for_tracker(tracker, args.tracker_wait, on_wait=lambda message: print(message, flush=True))
    started = time.monotonic()
    print(f"starting {args.count} {args.arch} board server(s) under qemu-user (first start builds the board root) ...", flush=True)
    servers = board.start(
        arch=args.arch,
        key=args.key,
        tracker=tracker,
        host=host,
        port=args.port,
        count=args.count,
        timeout_s=args.timeout,
        tracker_wait_s=args.tracker_wait,
    )
    for server in servers:
        print(f"board server pid {server.pid} listening on {server.host}:{server.port}, key '{server.key}'")
    took = time.monotonic() - started
    if tracker:
        print(
            f"registered with tracker {tracker.address} in {took:.0f} s; " f"run with: --rpc-tracker {tracker.address} --rpc-key {args.key}"
        )
    else:
        print(f"ready in {took:.0f} s; run with: --rpc {servers[0].host}:{servers[0].port} --rpc-key {args.key}")
    print("note: this board is " + EMULATION_CAVEAT.format(emulator=servers[0].emulator))
    return 0


def _status(args: argparse.Namespace) -> int:
    servers = board.status(args.arch)
    root = board.BoardRoot(board.board_dir(args.arch), board.ARCHES[args.arch])
    print(f"board root: {root.dir} ({'built' if root.built else 'not built yet'})")
    if not servers:
        print("no board servers running")
        return 0
    for s in servers:
        state = "running" if s.alive else "dead (state removed)"
        via = f"tracker {s.tracker}" if s.tracker else "direct"
        print(f"pid {s.pid}: {state}, key '{s.key}', {s.host}:{s.port}, {via}, log {s.log}")
    emulators = sorted({s.emulator for s in servers if s.emulated})
    if emulators:
        print("note: these servers are " + EMULATION_CAVEAT.format(emulator=", ".join(emulators)))
    return 0
