"""Tune every distinct kernel set of the model card for one profile, resumably, and ship the best records.

    .venv/bin/python tools/dev/tune_card.py --profile x86-avx512 --minutes 6         # every width, 6 min each
    .venv/bin/python tools/dev/tune_card.py --profile x86-avx2 --models ppcls_mobilenetv2_x0_5 --rerank 3
    .venv/bin/python tools/dev/tune_card.py --profile x86-avx512 --index-only      # every zoo model's key, no tuning

Each model is exported with seeded random weights (the log key hashes kernels, never weights), tuned
into tuning_logs/history/<profile>/<key>/ (resumed when it exists; seeded from the other logs and the
default schedules when new), then its best record per task is exported to tuning_logs/<profile>/<key>/,
the folder the build finds. Models whose kernels equal an earlier one's are skipped (same key).
Every model's key and task hashes go into compile/models/zoo_kernels.json, which `tvmdeploy zoo` reads to show
which shipped log covers each row (`--index-only`: just that, for every zoo model by default).
The shipped tuning_meta.json records the CPU it was tuned on (`tuned_on`). A log of the same kernels
already shipped from another kind of CPU (another LLVM mcpu) is kept: this one goes to `<key>@<mcpu>`
(history too), and the build picks the log tuned on the CPU closest to its own (compile/tuning/log_choice.py).
Meant for the background: every record is on disk as soon as it is measured; kill it any time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

# The card's distinct architectures, small first (torchvision/timm/ssld x1.0 share x1.0's kernels or nearly).
CARD = (
    "ppcls_mobilenetv2_x0_25",
    "ppcls_mobilenetv2_x0_5",
    "ppcls_mobilenetv2_x0_75",
    "torchvision_mobilenet_v2",
    "ppcls_mobilenetv2_x1_5",
    "ppcls_mobilenetv2_x2_0",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--models", help="comma list of zoo names (default: the card)")
    parser.add_argument("--minutes", type=float, default=6.0, help="tuning time per model (default 6)")
    parser.add_argument(
        "--ops",
        default="all",
        help="kernel classes to tune, as `tune --ops` (default: all, so the " "shipped log covers every kernel the build keeps)",
    )
    parser.add_argument(
        "--rerank",
        type=int,
        metavar="K",
        help="ship, per task, the fastest inside the whole network "
        "of its K best records and its default schedule (`tune --export-best --rerank`), not the fastest alone",
    )
    parser.add_argument(
        "--index-only",
        action="store_true",
        help="only record the models' keys in compile/models/zoo_kernels.json (default models: the whole zoo)",
    )
    args = parser.parse_args(argv)

    from tvmdeploy.compile.models import zoo, zoo_kernels
    from tvmdeploy.compile.models.export import export_onnx
    from tvmdeploy.compile.pipeline import PIPELINE_VERSION
    from tvmdeploy.compile.tuning.database import HISTORY_ARCHIVE, RECORD_FILE, pack_history
    from tvmdeploy.compile.tuning.driver import prepared_tasks, tune
    from tvmdeploy.compile.tuning.log_choice import cpu_record, default_logs_root
    from tvmdeploy.compile.tuning.report import format_report
    from tvmdeploy.compile.tuning.ship import ship_log
    from tvmdeploy.targets import load_profile

    profile = load_profile(args.profile)
    root = default_logs_root()
    workdir = Path(tempfile.mkdtemp(prefix="tune-card-"))
    models = args.models if args.models is not None else ",".join(zoo.names() if args.index_only else CARD)
    host = cpu_record()
    done: set[str] = set()
    for name in [m.strip() for m in models.split(",") if m.strip()]:
        onnx_path = workdir / f"{name}.onnx"
        export_onnx(name, onnx_path, seed=0)
        kernels = zoo_kernels.describe(prepared_tasks(onnx_path, profile)[1], PIPELINE_VERSION)
        zoo_kernels.record(profile.name, name, kernels)
        key = kernels["key"]
        if args.index_only:
            print(f"{name}: {key} ({len(kernels['kernels'])} conv/dense + {len(kernels['glue'])} other tasks)", flush=True)
            continue
        if key in done:
            print(f"{name}: same kernels as an earlier model ({key}), skipped", flush=True)
            continue
        done.add(key)
        folder = _folder_name(root, profile.name, key, host.get("mcpu"))
        history = root / "history" / profile.name / folder
        resume = (history / RECORD_FILE).is_file() or (history / HISTORY_ARCHIVE).is_file()
        print(f"{name}: tuning {key} for {args.minutes:g} min ({'resumed' if resume else 'new'})", flush=True)
        result = tune(
            onnx_path,
            profile,
            resume=resume,
            log_dir=history,
            time_budget_min=args.minutes,
            ops=args.ops,
            trials=100000,
            progress_bar=False,
            on_task_table=lambda table: print(table, file=sys.stderr),
        )
        print(format_report(result))
        shipped = root / profile.name / folder
        shutil.rmtree(shipped, ignore_errors=True)
        # The history's meta goes with it: driver._write_meta recorded this CPU in it (`tuned_on`).
        result = ship_log(onnx_path, profile, history, shipped, rerank=args.rerank)
        if result.reranked is not None:
            print(result.reranked.summary(), result.reranked.table(), sep="\n", flush=True)
        count = result.records
        pack_history(history)  # the full history stays in the repository compressed (~250x), out of the package
        which = "in-network fastest" if args.rerank else "best"
        print(f"{name}: shipped the {which} record of {count} tasks to {shipped}; history packed in {history}", flush=True)
    return 0


def _folder_name(root: Path, profile: str, key: str, mcpu: str | None) -> str:
    """`key`, unless the log shipped there or its history was tuned on another kind of CPU: then `key@mcpu`
    (kept apart: records measured on two CPUs do not mix)."""
    from tvmdeploy.compile.tuning.database import read_meta
    from tvmdeploy.compile.tuning.log_choice import TUNED_ON

    for folder in (root / profile / key, root / "history" / profile / key):
        tuned_on = read_meta(folder).get(TUNED_ON) or {}
        if mcpu and tuned_on.get("mcpu") and tuned_on["mcpu"] != mcpu:
            return f"{key}@{mcpu}"
    return key


if __name__ == "__main__":
    sys.exit(main())
