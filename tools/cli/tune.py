"""`tvmdeploy tune`: MetaSchedule tuning of a model's kernels into a resumable database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="ONNX file")
    parser.add_argument("--profile", required=True, help="target profile name (see `tvmdeploy targets`) or a TOML file")
    parser.add_argument(
        "--trials",
        type=int,
        help="total measured candidates for the selected tasks, earlier runs " "included (default: the profile's tuning_trials)",
    )
    parser.add_argument(
        "--ops",
        default="depthwise,pointwise",
        help="task classes to tune: comma list of stem, depthwise, pointwise, dense, other, or all " "(default: depthwise,pointwise)",
    )
    parser.add_argument("--resume", action="store_true", help="continue an existing database; nothing measured is repeated")
    parser.add_argument("--log-dir", type=Path, help="database folder (default: tuning_logs/<profile>/<model-key>/)")
    parser.add_argument("--rpc-tracker", metavar="HOST:PORT", help="measure on a board through this RPC tracker")
    parser.add_argument("--rpc-key", help="board key at the tracker (default: the profile's rpc_key)")
    parser.add_argument("--max-trials-per-task", type=int, help="cap per task (default: the scheduler decides)")
    parser.add_argument("--trials-per-iter", type=int, default=16, help="candidates per task per round (default 16)")
    parser.add_argument("--no-baseline", action="store_true", help="skip timing the untuned kernels first")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the search")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    parser.add_argument(
        "--seed-from",
        type=Path,
        metavar="DIR",
        help="first re-measure the best schedules of another database (e.g. another profile's log "
        "for the same model) on this target, so the search starts from them",
    )
    parser.add_argument(
        "--no-auto-seed",
        action="store_true",
        help="do not seed from the other logs under tuning_logs/ that share kernels, nor from the "
        "default schedules (a cold search, for comparison)",
    )
    parser.add_argument(
        "--include-merged",
        action="store_true",
        help="also tune the kernels the default build merges into blocks (`build` never uses their "
        "records; pipeline.compile_relax(..., default_schedules=False) does)",
    )
    parser.add_argument(
        "--time-budget", type=float, metavar="MINUTES", help="stop cleanly after this much wall-clock time (resume later with --resume)"
    )
    parser.add_argument("--seed-top-k", type=int, default=4, help="schedules per task taken from --seed-from (default 4)")
    parser.add_argument(
        "--export-best",
        type=Path,
        metavar="DIR",
        help="afterwards, write the best record per task to a new database DIR (what ships in tuning_logs/)",
    )
    parser.add_argument(
        "--rerank",
        type=int,
        metavar="K",
        help="with --export-best: of each task's K best records, export the one fastest inside the "
        "whole network (K builds of the model, timed per kernel), not the fastest alone",
    )


def run(args: argparse.Namespace) -> int:
    from tvmdeploy.compile.tuning.driver import TuneOptions
    from tvmdeploy.compile.tuning.report import format_report
    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.targets import load_profile

    if args.rerank is not None and not args.export_best:
        raise TvmDeployError("--rerank needs --export-best DIR")
    for name in ("trials", "max_trials_per_task", "trials_per_iter", "seed_top_k", "rerank"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise TvmDeployError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise TvmDeployError(f"--time-budget must be a positive number of minutes, got {args.time_budget}")
    import tvmdeploy

    profile = load_profile(args.profile)
    options = TuneOptions(
        trials=args.trials,
        ops=args.ops,
        resume=args.resume,
        log_dir=args.log_dir,
        rpc_tracker=args.rpc_tracker,
        rpc_key=args.rpc_key,
        max_trials_per_task=args.max_trials_per_task,
        trials_per_iter=args.trials_per_iter,
        measure_baseline=not args.no_baseline,
        seed=args.seed,
        progress_bar=not args.no_progress,
        seed_from=args.seed_from,
        seed_top_k=args.seed_top_k,
        auto_seed=not args.no_auto_seed,
        include_merged=args.include_merged,
        time_budget_min=args.time_budget,
        on_task_table=lambda table: print(table, file=sys.stderr),
    )
    result = tvmdeploy.tune(args.model, profile, options)
    print(format_report(result))
    if args.export_best:
        from tqdm import tqdm

        from tvmdeploy.compile.tuning.ship import ship_log

        with tqdm(total=args.rerank or 0, unit="build", desc="rerank", disable=args.no_progress or not args.rerank, file=sys.stderr) as bar:

            def advance(done: int, total: int) -> None:
                bar.total = total  # fewer than K when no task has K valid records
                bar.update(done - bar.n)

            shipped = ship_log(args.model, profile, result.folder, args.export_best, rerank=args.rerank, progress=advance)
        if shipped.reranked is not None:
            print(shipped.reranked.summary(), file=sys.stderr)
            print(shipped.reranked.table())
        print(
            f"exported {'the in-network fastest' if args.rerank else 'the best'} record of {shipped.records} tasks "
            f"to {args.export_best}"
        )
    print(f"apply with: tvmdeploy build {args.model} --profile {args.profile} --tuning-log {result.folder} -o OUT")
    return 130 if result.interrupted else 0
