"""INT8 benchmark: our int8 build vs ONNX Runtime on the same QDQ file vs both fp32 runs, one interleaved run per model.

    .venv/bin/python tools/dev/bench_int8.py --calibration photos/ --plot docs/int8.png > int8.md
    .venv/bin/python tools/dev/bench_int8.py --calibration photos/ --models ppcls_mobilenetv2_x1_0 --profile x86-icelake-server

Each model is exported (random weights, seed 0), quantized by `tvmdeploy quantize`'s library call (QDQ, U8S8,
per-channel: ONNX Runtime's fastest int8 form on a VNNI x86), built twice with the default schedules (fp32 and
int8), and the four runtimes are timed in alternation on the same input and threads (bench_tuned's policies).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tvmdeploy.tools.dev.bench_tuned import THREADING, _ort_session, configure_tvm_threads, cpu_description, model_onnx, run_script

RUNTIMES = ("tvm_int8", "ort_int8", "tvm_fp32", "ort_fp32")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=Path, required=True, help="folder of images to calibrate on")
    parser.add_argument("--samples", type=int, default=16, help="calibration images to use (default 16)")
    parser.add_argument(
        "--models", help="comma list of zoo names, corpus architectures or float .onnx files " "(default: the card's widths)"
    )
    parser.add_argument("--profile", default="host", help="profile to build both for (default: host, this CPU)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each runtime, at least (default 50)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threading", choices=tuple(THREADING), default="sleep")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--plot", type=Path, help="PNG: latency per model and the two ratios (needs matplotlib)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_tvm_threads(args.threads, args.threading)
    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.targets import load_profile
    from tvmdeploy.tools.dev.tune_card import CARD

    if not args.calibration.is_dir():  # before any export: quantize would say so only after the first one
        raise TvmDeployError(f"calibration folder not found: {args.calibration}")

    profile = load_profile(args.profile)
    models = [m.strip() for m in (args.models or ",".join(CARD)).split(",") if m.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    rows = []
    for model in models:
        row = _measure_model(model, workdir, profile, args)
        rows.append(row)
        print(
            f"{model}: int8 {row['tvm_int8']['median_ms']:.2f} ms, ORT int8 {row['ort_int8']['median_ms']:.2f} ms, "
            f"fp32 {row['tvm_fp32']['median_ms']:.2f} ms",
            file=sys.stderr,
            flush=True,
        )
    what = cpu_description()
    print(
        int8_table(
            rows,
            f"{what}, profile {profile.name}, {args.threads} threads, threading {args.threading}, "
            f"median of {rows[0]['tvm_int8']['n'] if rows else 0} interleaved runs",
        )
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        _plot(rows, args.plot, f"INT8 vs ONNX Runtime int8 and fp32, {what}, {args.threads} threads")
    return 0


def _measure_model(model: str, workdir: Path, profile, args: argparse.Namespace) -> dict:
    import numpy as np
    import tvm
    from tvm import relax

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.measure.verify import output_step
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.quantization.calibrate import quantize_model
    from tvmdeploy.runtime.timing import interleaved

    fp32 = model_onnx(model, workdir, "--models")
    int8 = quantize_model(fp32, args.calibration, workdir / f"{fp32.stem}.int8.onnx", samples=args.samples, progress=False).output
    calls, checks, compile_s, integer, x = {}, {}, {}, "", None
    for kind, path in (("int8", int8), ("fp32", fp32)):
        mod, info = import_onnx(path)
        if x is None:  # one input for all four runtimes
            x = np.random.default_rng(0).random(info.input_shape, dtype=np.float32)
        started = time.perf_counter()
        compiled = compile_relax(mod, profile)
        compile_s[kind] = round(time.perf_counter() - started, 1)
        integer = integer or compiled.integer_summary()
        vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
        session = _ort_session(path, args)
        x_tvm, feed = tvm.runtime.tensor(x), {info.input_name: x}
        checks[kind] = float(np.abs(vm["main"](x_tvm).numpy() - session.run(None, feed)[0]).max())
        calls[f"tvm_{kind}"] = lambda vm=vm, x_tvm=x_tvm: vm["main"](x_tvm)
        calls[f"ort_{kind}"] = lambda session=session, feed=feed: session.run(None, feed)
    stats = interleaved({name: calls[name] for name in RUNTIMES}, warmup=args.warmup, min_runs=args.runs, min_seconds=0.0)
    step = output_step(int8)
    return {
        "model": Path(model).stem if model.endswith(".onnx") else model,
        "profile": profile.name,
        "threads": args.threads,
        "threading": args.threading,
        "compile_s": compile_s,
        "integer_kernels": integer,
        "max_abs_diff_int8": checks["int8"],
        "output_step": step,
        "max_abs_diff_fp32": checks["fp32"],
        **{name: stats[name].to_dict() for name in RUNTIMES},
        "int8_over_ort_int8": stats["tvm_int8"].median_ms / stats["ort_int8"].median_ms,
        "int8_over_fp32": stats["tvm_int8"].median_ms / stats["tvm_fp32"].median_ms,
    }


def int8_table(rows: list[dict], caption: str) -> str:
    lines = [
        f"{caption}:",
        "",
        "| model | TVM int8 ms | ORT int8 ms | TVM fp32 ms | ORT fp32 ms | int8 / ORT int8 | int8 / our fp32 " "| int8 parity (steps) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        steps = r["max_abs_diff_int8"] / r["output_step"] if r["output_step"] else float("nan")
        lines.append(
            f"| {r['model']} | {r['tvm_int8']['median_ms']:.2f} | {r['ort_int8']['median_ms']:.2f} | "
            f"{r['tvm_fp32']['median_ms']:.2f} | {r['ort_fp32']['median_ms']:.2f} | "
            f"**{r['int8_over_ort_int8']:.2f}x** | **{r['int8_over_fp32']:.2f}x** | {steps:.0f} |"
        )
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"tvm_int8": "TVM int8", "ort_int8": "ONNX Runtime int8", "tvm_fp32": "TVM fp32", "ort_fp32": "ONNX Runtime fp32"}
    models = [r["model"].replace("mobilenetv2_", "").replace("_mobilenet_v2", "") for r in rows]
    width = 0.8 / len(RUNTIMES)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for n, name in enumerate(RUNTIMES):
        left.bar([i + n * width for i in range(len(rows))], [r[name]["median_ms"] for r in rows], width, label=labels[name])
    for n, (key, label) in enumerate((("int8_over_ort_int8", "TVM int8 / ORT int8"), ("int8_over_fp32", "TVM int8 / TVM fp32"))):
        right.bar([i + n * 0.4 for i in range(len(rows))], [r[key] for r in rows], 0.4, label=label)
    right.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    for ax, label, shift in ((left, "latency per image, ms", width * 1.5), (right, "ratio", 0.2)):
        ax.set_xticks([i + shift for i in range(len(rows))])
        ax.set_xticklabels(models, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    run_script(main)
