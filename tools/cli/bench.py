"""`tvmdeploy bench`: latency of an artifact against ONNX Runtime measured in the same run, on the same device and threads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tvmdeploy.tools.cli.module_opener import add_rpc_arguments, thread_count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", type=Path, help="artifact folder written by `tvmdeploy build`")
    parser.add_argument(
        "--threads",
        type=thread_count,
        help="threads for TVM and ONNX Runtime alike (here default: the profile's, else all cores; on a device: TVM's pool there)",
    )
    parser.add_argument("--runs", type=int, default=100, help="timed runs per competitor (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="keep timing until each competitor has this much (default 2)")
    parser.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime baseline")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_rpc_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import tvmdeploy

    result = tvmdeploy.bench(
        args.artifact,
        args.rpc_tracker,
        args.rpc_key,
        args.threads,
        rpc_server=args.rpc,
        runs=args.runs,
        warmup=args.warmup,
        min_seconds=args.min_seconds,
        onnxruntime=not args.no_ort,
        timeout_s=args.rpc_timeout,
        call_timeout_s=args.rpc_call_timeout,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if not result.remote:
        where = "TVM and ONNX Runtime on"
    elif result.ort_where == "device":
        where = "TVM and ONNX Runtime both on the device, timed by its clock, with"
    else:
        where = "TVM alone on the device, timed by its clock, with"
    print(f"{result.model}, batch {result.batch}, {result.tuning}; {where} {result.threads} thread(s)")
    if result.parity:
        print(result.parity.summary())
    if result.int8_agreement:
        print(result.int8_agreement)
    if result.ort_note:
        print(f"note: {result.ort_note}; TVM figures alone")
    if result.emulated:
        print("note: the board is emulated (qemu-user): its timings say nothing about a real Cortex-A")
    width = max(len(n) for n in result.rows)
    print(f"| {'runtime':<{width}} | median ms |   p10 ms |   p90 ms |     n |  vs ORT |")
    print(f"|{'-' * (width + 2)}|----------:|---------:|---------:|------:|--------:|")
    for name, s in result.rows.items():
        ratio = result.ratio(name)
        shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
        print(f"| {name:<{width}} | {s.median_ms:9.3f} | {s.p10_ms:8.3f} | {s.p90_ms:8.3f} | {s.n:5d} | {shown:>7} |")
    return 0
