"""`tvmdeploy zoo`: list the MobileNetV2 variants with params, FLOPs, the card's accuracy and shipped-log coverage."""

from __future__ import annotations

import argparse
import json

from tvmdeploy.compile.models import zoo, zoo_kernels
from tvmdeploy.compile.tuning import log_choice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument(
        "--profile",
        help="show shipped-log coverage for this profile (default: the first of "
        + ", ".join(log_choice.X86_PROFILES)
        + " that runs on this machine)",
    )


def run(args: argparse.Namespace) -> int:
    profile = args.profile or next(iter(log_choice.host_profiles()), None)
    if args.profile:
        from tvmdeploy.targets import load_profile

        load_profile(args.profile)  # an unknown name is a one-line error
    rows = zoo.listing()
    for row in rows:
        row["shipped_log"] = None if profile is None else zoo_kernels.coverage(row["name"], profile)
        if row["shipped_log"] is not None:
            row["shipped_log"]["profile"] = profile
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    column = f"log ({profile})" if profile else ""
    header = f"{'name':<26} {'source':<12} {'width':>5} {'params(M)':>9} {'FLOPs(M)':>9} {'top1':>7} {'top5':>7}" + (
        f"  {column:<17}" if profile else ""
    )
    print(header.rstrip())
    print("-" * len(header.rstrip()))
    for r in rows:
        log = r["shipped_log"]
        cell = "?" if log is None else "-" if log["log"] is None else f"{log['covered']}/{log['total']}" + ("" if log["applied"] else "*")
        print(
            f"{r['name']:<26} {r['source']:<12} {r['width']:>5.2f} {r['params_m']:>9.3f} "
            f"{r['flops_m']:>9.2f} {r['top1']:>7.3f} {r['top5']:>7.3f}" + (f"  {cell}" if profile else "")
        )
    print("params/FLOPs are computed from the architecture, counted as each source counts them (FLOPs = multiply-adds);")
    print("top-1/top-5 are the model card's ImageNet-1k numbers for the published weights.")
    if profile is None:
        print(f"no shipped-log column: none of {', '.join(log_choice.X86_PROFILES)} runs on this machine (try --profile)")
        return 0
    print(
        f"{column}: of the kernels the build keeps (not merged into blocks), those with a record in the shipped log "
        f"`build --profile {profile}` picks;"
    )
    print("'*': that log was tuned on another CPU kind; `build` uses the default schedules unless `--tuning-log shipped`;")
    print(
        f"'-': no log fits (default schedules only), '?': model not in compile/models/{zoo_kernels.INDEX_FILE.name} "
        "(tools/dev/tune_card.py --index-only refreshes it)."
    )
    for key, names in sorted(zoo_kernels.shared_keys(profile).items()):
        if len(names) > 1:
            print(f"same kernels, one log ({key}): {', '.join(names)}")
    return 0
