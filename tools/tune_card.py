"""Tune every distinct kernel set of the model card for one profile, resumably, and ship the best records.

    .venv/bin/python tools/tune_card.py --profile x86-avx512 --minutes 6         # every width, 6 min each
    .venv/bin/python tools/tune_card.py --profile x86-avx2 --models ppcls_mobilenetv2_x0_5

Each model is exported with seeded random weights (the log key hashes kernels, never weights), tuned
into tuning_logs/history/<profile>/<key>/ (resumed when it exists; seeded from the other logs and the
default schedules when new), then its best record per task is exported to tuning_logs/<profile>/<key>/,
the folder the build finds. Models whose kernels equal an earlier one's are skipped (same key).
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
    parser.add_argument("--models", default=",".join(CARD), help="comma list of zoo names (default: the card)")
    parser.add_argument("--minutes", type=float, default=6.0, help="tuning time per model (default 6)")
    args = parser.parse_args(argv)

    from tvmdeploy.compile.export import export_onnx
    from tvmdeploy.compile.tasks import model_key
    from tvmdeploy.compile.tuning import META_FILE, default_logs_root, prepared_tasks, print_report, tune
    from tvmdeploy.compile.tuning_db import RECORD_FILE, export_best
    from tvmdeploy.targets import load_profile

    profile = load_profile(args.profile)
    root = default_logs_root()
    workdir = Path(tempfile.mkdtemp(prefix="tune-card-"))
    done: set[str] = set()
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        onnx_path = workdir / f"{name}.onnx"
        export_onnx(name, onnx_path, seed=0)
        key = model_key(prepared_tasks(onnx_path, profile)[1])
        if key in done:
            print(f"{name}: same kernels as an earlier model ({key}), skipped", flush=True)
            continue
        done.add(key)
        history = root / "history" / profile.name / key
        resume = (history / RECORD_FILE).is_file()
        print(f"{name}: tuning {key} for {args.minutes:g} min ({'resumed' if resume else 'new'})", flush=True)
        result = tune(onnx_path, profile, resume=resume, log_dir=history, time_budget_min=args.minutes,
                      trials=100000, progress_bar=False)
        print_report(result)
        shipped = root / profile.name / key
        shutil.rmtree(shipped, ignore_errors=True)
        count = export_best(history, shipped)
        shutil.copyfile(history / META_FILE, shipped / META_FILE)
        print(f"{name}: shipped the best record of {count} tasks to {shipped}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
