"""Entry point of the runtime-only bundle: classify images with an artifact using only libtvm_runtime.

    python -m tvmdeploy.runtime.bundle_main ARTIFACT IMAGE [IMAGE ...] [--topk 5] [--json]

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
    parser.add_argument("images", type=Path, nargs="+", help="image files")
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
    _check_dependencies()
    import numpy as np

    from tvmdeploy.runtime.artifact import read_manifest
    from tvmdeploy.runtime.labels import load_labels
    from tvmdeploy.runtime.loader import load_artifact
    from tvmdeploy.runtime.postprocess import softmax, topk
    from tvmdeploy.runtime.preprocess import PreprocessConfig, preprocess_images

    manifest = read_manifest(args.artifact)
    started = time.perf_counter()
    from tvmdeploy.runtime.tvm_api import load_device_runtime  # after the numpy/Pillow check above

    load_device_runtime(manifest.device)
    module = load_artifact(args.artifact, threads=args.threads)
    loaded = time.perf_counter()
    images = preprocess_images(args.images, PreprocessConfig.from_dict(manifest.preprocess))
    logits = module.run_images(images)
    ran = time.perf_counter()
    if args.save_logits:
        np.save(args.save_logits, logits)
    predictions = topk(softmax(logits), args.topk, load_labels(manifest.labels).names)
    import tvm.base

    return {
        "model": manifest.model_name,
        "profile": manifest.profile,
        "weights": manifest.weights,
        "runtime_only": bool(tvm.base._RUNTIME_ONLY),
        "load_s": round(loaded - started, 3),
        "run_s": round(ran - loaded, 3),
        "results": [
            {"image": str(path), "top": [{"index": p.index, "label": p.label, "probability": p.probability} for p in preds]}
            for path, preds in zip(args.images, predictions)
        ],
    }


def _print_text(report: dict) -> None:
    mode = "runtime-only" if report["runtime_only"] else "full TVM"
    print(f"{report['model']} on {report['profile']} ({mode}, load {report['load_s']} s, run {report['run_s']} s)")
    if report["weights"].startswith("random"):
        print(f"warning: weights are random ({report['weights']}): class names are meaningless")
    for result in report["results"]:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
