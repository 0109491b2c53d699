"""TVM RPC server loop run in-process on a board (stdlib + TVM runtime only: it is copied onto the board)."""

# Why not `python -m tvm.exec.rpc_server`: it starts its loop through a PopenWorker that re-executes
# `sys.executable`, and under qemu-user without binfmt_misc that exec fails ("Exec format error").
# Running TVM's own server state in this process avoids the re-exec; sessions are still forked.

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

INFO_FUNCTION = "tvmdeploy.board.info"  # remote function the host calls to learn what the board is


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--port-end", type=int, default=None, help="end of the port range (default: port + 100)")
    parser.add_argument("--tracker", default="", help="HOST:PORT of the tracker to register with")
    parser.add_argument("--key", default="")
    parser.add_argument("--custom-addr", default=None, help="address to report to the tracker")
    parser.add_argument("--load-library", default="", help="colon-separated libraries to load (absolute paths)")
    parser.add_argument("--emulated-by", default="", help="the emulator running this server, if any")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    started = time.time()
    import tvm  # noqa: F401  (~45 s under qemu-user: say so in the log)
    import tvm_ffi
    from tvm.rpc import server

    import_s = time.time() - started
    print(f"tvmdeploy-board: import tvm took {import_s:.1f} s", flush=True)

    info = {
        "arch": platform.machine(),
        "emulated": bool(args.emulated_by),
        "emulator": args.emulated_by,
        "python": platform.python_version(),
        "tvm": tvm.__version__,
        "key": args.key,
        "import_tvm_s": round(import_s, 1),
    }

    # Registered before the server forks its session processes, so every session sees it.
    @tvm_ffi.register_global_func(INFO_FUNCTION, override=True)
    def _board_info() -> str:
        return json.dumps(info)

    tracker = None
    if args.tracker:
        host, _, port = args.tracker.rpartition(":")
        tracker = (host, int(port))
    port = server._popen_start_rpc_server(
        args.host,
        args.port,
        args.port_end if args.port_end and args.port_end > args.port else args.port + 100,
        tracker_addr=tracker,
        key=args.key,
        load_library=args.load_library or None,
        custom_addr=args.custom_addr,
    )
    # The host waits for this exact line (and then for the tracker registration).
    print(f"tvmdeploy-board: listening on {args.host}:{port} key={args.key} pid={os.getpid()}", flush=True)
    server.PopenRPCServerState.current.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
