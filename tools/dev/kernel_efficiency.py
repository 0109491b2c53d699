"""Per kernel class: GFLOP/s and % of the FMA peak for raw lowering, the default schedules and a tuning log.

    .venv/bin/python tools/dev/kernel_efficiency.py --onnx mnv2.onnx --profile x86-avx512
    .venv/bin/python tools/dev/kernel_efficiency.py --onnx mnv2.onnx --profile x86-avx2 --peak-gmacs 64

Each variant is built (no parity check: the build verb does that), every kernel timed inside the network
through the VM's instrument hook (compile/measure/kernel_breakdown.py), and its FLOPs taken from the TIR of the
tasks the tuner sees. The peak is `tools/dev/fma_peak.c` compiled for the profile's ISA and run here, unless
given; it is per core and multiplied by the threads.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = ("none", "defaults", "shipped")  # --tuning-log words: raw lowering, default schedules, the shipped log


def measure_peak_gmacs(isa: str) -> float:
    """One core's fp32 multiply-adds per second (GMAC/s) from tools/dev/fma_peak.c."""
    source = Path(__file__).with_name("fma_peak.c")
    flags = ["-mavx512f", "-DUSE_AVX512"] if isa == "avx512" else ["-mavx2", "-mfma"]
    binary = Path(tempfile.mkdtemp(prefix="fma-peak-")) / "fma_peak"
    subprocess.run(["gcc", "-O3", "-funroll-all-loops", *flags, str(source), "-o", str(binary)], check=True)
    output = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([\d.]+) GMAC/s", output).group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-gmacs", type=float, help="one core's FMA peak (default: run tools/dev/fma_peak.c)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("TVM_BIND_THREADS", "0")

    import numpy as np
    import tvm

    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.measure.kernel_breakdown import kernel_breakdown
    from tvmdeploy.compile.schedules.cpu_vector import vector_unit
    from tvmdeploy.compile.tuning.driver import prepared_tasks
    from tvmdeploy.runtime.loader import LocalModule
    from tvmdeploy.targets import load_profile

    profile = load_profile(args.profile)
    isa = vector_unit(tvm.target.Target(profile.target)).isa
    peak_gmacs = args.peak_gmacs or measure_peak_gmacs(isa)
    peak_gflops = 2 * peak_gmacs * args.threads
    flops = {i.name: i.flops for i in prepared_tasks(args.onnx, profile)[1]}
    table: dict[str, dict[str, tuple[float, float]]] = {}  # class -> variant -> (flops, seconds)
    end_to_end = {}
    for variant in VARIANTS:
        folder = Path(tempfile.mkdtemp(prefix=f"eff-{variant}-")) / "art"
        result = build_artifact(args.onnx, profile, folder, tuning_log=variant, verify=False)
        if variant == "shipped" and not result.manifest.is_tuned:
            print(f"no shipped log for this model on {profile.name}: no tuned column", file=sys.stderr)
            continue
        module = LocalModule(folder)
        x = np.random.default_rng(0).random(module.manifest.input.shape, dtype=np.float32)
        breakdown = kernel_breakdown(module, x, repeats=args.repeats)
        end_to_end[variant] = breakdown.end_to_end_ms
        for kernel in breakdown.kernels:
            base = kernel.name.removesuffix("_prepacked")
            work = flops.get(base, 0.0) * kernel.calls
            done_flops, seconds = table.setdefault(kernel.op_class, {}).get(variant, (0.0, 0.0))
            table[kernel.op_class][variant] = (done_flops + work, seconds + kernel.median_us * 1e-6)
    shown = [v for v in VARIANTS if v in end_to_end]
    names = {"none": "raw lowering", "defaults": "default schedules", "shipped": "tuning log"}
    print(
        f"{args.onnx.name}, {profile.name} ({isa}), {args.threads} threads; peak {peak_gmacs:.1f} GMAC/s/core "
        f"= {peak_gflops:.0f} GFLOP/s on {args.threads} cores"
    )
    print("| class | " + " | ".join(f"{names[v]} GFLOP/s (% peak)" for v in shown) + " |")
    print("|---|" + "--:|" * len(shown))
    for op_class, cells in table.items():
        if op_class == "vm":
            continue
        row = []
        for variant in shown:
            work, seconds = cells.get(variant, (0.0, 0.0))
            rate = work / seconds / 1e9 if seconds and work else 0.0
            row.append(f"{rate:.1f} ({100 * rate / peak_gflops:.0f}%)" if rate else "-")
        print(f"| {op_class} | " + " | ".join(row) + " |")
    print("| end to end ms | " + " | ".join(f"{end_to_end[v]:.2f}" for v in shown) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
