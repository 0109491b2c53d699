"""`tvmdeploy compare`: latency of several targets (local or over RPC) and host baselines in one table and chart."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.cli.module_opener import DEFAULT_RPC_CALL_TIMEOUT_S, DEFAULT_RPC_TIMEOUT_S, thread_count

_TARGET_HELP = """\
each TARGET is an artifact folder or a profile name (built from --model into OUT/<profile>-b<batch>),
optionally followed by where it runs:
  NAME                               here (or, for a profile of another arch, its rpc_key via --rpc-tracker)
  NAME@KEY                           device KEY behind --rpc-tracker, e.g. arm-cortex-a72@qemu-aarch64
  NAME@key=KEY,tracker=HOST:PORT     device KEY behind that tracker
  NAME@rpc=HOST:PORT[,key=KEY]       a directly reachable RPC server (key= if it checks one, as the board does)
  NAME@emulated                      an emulated aarch64 board started for this run and stopped after it"""

EMULATED = "emulated"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _TARGET_HELP
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="artifact folder or profile, optionally @WHERE (see below)")
    parser.add_argument("--model", type=Path, metavar="M.onnx", help="ONNX model: profiles are built from it, baselines run it")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("compare-out"),
        help="folder for built artifacts, re-batched ONNX and the chart (default compare-out)",
    )
    parser.add_argument("--batch", type=int, help="also measure this larger batch (profiles are built at 1 and N)")
    parser.add_argument(
        "--threads", type=thread_count, help="threads for every host competitor (default: the first local artifact's profile)"
    )
    parser.add_argument("--runs", type=int, default=50, help="timed runs per competitor, at least (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="keep timing until each has this much (default 1)")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="time budget per remote competitor; fewer runs when a run is slow (default 60)"
    )
    parser.add_argument(
        "--baselines",
        default="onnxruntime,pytorch",
        help="host baselines, comma-separated from onnxruntime,pytorch, or 'none' (default both)",
    )
    parser.add_argument("--torch-weights", type=Path, metavar="FILE", help="checkpoint the ONNX was exported from (for the PyTorch row)")
    parser.add_argument(
        "--tuning-log",
        action="append",
        default=[],
        metavar="PROFILE=DIR",
        help="also build PROFILE with this MetaSchedule database, or with 'shipped' (repeatable); its default schedules are measured too",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild profile targets even if OUT holds a matching artifact")
    parser.add_argument("--format", choices=("md", "csv", "json"), default="md", help="table format (default md)")
    parser.add_argument("--chart", type=Path, help="PNG chart path (default OUT/compare.png)")
    parser.add_argument("--no-chart", action="store_true", help="write no chart")
    parser.add_argument(
        "--breakdown", metavar="TARGET", help="also time each fused kernel of this local artifact or profile target (batch 1)"
    )
    parser.add_argument("--rpc-tracker", metavar="HOST:PORT", help="tracker for NAME@KEY targets")
    parser.add_argument(
        "--rpc-timeout",
        type=float,
        default=DEFAULT_RPC_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for a device (default {DEFAULT_RPC_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--rpc-call-timeout",
        type=float,
        default=DEFAULT_RPC_CALL_TIMEOUT_S,
        metavar="S",
        help=f"seconds one call on a device may take (default {DEFAULT_RPC_CALL_TIMEOUT_S:g})",
    )


def _tuning_logs(items: list[str]) -> dict[str, str]:
    """PROFILE -> a database folder or a log word (auto, shipped; compile/tuning/log_choice.LogChoice reads it)."""
    logs = {}
    for item in items:
        profile, sep, folder = item.partition("=")
        if not sep or not profile or not folder:
            raise TvmDeployError(f"--tuning-log expects PROFILE=DIR (or PROFILE=shipped), got {item!r}")
        logs[profile] = folder
    return logs


def _baselines(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _start_emulated_board(targets: list[str]) -> tuple[list[str], str | None]:
    """Targets with `@emulated` pointed at a board started now (its key, to stop it), or unchanged."""
    if not any(t.endswith("@" + EMULATED) for t in targets):
        return targets, None
    import os

    from tvmdeploy.tools.devices import board

    key = f"compare-{os.getpid()}"
    server = board.start(key=key)[0]
    print(
        f"[compare] started an emulated aarch64 board (key {key}, port {server.port}); it stops when the comparison ends",
        file=sys.stderr,
        flush=True,
    )
    where = f"@rpc=127.0.0.1:{server.port},key={key}"
    return [t[: -len(EMULATED) - 1] + where if t.endswith("@" + EMULATED) else t for t in targets], key


def run(args: argparse.Namespace) -> int:
    targets, board_key = _start_emulated_board(list(args.targets))
    try:
        return _run(args, targets)
    finally:
        if board_key:
            from tvmdeploy.tools.devices import board

            board.stop(key=board_key)


def _run(args: argparse.Namespace, targets: list[str]) -> int:
    import tvmdeploy

    log = lambda message: print(f"[compare] {message}", file=sys.stderr, flush=True)  # noqa: E731
    rows = tvmdeploy.compare(
        targets,
        args.model,
        out_dir=args.output,
        batch=args.batch,
        threads=args.threads,
        warmup=args.warmup,
        runs=args.runs,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        baselines=_baselines(args.baselines),
        rpc_tracker=args.rpc_tracker,
        timeout_s=args.rpc_timeout,
        call_timeout_s=args.rpc_call_timeout,
        tuning_logs=_tuning_logs(args.tuning_log),
        torch_weights=args.torch_weights,
        rebuild=args.rebuild,
        log=log,
    )
    records = [r.to_dict() for r in rows]
    for record, row in zip(records, rows):
        # The full remote description (with its caveat) is long; the table keeps its first clause.
        record["device"] = row.device.split(";")[0]
    breakdown = _breakdown(args, log) if args.breakdown else None
    chart = None
    if not args.no_chart:
        from tvmdeploy.tools.cli.chart import breakdown_chart, latency_chart

        chart = latency_chart(records, args.chart or args.output / "compare.png", title=_title(args, rows))
        if breakdown is not None:
            breakdown_chart(
                breakdown.by_class(), chart.with_name(chart.stem + "-breakdown.png"), title=f"kernel time by class: {args.breakdown}"
            )
    if args.format == "json":
        print(
            json.dumps(
                {"rows": records, "chart": str(chart) if chart else None, "breakdown": breakdown.to_dict() if breakdown else None}, indent=2
            )
        )
    elif args.format == "csv":
        print(format_csv(records), end="")
    else:
        print(format_markdown(records))
        print("\nvs ORT: against ONNX Runtime on the same device: here for local targets, the board's own for a remote one.")
        if any(r["emulated"] for r in records):
            print("\n(emulated) rows ran under an emulator (qemu-user): their timings say nothing about the real CPU.")
        if breakdown is not None:
            from tvmdeploy.compile.measure.kernel_breakdown import format_breakdown

            print(f"\nper-kernel breakdown of {args.breakdown}:\n")
            print(format_breakdown(breakdown))
        if chart:
            print(f"\nchart: {chart}")
    failed = [r for r in records if r["status"] == "failed"]
    return 1 if failed and len(failed) == len(records) else 0


def _title(args: argparse.Namespace, rows) -> str:
    model = args.model.stem if args.model else next((Path(r.artifact).name for r in rows if r.artifact), "")
    threads = next((r.threads for r in rows if r.threads), 0)
    return f"{model}: latency per target ({threads} host thread(s))"


def _breakdown(args: argparse.Namespace, log):
    """Per-kernel times of --breakdown: an artifact folder, or a profile already built for this comparison."""
    from tvmdeploy.compile.measure.kernel_breakdown import kernel_breakdown
    from tvmdeploy.compile.measure.reference import reference_input
    from tvmdeploy.runtime.loader import LocalModule

    folder = Path(args.breakdown)
    if not folder.is_dir():
        folder = args.output / f"{args.breakdown}-b1"
        if not folder.is_dir():
            raise TvmDeployError(f"--breakdown {args.breakdown}: not an artifact folder, nor a profile built by this comparison")
    log(f"per-kernel breakdown of {folder}")
    module = LocalModule(folder, threads=args.threads)
    return kernel_breakdown(module, reference_input(module.manifest.input.shape), repeats=max(5, min(args.runs, 30)))


def _ms(value) -> str:
    return "" if value is None else f"{value:.3f}"


def format_markdown(records: list[dict]) -> str:
    header = ["target", "batch", "device", "tuning", "median ms", "p10 ms", "p90 ms", "img/s", "vs ORT", "parity"]
    lines = ["| " + " | ".join(header) + " |", "|---|--:|---|---|--:|--:|--:|--:|--:|---|"]
    for r in records:
        label = r["label"] + (" (emulated)" if r["emulated"] else "")
        if r["status"] != "ok":
            cells = [label, str(r["batch"]), r["device"], r["tuning"], f"{r['status']}: {r['error']}", "", "", "", "", ""]
        else:
            ratio = f"{r['ratio_to_ort']:.2f}x" if r["ratio_to_ort"] is not None else "n/a"
            ips = f"{r['images_per_second']:.1f}" if r["images_per_second"] else ""
            cells = [
                label,
                str(r["batch"]),
                r["device"],
                r["tuning"],
                _ms(r["median_ms"]),
                _ms(r["p10_ms"]),
                _ms(r["p90_ms"]),
                ips,
                ratio,
                r["parity"],
            ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


CSV_FIELDS = (
    "label",
    "kind",
    "batch",
    "device",
    "emulated",
    "tuning",
    "status",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "n",
    "images_per_second",
    "ratio_to_ort",
    "parity",
    "error",
    "artifact",
    "threads",
)


def format_csv(records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()
