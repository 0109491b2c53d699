"""Entry point of the runtime-only bundle: classify images with an artifact using only libtvm_runtime.

    python -m tvmdeploy.runtime.bundle_main ARTIFACT IMAGE|FOLDER [...] [--topk 5] [--json]

Runs on a machine that has Python, numpy and Pillow and the bundle on PYTHONPATH (no TVM compiler,
no torch, no onnxruntime). `TVM_USE_RUNTIME_LIB=1` is set unless the caller chose otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tvmdeploy.runtime.bundle_main",
        description="Classify images with a tvmdeploy artifact using only the TVM runtime.",
    )
    parser.add_argument("artifact", type=Path, help="artifact folder (model.so + manifest.json)")
    parser.add_argument("images", type=Path, nargs="+", help="image files or folders of them")
    parser.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the artifact's profile)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--save-logits", type=Path, metavar="FILE", help="also write the raw logits as .npy")
    return parser


def _check_dependencies() -> None:
    """The bundle carries TVM; numpy and Pillow come from the device's Python."""
    missing = []
    for module, package in (("numpy", "numpy"), ("PIL", "Pillow")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise TvmDeployError(f"this Python ({sys.executable}) lacks {' and '.join(missing)}: pip install {' '.join(missing)}")


def classify(args: argparse.Namespace) -> dict:
    """Load the artifact and classify the images, streaming (runtime/classify.py, as `tvmdeploy run`)."""
    _check_dependencies()
    import numpy as np

    from tvmdeploy.runtime.artifact import read_manifest
    from tvmdeploy.runtime.classify import classify_files, expand_image_paths
    from tvmdeploy.runtime.loader import load_artifact

    if args.topk < 1:
        raise TvmDeployError(f"--topk must be >= 1, got {args.topk}")
    if args.threads is not None and args.threads < 1:
        raise TvmDeployError(f"--threads must be >= 1, got {args.threads}")
    paths = expand_image_paths(args.images)
    manifest = read_manifest(args.artifact)
    labels, config = manifest.class_labels(), manifest.preprocess_config()
    started = time.perf_counter()
    from tvmdeploy.runtime.tvm_api import load_device_runtime  # after the numpy/Pillow check above

    load_device_runtime(manifest.device)
    module = load_artifact(args.artifact, threads=args.threads)
    loaded = time.perf_counter()
    logits: list[np.ndarray] = []  # of the readable images, in order, for --save-logits

    def run_images(images: np.ndarray) -> np.ndarray:
        out = module.run_images(images)
        logits.append(out)
        return out

    results = []
    for item in classify_files(run_images, paths, config, batch_size=manifest.batch, k=args.topk, labels=labels.names):
        if item.ok:
            results.append({"image": str(item.path), "top": [
                {"index": p.index, "label": p.label, "probability": p.probability} for p in item.top]})
        else:
            results.append({"image": str(item.path), "error": item.error})
    ran = time.perf_counter()
    if args.save_logits:
        np.save(args.save_logits, np.concatenate(logits) if logits else np.zeros((0, manifest.num_classes), np.float32))
    import tvm.base

    return {
        "model": manifest.model_name,
        "profile": manifest.profile,
        "weights": manifest.weights,
        "runtime_only": bool(tvm.base._RUNTIME_ONLY),
        "load_s": round(loaded - started, 3),
        "run_s": round(ran - loaded, 3),
        "results": results,
        "unreadable": sum("error" in r for r in results),
    }


def _print_text(report: dict) -> None:
    mode = "runtime-only" if report["runtime_only"] else "full TVM"
    print(f"{report['model']} on {report['profile']} ({mode}, load {report['load_s']} s, run {report['run_s']} s)")
    if report["weights"].startswith("random"):
        print(f"warning: weights are random ({report['weights']}): class names are meaningless")
    for result in report["results"]:
        if "error" in result:
            continue  # on stderr (see main)
        print(f"{result['image']}:")
        for rank, p in enumerate(result["top"], 1):
            print(f"  {rank}. {p['probability'] * 100:6.2f}%  {p['label']} (class {p['index']})")


def main(argv: list[str] | None = None) -> int:
    # Before anything imports tvm: load libtvm_runtime only, never the (absent) compiler library.
    os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
    # With torch installed, tvm_ffi would otherwise JIT-compile a torch extension at import (minutes, needs a
    # compiler); the bundle never hands tensors to torch.
    os.environ.setdefault("TVM_FFI_DISABLE_TORCH_C_DLPACK", "1")
    args = _parser().parse_args(argv)
    try:
        report = classify(args)
    except TvmDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    # As `tvmdeploy run`: every unreadable image on stderr with its reason, the others classified, exit 1.
    failed = [r for r in report["results"] if "error" in r]
    for result in failed:
        reason = result["error"] if result["image"] in result["error"] else f"{result['image']}: {result['error']}"
        print(f"unreadable: {reason}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(report['results'])} image(s) could not be read (listed above); "
              "the others were classified", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
