"""A board's TVM RPC server, run in-process, offering the board's functions (its info, ONNX Runtime there).

    python -m tvmdeploy.runtime.rpc.board_server --tracker HOST:PORT --key KEY   (serve.py of the runtime bundle)

Needs the TVM runtime and the standard library (numpy and onnxruntime only for the ORT functions).
"""

# Why not `python -m tvm.exec.rpc_server`: it starts its loop through a PopenWorker that re-executes
# `sys.executable`, and under qemu-user without binfmt_misc that exec fails ("Exec format error").
# Running TVM's own server state in this process avoids the re-exec; sessions are still forked.

from __future__ import annotations

import argparse
import os
import sys
import time

from tvmdeploy.runtime.rpc import board_functions
from tvmdeploy.runtime.rpc.endpoint import exposure_warning, is_loopback

LISTENING = "tvmdeploy-board: listening on "  # the line the host waits for (tools/devices/board)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tvmdeploy-board-server", description="A TVM RPC server with tvmdeploy's board functions.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; see --listen-any)")
    parser.add_argument("--listen-any", action="store_true", help="listen on every interface (the server runs any code it is sent)")
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
    loopback = is_loopback(args.host)
    if args.listen_any:
        args.host = "0.0.0.0" if loopback else args.host
        print(exposure_warning(args.host), file=sys.stderr, flush=True)
    elif not loopback:
        print(f"error: refusing to listen on {args.host} without --listen-any (a TVM RPC server runs any code it is sent)", file=sys.stderr)
        return 2
    started = time.time()
    import tvm  # noqa: F401  (~45 s under qemu-user: say so in the log)
    from tvm.rpc import server

    import_s = time.time() - started
    print(f"tvmdeploy-board: import tvm took {import_s:.1f} s", flush=True)

    # Registered before the server forks its session processes, so every session sees them.
    info = board_functions.board_info(key=args.key, emulator=args.emulated_by, import_tvm_s=import_s)
    board_functions.register(info)
    ort = f"onnxruntime {info['onnxruntime']}" if info["onnxruntime"] else f"no ONNX Runtime ({info['onnxruntime_missing']})"
    print(f"tvmdeploy-board: {ort}", flush=True)

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
    print(f"{LISTENING}{args.host}:{port} key={args.key} pid={os.getpid()}", flush=True)
    server.PopenRPCServerState.current.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
