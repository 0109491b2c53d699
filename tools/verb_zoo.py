"""`tvmdeploy zoo`: list the MobileNetV2 variants with params, FLOPs and the card's accuracy."""

from __future__ import annotations

import argparse
import json

from tvmdeploy.compile import zoo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = zoo.listing()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'name':<26} {'source':<12} {'width':>5} {'params(M)':>9} {'FLOPs(M)':>9} {'top1':>7} {'top5':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<26} {r['source']:<12} {r['width']:>5.2f} {r['params_m']:>9.3f} "
            f"{r['flops_m']:>9.2f} {r['top1']:>7.3f} {r['top5']:>7.3f}"
        )
    print("params/FLOPs are computed from the architecture, counted as each source counts them (FLOPs = multiply-adds);")
    print("top-1/top-5 are the model card's ImageNet-1k numbers for the published weights.")
    return 0
