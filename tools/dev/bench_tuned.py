"""Headline benchmark: TVM as `build` makes it vs ONNX Runtime, same process and threads, interleaved.

    .venv/bin/python tools/dev/bench_tuned.py                      # torchvision MobileNetV2 x1.0, best shipped profile here
    .venv/bin/python tools/dev/bench_tuned.py --profile x86-avx2 --threading spin-in-run
    .venv/bin/python tools/dev/bench_tuned.py --onnx M.onnx --runs 100 --json out.json
    .venv/bin/python tools/dev/bench_tuned.py --tuning-log FULL_DB --curve 500,1000,all --plot docs/x.png
    .venv/bin/python tools/dev/bench_tuned.py --card --plot docs/card.png > card.md   # every width x x86 profile
    .venv/bin/python tools/dev/bench_tuned.py --model ppcls_mobilenetv2_x2_0 --ab defaults,shipped,DIR   # A/B builds

`--curve` replays a database's first N records (the file is in measurement order), i.e. the latency
the model had after N trials, each point measured against ONNX Runtime like the headline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Both runtimes' idle pool threads spin by default, long after a call returns. Interleaved on 2 cores,
# each one's spinners steal the CPU the other needs (measured: TVM 33 ms with both spinning, 10.9 ms
# with only ORT spinning, 7.0 ms with neither). Two symmetric policies avoid that:
#   sleep:       no spinning at all; every parallel kernel wakes its workers (a futex wake each).
#   spin-in-run: workers spin between the kernels of one inference and sleep soon after it ends:
#                ORT by force_spinning_stop at the end of Run(), TVM by a short spin count (~1000
#                sched_yield calls, well under a millisecond; its default is 300000).
THREADING = {
    "sleep": {"tvm_spin_count": 0, "ort": {"session.intra_op.allow_spinning": "0"}},
    "spin-in-run": {"tvm_spin_count": 1000, "ort": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"}},
}
# fastest first (compile/tuning/log_choice.X86_PROFILES, spelt out: this script imports nothing of ours at load time)
AUTO_PROFILES = ("x86-avx512", "x86-avx2")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, help="ONNX model (default: export the zoo's --model, random weights)")
    parser.add_argument("--model", default="torchvision_mobilenet_v2", help="zoo model to export when --onnx is not given")
    parser.add_argument(
        "--profile", help="default: the first of " + ", ".join(AUTO_PROFILES) + " that runs on this CPU and has a shipped log for the model"
    )
    parser.add_argument(
        "--tuning-log",
        metavar="DIR|auto|shipped|defaults|none",
        default="auto",
        help="database folder; 'auto' (default): what `build` applies, the shipped log matching the "
        "model if it was tuned on this CPU kind; 'shipped': that log whatever CPU it was tuned "
        "on; 'defaults': no log, the default schedules only; 'none': TVM's raw lowering",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads for both runtimes (default 2)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each runtime, at least (default 50)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--bind-threads", action="store_true", help="let TVM pin its threads to cores (default: unpinned)")
    parser.add_argument(
        "--threading",
        choices=tuple(THREADING),
        default="sleep",
        help="idle worker threads of both runtimes: 'sleep' at once (default), or 'spin-in-run': "
        "spin between the kernels of one inference, sleep after it (ORT force_spinning_stop)",
    )
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    parser.add_argument(
        "--curve",
        help="comma list of record counts, 'all', or minutes of search like '5m' "
        "(from the database's logs/progress.csv) to measure latency vs trials or minutes",
    )
    parser.add_argument("--plot", type=Path, help="PNG for --curve or --card (needs matplotlib)")
    parser.add_argument(
        "--card",
        action="store_true",
        help="every card model x every profile of " + ", ".join(AUTO_PROFILES) + " this CPU runs: "
        "a markdown table (stdout) of TVM ms, ORT ms, ratio and tasks from the log `build` applies",
    )
    parser.add_argument(
        "--card-models",
        metavar="NAMES",
        help="comma list of zoo names, corpus architectures (compile/models/architectures.py: "
        "efficientnet_b0, mixnet_s, ...) or .onnx files for --card (default: the card's widths, "
        "tools/dev/tune_card.CARD)",
    )
    parser.add_argument(
        "--ab",
        metavar="LOGS",
        help="comma list of --tuning-log values (DIR, auto, shipped, defaults, "
        "none): one build each, all timed with ONNX Runtime in one interleaved run (is a log worth it here?)",
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_tvm_threads(args.threads, args.threading, bind=args.bind_threads)

    if args.card or args.card_models:
        return _card(args)

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.runtime.artifact import tuned_tasks
    from tvmdeploy.runtime.errors import TvmDeployError

    onnx_path = args.onnx
    if onnx_path is None:
        from tvmdeploy.compile.models.export import export_onnx

        onnx_path = Path(tempfile.mkdtemp(prefix="bench-tuned-")) / f"{args.model}.onnx"
        export_onnx(args.model, onnx_path, seed=0)
    mod, info = import_onnx(onnx_path)
    if args.ab:
        return _ab(args, onnx_path, mod, info)
    profile, database = _pick_profile(args, mod)
    if args.curve and database is None:
        raise TvmDeployError(
            f"--curve needs a tuning log: --tuning-log {args.tuning_log} gave none for {profile.name} "
            "here (pass a database folder, or 'shipped')"
        )
    if args.curve:
        database = _unpacked(Path(database))
        rows = []
        for point in args.curve.split(","):
            minutes, count = _curve_point(Path(database), point.strip())
            folder, trials = _prefix_copy(Path(database), count)
            result = _measure(onnx_path, mod, info, profile, folder, args)
            result["trials"] = trials
            if minutes is not None:
                result["minutes"] = minutes
            rows.append(result)
            print(
                f"{trials:>6} trials: TVM {result['tvm']['median_ms']:.2f} ms, ORT {result['ort']['median_ms']:.2f} ms, "
                f"ratio {result['ratio_tvm_over_ort']:.2f}x",
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
        if args.plot:
            _plot(rows, args.plot, f"{onnx_path.name}, {profile.name}, {args.threads} threads")
        return 0
    result = _measure(onnx_path, mod, info, profile, database, args)
    result["log_left_out"] = database is None and args.tuning_log == "auto"  # _pick_profile found a log, auto left it
    print(
        f"model {onnx_path.name}, profile {profile.name}, {args.threads} threads, threading {args.threading}, "
        + (
            f"tuned {tuned_tasks(result)} from {database}"
            if database
            else f"no tuning log (--tuning-log {args.tuning_log}: {_no_log_reason(args.tuning_log)})"
        )
    )
    for name, key in (("TVM ", "tvm"), ("ORT ", "ort")):
        s = result[key]
        print(f"{name} median {s['median_ms']:.3f} ms (p10 {s['p10_ms']:.3f}, p90 {s['p90_ms']:.3f}), n={s['n']}")
    print(f"ratio TVM/ORT (medians): {result['ratio_tvm_over_ort']:.2f}x   max |diff| {result['max_abs_diff']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _pick_profile(args: argparse.Namespace, mod):
    """(profile, database): the named profile, or the first of AUTO_PROFILES usable here with a shipped log."""
    from tvmdeploy.compile.tuning.log_choice import LogChoice
    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.targets import load_profile

    for name in [args.profile] if args.profile else AUTO_PROFILES:
        profile = load_profile(name)
        if not profile.runs_on_this_machine:
            if args.profile:
                raise TvmDeployError(f"profile {profile.name} cannot run on this machine")
            continue
        choice = LogChoice.of(args.tuning_log)
        if choice.word is not None and not choice.looks_up:
            return profile, None
        database, found = _database(args.tuning_log, mod, profile)
        if found:  # auto: a log tuned on another CPU kind gives way to the default schedules (database None)
            return profile, database
        if args.profile:
            raise TvmDeployError(f"no shipped tuning log for this model on {profile.name}; run `tvmdeploy tune` first")
    raise TvmDeployError(f"no shipped tuning log for this model on any of {', '.join(AUTO_PROFILES)} usable here")


def _database(word: str, mod, profile) -> tuple[Path | None, bool]:
    """(database to apply, whether a log was found) for --tuning-log DIR, auto or shipped, as `build` resolves them."""
    from tvmdeploy.compile.pipeline import prepare, tuning_tasks
    from tvmdeploy.compile.tuning.log_choice import LogChoice

    choice = LogChoice.of(word)
    tasks = tuning_tasks(prepare(mod, profile), profile) if choice.looks_up else []
    database, left_out = choice.resolve(tasks, profile)
    return database, database is not None or bool(left_out)


def _card(args: argparse.Namespace) -> int:
    """--card: the card's models x the x86 profiles this CPU runs, each measured like the headline."""
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.tuning.log_choice import LogChoice, host_profiles
    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.targets import load_profile
    from tvmdeploy.tools.dev.tune_card import CARD

    if not args.card:
        raise TvmDeployError("--card-models needs --card")
    if args.curve or args.onnx or args.profile:
        raise TvmDeployError("--card measures every card model on every x86 profile: drop --curve, --onnx and --profile")
    profiles = [load_profile(name) for name in host_profiles(AUTO_PROFILES)]
    if not profiles:
        raise TvmDeployError(f"--card: none of {', '.join(AUTO_PROFILES)} runs on this machine")
    models = [m.strip() for m in (args.card_models or ",".join(CARD)).split(",") if m.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="bench-card-"))
    rows = []
    for model in models:
        onnx_path = model_onnx(model, workdir, "--card-models")
        mod, info = import_onnx(onnx_path)
        for profile in profiles:
            # The build resolves auto/shipped itself (one lowering per row, as `build` does it).
            database = LogChoice.of(args.tuning_log)
            result = _measure(onnx_path, mod, info, profile, database, args)
            result["model"] = Path(model).stem if model.endswith(".onnx") else model
            rows.append(result)
            print(
                f"{result['model']} on {profile.name}: TVM {result['tvm']['median_ms']:.2f} ms, ORT "
                f"{result['ort']['median_ms']:.2f} ms, {result['ratio_tvm_over_ort']:.2f}x",
                file=sys.stderr,
                flush=True,
            )
    what = cpu_description()
    print(
        card_table(
            rows,
            f"{what}, {args.threads} threads, threading {args.threading}, median of "
            f"{rows[0]['tvm']['n'] if rows else 0} interleaved runs",
        )
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        _plot_card(rows, args.plot, f"TVM vs ONNX Runtime, {what}, {args.threads} threads")
    return 0


def configure_tvm_threads(threads: int, threading: str, *, bind: bool = False) -> None:
    """TVM reads these when its thread pool starts: they must be set before the first kernel runs."""
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["TVM_BIND_THREADS"] = "1" if bind else "0"
    os.environ["TVM_THREAD_POOL_SPIN_COUNT"] = str(THREADING[threading]["tvm_spin_count"])


def model_onnx(model: str, workdir: Path, option: str) -> Path:
    """The ONNX file of a benchmark entry: a .onnx path as it is, else a corpus architecture or zoo model exported
    into `workdir` (random weights, seed 0)."""
    from tvmdeploy.compile.models.architectures import ARCHITECTURES, export_architecture
    from tvmdeploy.compile.models.export import export_onnx
    from tvmdeploy.runtime.errors import TvmDeployError

    if model.endswith(".onnx"):
        if not Path(model).is_file():
            raise TvmDeployError(f"{option}: no such file {model}")
        return Path(model)
    onnx_path = workdir / f"{model}.onnx"
    if model in ARCHITECTURES:
        return export_architecture(model, onnx_path)
    export_onnx(model, onnx_path, seed=0)
    return onnx_path


def cpu_description() -> str:
    """This CPU as benchmark captions name it: its model name and LLVM mcpu."""
    from tvmdeploy.compile.tuning.log_choice import cpu_record

    cpu = cpu_record()
    return f"{cpu['model_name'] or cpu['vendor'] or 'CPU'} (LLVM mcpu {cpu['mcpu'] or '?'})"


def _no_log_reason(word: str) -> str:
    return "the shipped log was tuned on another CPU kind" if word == "auto" else "default schedules only"


def _tasks_cell(row: dict) -> str:
    if row.get("log_left_out"):
        return "defaults (log tuned on another CPU kind)"
    if row["database"] in (None, "None"):
        return "no log"
    return f"{row['tasks_from_database']}/{row['tasks_total']} ({Path(row['database']).name})"


def card_table(rows: list[dict], caption: str) -> str:
    """Markdown table of --card rows (one per model x profile)."""
    lines = [f"{caption}:", "", "| model | profile | TVM ms | ORT ms | TVM/ORT | tasks from log |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['profile']} | {r['tvm']['median_ms']:.2f} | {r['ort']['median_ms']:.2f} | "
            f"**{r['ratio_tvm_over_ort']:.2f}x** | {_tasks_cell(r)} |"
        )
    return "\n".join(lines)


def _unpacked(database: Path) -> Path:
    """The database itself, or for a packed history (history.tar.xz only) a temporary unpacked copy."""
    from tvmdeploy.compile.tuning.database import RECORD_FILE, unpack_history

    if (database / RECORD_FILE).is_file():
        return database
    copy = Path(tempfile.mkdtemp(prefix="bench-history-")) / database.name
    shutil.copytree(database, copy)
    if not unpack_history(copy):
        from tvmdeploy.runtime.errors import TvmDeployError

        raise TvmDeployError(f"{database} holds neither a tuning database nor a packed history")
    return copy


def _prefix_copy(database: Path, count: int | None) -> tuple[Path, int]:
    """A copy of the database holding only its first `count` records (all workloads)."""
    import shutil

    from tvmdeploy.compile.tuning.database import RECORD_FILE, WORKLOAD_FILE

    folder = Path(tempfile.mkdtemp(prefix="bench-prefix-"))
    shutil.copyfile(database / WORKLOAD_FILE, folder / WORKLOAD_FILE)
    lines = [line for line in (database / RECORD_FILE).read_text().splitlines(keepends=True) if line.strip()]
    lines = lines if count is None else lines[:count]
    (folder / RECORD_FILE).write_text("".join(lines))
    return folder, len(lines)


def _measure(onnx_path: Path, mod, info, profile, database, args: argparse.Namespace) -> dict:
    """Compile with the database (and the default schedules unless --tuning-log none), then time TVM and ONNX
    Runtime in alternation (same input, threads)."""
    import numpy as np
    import onnxruntime as ort
    import tvm
    from tvm import relax

    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.tuning.log_choice import LogChoice
    from tvmdeploy.runtime.timing import interleaved

    started = time.perf_counter()
    # `database`: a folder found for --tuning-log, None, or (--card) the choice itself, resolved by compile_relax
    compiled = compile_relax(mod, profile, database_dir=database, default_schedules=LogChoice.of(args.tuning_log).default_schedules)
    compile_s = time.perf_counter() - started
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    session = _ort_session(onnx_path, args)

    x = np.random.default_rng(0).random(info.input_shape, dtype=np.float32)
    x_tvm = tvm.runtime.tensor(x)
    feed = {info.input_name: x}
    diff = float(np.abs(vm["main"](x_tvm).numpy() - session.run(None, feed)[0]).max())
    stats = interleaved(
        {"tvm": lambda: vm["main"](x_tvm), "ort": lambda: session.run(None, feed)},
        warmup=args.warmup,
        min_runs=args.runs,
        min_seconds=0.0,
    )
    return {
        "model": onnx_path.name,
        "profile": profile.name,
        "database": str(compiled.database_dir),
        "log_left_out": bool(compiled.log_note),  # auto found a log tuned on another CPU kind and used none
        "tasks_from_database": compiled.tasks_from_database,
        "tasks_total": compiled.tasks_total,
        "schedule_sources": compiled.schedule_sources,
        "threads": args.threads,
        "tvm_bind_threads": args.bind_threads,
        "threading": args.threading,
        "tvm_spin_count": THREADING[args.threading]["tvm_spin_count"],
        "ort_session_config": THREADING[args.threading]["ort"],
        "compile_s": round(compile_s, 1),
        "max_abs_diff": diff,
        "tvm": stats["tvm"].to_dict(),
        "ort": stats["ort"].to_dict(),
        "ratio_tvm_over_ort": stats["tvm"].median_ms / stats["ort"].median_ms,
        "ort_version": ort.__version__,
        "tvm_version": tvm.__version__,
    }


def _ort_session(onnx_path: Path, args: argparse.Namespace):
    """ONNX Runtime on the same threads and idle policy as TVM (the session `tvmdeploy bench` times)."""
    from tvmdeploy.runtime.ort_session import ort_session

    return ort_session(onnx_path, args.threads, THREADING[args.threading]["ort"])


def _ab(args: argparse.Namespace, onnx_path: Path, mod, info) -> int:
    """--ab: one build per --tuning-log value, every build and ONNX Runtime timed in one interleaved run."""
    import numpy as np
    import tvm
    from tvm import relax

    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.tuning.log_choice import LogChoice, host_profiles
    from tvmdeploy.runtime.artifact import tuned_tasks
    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.runtime.timing import interleaved
    from tvmdeploy.targets import load_profile

    usable = host_profiles(AUTO_PROFILES)
    profile = load_profile(args.profile or (usable[0] if usable else AUTO_PROFILES[-1]))
    if not profile.runs_on_this_machine:
        raise TvmDeployError(f"profile {profile.name} cannot run on this machine")
    x = np.random.default_rng(0).random(info.input_shape, dtype=np.float32)
    x_tvm = tvm.runtime.tensor(x)
    session = _ort_session(onnx_path, args)
    feed = {info.input_name: x}
    want = session.run(None, feed)[0]
    runs, notes = {}, {}
    for word in [w.strip() for w in args.ab.split(",") if w.strip()]:
        if word in runs:
            raise TvmDeployError(f"--ab: {word} given twice")
        # compile_relax resolves auto and shipped itself, as `build` does
        compiled = compile_relax(mod, profile, database_dir=LogChoice.of(word))
        vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
        diff = float(np.abs(vm["main"](x_tvm).numpy() - want).max())
        counts = {
            "tasks_from_database": compiled.tasks_from_database,
            "tasks_total": compiled.tasks_total,
            "tasks_merged": compiled.tasks_merged,
        }
        what = f"{tuned_tasks(counts)} from {compiled.database_dir.name}" if compiled.database_dir else "no log"
        notes[word] = f"{what}, max |diff| {diff:.1e}"
        runs[word] = lambda vm=vm: vm["main"](x_tvm)
    stats = interleaved({**runs, "ort": lambda: session.run(None, feed)}, warmup=args.warmup, min_runs=args.runs, min_seconds=0.0)
    ort_ms = stats["ort"].median_ms
    print(
        f"model {onnx_path.name}, profile {profile.name}, {args.threads} threads, threading {args.threading}, "
        f"median of {stats['ort'].n} interleaved runs; ONNX Runtime {ort_ms:.3f} ms"
    )
    print("| --tuning-log | TVM ms | TVM/ORT | build |\n|---|--:|--:|---|")
    for word in runs:
        print(f"| {word} | {stats[word].median_ms:.3f} | {stats[word].median_ms / ort_ms:.3f}x | {notes[word]} |")
    return 0


def _curve_point(database: Path, point: str) -> tuple[float | None, int | None]:
    """(minutes or None, record count or None for all) of one `--curve` item.

    'Nm': the records measured by N minutes into the search, from `logs/progress.csv` (elapsed s,
    search trials, estimate per batch); records before the first search batch (seeds, earlier runs)
    all count from minute 0.
    """
    from tvmdeploy.compile.tuning.database import PROGRESS_FILE, RECORD_FILE
    from tvmdeploy.runtime.errors import TvmDeployError

    if point == "all":
        return None, None
    if not point.endswith("m"):
        try:
            return None, int(point)
        except ValueError:
            raise TvmDeployError(f"--curve: '{point}' is not a record count, 'all' or minutes like '5m'") from None
    try:
        minutes = float(point[:-1])
        rows = [line.split(",") for line in (database / PROGRESS_FILE).read_text().splitlines() if line]
        progress = [(float(r[0]), int(r[1])) for r in rows]
    except (ValueError, IndexError, OSError) as exc:
        raise TvmDeployError(f"--curve {point}: needs {database / PROGRESS_FILE} from a tuning run ({exc})") from None
    total = sum(1 for line in (database / RECORD_FILE).read_text().splitlines() if line.strip())
    before_search = total - max((t for _, t in progress), default=0)
    return minutes, before_search + max((t for e, t in progress if e <= 60 * minutes), default=0)


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_minutes = all("minutes" in r for r in rows)
    xs = [r["minutes"] if by_minutes else r["trials"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, [r["tvm"]["median_ms"] for r in rows], "o-", label="TVM tuned (median)")
    ax.plot(xs, [r["ort"]["median_ms"] for r in rows], "s--", label="ONNX Runtime (median, same runs)")
    ax.set_xlabel("minutes of search (after seeding)" if by_minutes else "tuning trials (records replayed)")
    ax.set_ylabel("latency per image, ms")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_card(rows: list[dict], path: Path, title: str) -> None:
    """Two panels: median latency per model (TVM per profile, ONNX Runtime), and the TVM/ORT ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    at = {(r["model"], r["profile"]): r for r in rows}
    width = 0.8 / (len(profiles) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for n, profile in enumerate(profiles):
        xs = [i + n * width for i, m in enumerate(models) if (m, profile) in at]
        got = [at[(m, profile)] for m in models if (m, profile) in at]
        left.bar(xs, [r["tvm"]["median_ms"] for r in got], width, label=f"TVM {profile}")
        right.bar(xs, [r["ratio_tvm_over_ort"] for r in got], width, label=profile)
    ort = [sorted(r["ort"]["median_ms"] for r in rows if r["model"] == m) for m in models]
    left.bar(
        [i + len(profiles) * width for i in range(len(models))],
        [v[len(v) // 2] for v in ort],
        width,
        color="#7f7f7f",
        label="ONNX Runtime (median of its runs)",
    )
    right.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    for ax, label in ((left, "latency per image, ms"), (right, "TVM / ONNX Runtime")):
        ax.set_xticks([i + width * (len(profiles) - 1) / 2 for i in range(len(models))])
        ax.set_xticklabels([m.replace("mobilenetv2_", "").replace("_mobilenet_v2", "") for m in models], rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_script(entry) -> None:
    """Exit with `entry()`'s code; a user error as one line and exit 2, as the CLI does (tracebacks are for bugs)."""
    from tvmdeploy.runtime.errors import TvmDeployError

    try:
        sys.exit(entry())
    except TvmDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run_script(main)
