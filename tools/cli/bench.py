"""`tvmdeploy bench`: latency of an artifact against ONNX Runtime measured in the same run on the same threads."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.cli.module_opener import add_rpc_arguments, open_module, rpc_endpoint, thread_count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", type=Path, help="artifact folder written by `tvmdeploy build`")
    parser.add_argument(
        "--threads", type=thread_count, help="threads for TVM and ONNX Runtime alike (default: the profile's, else all cores)"
    )
    parser.add_argument("--runs", type=int, default=100, help="timed runs per competitor (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="keep timing until each competitor has this much (default 2)")
    parser.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime baseline")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_rpc_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tvmdeploy.compile.measure.reference import OrtModel, reference_input
    from tvmdeploy.compile.measure.verify import DEFAULT_ATOL, compare_logits, model_bounds
    from tvmdeploy.compile.quantization.agreement import agreement_summary
    from tvmdeploy.runtime.artifact import verify_onnx
    from tvmdeploy.runtime.timing import LatencyStats, blocked

    if args.runs < 1 or args.warmup < 0:
        raise TvmDeployError("--runs must be >= 1 and --warmup >= 0")
    endpoint = rpc_endpoint(args)
    remote = endpoint is not None
    module = open_module(args.artifact, endpoint, threads=args.threads, timeout_s=args.rpc_timeout, call_timeout_s=args.rpc_call_timeout)
    manifest = module.manifest
    # A remote device runs its own thread pool; the host baseline gets the host's cores, not the board's.
    threads = args.threads or (None if remote else manifest.threads) or os.cpu_count() or 1
    x = reference_input(manifest.input.shape)
    rows: dict[str, LatencyStats] = {}
    tvm_name = f"TVM {manifest.profile}" + (" (remote)" if remote else "")
    if remote:
        # The device's own timer: network round trips would swamp a few-ms kernel.
        module.time(x, number=1, repeat=max(1, args.warmup))
        rows[tvm_name] = LatencyStats.from_samples([s * 1e3 for s in module.time(x, number=1, repeat=args.runs)])
    competitors = {} if remote else {tvm_name: lambda: module.run(x)}
    parity = None
    if not args.no_ort:
        reference_onnx = verify_onnx(args.artifact, manifest)
        ort = OrtModel(reference_onnx, threads=threads)
        competitors[f"ONNX Runtime {ort.version} (host)"] = lambda: ort.run(x)
        # The same input both sides: a cross-compiled library gets its parity check here, on the device.
        bounds = model_bounds(reference_onnx)
        parity = compare_logits(
            module.run(x),
            ort.run(x),
            (manifest.parity or {}).get("atol", DEFAULT_ATOL),
            f"onnxruntime {ort.version}",
            rtol=bounds.rtol,
            step=bounds.step,
            steps=bounds.steps,
        )
    if competitors:
        # Whole blocks per runtime, alternated over rounds: each runtime's worker threads keep spinning
        # after a call, so call-by-call alternation on 2 cores makes each pay for the other's spinners.
        rows.update(blocked(competitors, warmup=args.warmup, min_runs=args.runs, min_seconds=args.min_seconds))
    emulated = module.emulated
    baseline = next((s for name, s in rows.items() if name.startswith("ONNX Runtime")), None)
    tuned = manifest.schedule_text()
    quantized = bool((manifest.tuning or {}).get("integer_kernels"))
    if args.json:
        print(
            json.dumps(
                {
                    "artifact": str(args.artifact),
                    "model": manifest.model_name,
                    "profile": manifest.profile,
                    "batch": manifest.batch,
                    "threads": threads,
                    "tuning": tuned,
                    "emulated": emulated,
                    "parity": parity.to_dict() if parity else None,
                    "int8_agreement": agreement_summary(manifest.extra) if quantized else None,
                    "results": {
                        name: {**s.to_dict(), "ratio_to_ort": (s.median_ms / baseline.median_ms) if baseline else None}
                        for name, s in rows.items()
                    },
                },
                indent=2,
            )
        )
        return 0
    where = "TVM on the device's own thread pool, ONNX Runtime on the host with" if remote else "TVM and ONNX Runtime on"
    print(f"{manifest.model_name}, batch {manifest.batch}, {tuned}; {where} {threads} thread(s)")
    if parity:
        print(parity.summary())
    if quantized:
        print(agreement_summary(manifest.extra))
    if emulated:
        print("note: the board is emulated (qemu-user): its timings say nothing about a real Cortex-A")
    width = max(len(n) for n in rows)
    print(f"| {'runtime':<{width}} | median ms |   p10 ms |   p90 ms |     n |  vs ORT |")
    print(f"|{'-' * (width + 2)}|----------:|---------:|---------:|------:|--------:|")
    for name, s in rows.items():
        ratio = f"{s.median_ms / baseline.median_ms:.2f}x" if baseline else "n/a"
        print(f"| {name:<{width}} | {s.median_ms:9.3f} | {s.p10_ms:8.3f} | {s.p90_ms:8.3f} | {s.n:5d} | {ratio:>7} |")
    return 0
