"""`tvmdeploy eval`: top-1/top-5 over an ImageNet-style folder, with agreement against ONNX Runtime."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.cli.module_opener import add_rpc_arguments, open_module, rpc_endpoint, thread_count


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
    from tvmdeploy.compile.measure.evaluate import OrtClassifier, evaluate, load_dataset
    from tvmdeploy.runtime.labels import load_labels
    from tvmdeploy.runtime.preprocess import PreprocessConfig, load_image

    if (args.artifact is None) == (args.onnx is None):
        raise TvmDeployError("give either an artifact folder or --onnx M.onnx (not both)")
    if args.onnx is not None and (args.reference or rpc_endpoint(args) is not None):
        raise TvmDeployError("--reference and --rpc* apply to an artifact, not to --onnx")
    if args.limit is not None and args.limit < 1:
        raise TvmDeployError("--limit must be >= 1")
    threads = args.threads or 0
    reference = None
    if args.onnx is not None:
        from tvmdeploy.compile.frontend import inspect_onnx

        info = inspect_onnx(args.onnx)
        ort = OrtClassifier(args.onnx, threads=threads)
        classify, where = ort.run_images, f"ONNX Runtime {ort.version} (host)"
        model_name, weights = info.model_name, info.weights
        config = PreprocessConfig.for_input(info.input_shape)
        num_classes = info.output_dims[-1] if info.output_dims else None
        labels = load_labels(info.labels, num_classes)
        batch = args.batch_size or 8
    else:
        endpoint = rpc_endpoint(args)
        module = open_module(
            args.artifact, endpoint, threads=args.threads, timeout_s=args.rpc_timeout, call_timeout_s=args.rpc_call_timeout
        )
        manifest = module.manifest
        classify = module.run_images
        where = module.description if endpoint is not None else f"TVM {manifest.profile} (local {manifest.device})"
        model_name, weights = manifest.model_name, manifest.weights
        config, labels = manifest.preprocess_config(), manifest.class_labels()
        batch = args.batch_size or manifest.batch
        num_classes = manifest.num_classes
        threads = threads or manifest.threads or 0
        if args.reference:
            from tvmdeploy.runtime.artifact import verify_onnx

            ort = OrtClassifier(verify_onnx(args.artifact, manifest), threads=threads)
            reference = ort.run_images
    dataset = load_dataset(args.images, labels, args.ground_truth, num_classes=num_classes)
    if args.limit:
        dataset.items = dataset.items[: args.limit]

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), unit="img", desc="eval", file=sys.stderr, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        metrics = evaluate(
            dataset, classify, lambda p: load_image(p, config), batch_size=batch, reference=reference, progress=bar.update if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    report = {
        "model": model_name,
        "runner": where,
        "weights": weights,
        "folder": str(args.images),
        "layout": dataset.layout,
        "batch_size": batch,
        "seconds": seconds,
        "images_per_second": metrics.count / seconds if seconds > 0 else None,
        **metrics.to_dict(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report, reference is not None))
    # Every unreadable image on stderr with its reason; the readable ones were evaluated all the same.
    for bad in report["unreadable"]:
        reason = bad["reason"] if bad["path"] in bad["reason"] else f"{bad['path']}: {bad['reason']}"
        print(f"unreadable: {reason}", file=sys.stderr)
    if report["unreadable"]:
        print(
            f"error: {len(report['unreadable'])} of {len(dataset)} image(s) could not be read (listed above); "
            f"the others were evaluated",
            file=sys.stderr,
        )
        return 1
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def format_report(report: dict, with_reference: bool) -> str:
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
