"""`tvmdeploy eval`: top-1/top-5 over an ImageNet-style folder, with agreement against ONNX Runtime (`tvmdeploy.evaluate`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tvmdeploy.tools.cli.module_opener import add_rpc_arguments, thread_count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", type=Path, nargs="?", help="artifact folder written by `tvmdeploy build`")
    parser.add_argument("images", type=Path, help="image folder: synset sub-folders (n01440764/...), or flat with --ground-truth")
    parser.add_argument("--onnx", type=Path, metavar="M.onnx", help="evaluate this ONNX model with ONNX Runtime instead of an artifact")
    parser.add_argument("--reference", action="store_true", help="also run ONNX Runtime on the artifact's model.onnx and report agreement")
    parser.add_argument(
        "--ground-truth",
        type=Path,
        metavar="FILE",
        help="labels for a flat folder: one 0-based class index per line in sorted filename order, or 'FILE LABEL' lines (index or wnid)",
    )
    parser.add_argument("--batch-size", type=int, help="images per step (default: the artifact's batch, 8 for --onnx)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--threads", type=thread_count, help="CPU threads for TVM and ONNX Runtime (default: the profile's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_rpc_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import tvmdeploy

    result = tvmdeploy.evaluate(
        args.artifact,
        args.images,
        onnx=args.onnx,
        ground_truth=args.ground_truth,
        batch_size=args.batch_size or None,  # --batch-size 0 is the default, as it always was
        limit=args.limit,
        threads=args.threads,
        reference=args.reference,
        rpc_tracker=args.rpc_tracker,
        rpc_key=args.rpc_key,
        rpc_server=args.rpc,
        timeout_s=args.rpc_timeout,
        call_timeout_s=args.rpc_call_timeout,
        progress=not args.no_progress,
    )
    report = result.to_dict()
    print(json.dumps(report, indent=2) if args.json else _format_report(report, result.with_reference))
    # Every unreadable image on stderr with its reason; the readable ones were evaluated all the same.
    for path, why in result.unreadable:
        print(f"unreadable: {why if path in why else f'{path}: {why}'}", file=sys.stderr)
    if result.unreadable:
        print(
            f"error: {len(result.unreadable)} of {result.total} image(s) could not be read (listed above); the others were evaluated",
            file=sys.stderr,
        )
        return 1
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _format_report(report: dict, with_reference: bool) -> str:
    lines = [
        f"{report['model']} on {report['runner']}, {report['folder']} ({report['layout']})",
        f"images: {report['images']} evaluated in {report['seconds']:.1f} s "
        f"({report['images_per_second'] or 0:.1f} img/s, batch {report['batch_size']})",
        f"top-1: {_pct(report['top1'])} ({report['top1_correct']}/{report['images']})",
        f"top-5: {_pct(report['top5'])} ({report['top5_correct']}/{report['images']})",
    ]
    if with_reference:
        lines.append(
            f"agreement with ONNX Runtime: top-1 {_pct(report['agreement_top1'])}, "
            f"top-5 set {_pct(report['agreement_top5_set'])} ({report['reference_compared']} images)"
        )
    if report["weights"].startswith("random"):
        lines.append(f"note: weights are random ({report['weights']}): accuracy against real labels is chance level")
    if report["unreadable"]:
        lines.append(f"unreadable images: {len(report['unreadable'])} (skipped; listed on stderr)")
    return "\n".join(lines)
