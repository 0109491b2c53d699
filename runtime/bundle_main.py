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
from typing import TYPE_CHECKING

from tvmdeploy.runtime.errors import TvmDeployError

if TYPE_CHECKING:
    from tvmdeploy.runtime.classify import Classified


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


def classify(args: argparse.Namespace) -> tuple[dict, list[Classified]]:
    """Load the artifact and classify the images with the runtime's classify flow (`Model.classify_stream`, as
    `tvmdeploy run`): the report (what --json prints) and the classified inputs, in order."""
    _check_dependencies()
    import numpy as np

    from tvmdeploy.runtime.artifact import read_manifest
    from tvmdeploy.runtime.classify import expand_image_paths, to_record
    from tvmdeploy.runtime.loader import load_artifact
    from tvmdeploy.runtime.module import Model

    if args.topk < 1:
        raise TvmDeployError(f"--topk must be >= 1, got {args.topk}")
    if args.threads is not None and args.threads < 1:
        raise TvmDeployError(f"--threads must be >= 1, got {args.threads}")
    paths = expand_image_paths(args.images)
    manifest = read_manifest(args.artifact)
    # A model that cannot classify images (no image input, a wrong label table) fails here, before loading.
    manifest.preprocess_config()
    manifest.class_labels()
    started = time.perf_counter()
    from tvmdeploy.runtime.tvm_api import load_device_runtime  # after the numpy/Pillow check above

    load_device_runtime(manifest.device)
    model = Model(load_artifact(args.artifact, threads=args.threads))
    loaded = time.perf_counter()
    items = list(model.classify_stream(paths, topk=args.topk))
    ran = time.perf_counter()
    if args.save_logits:
        logits = [item.logits for item in items if item.logits is not None]  # of the readable images, in order
        np.save(args.save_logits, np.stack(logits) if logits else np.zeros((0, manifest.num_classes), np.float32))
    import tvm.base

    report = {
        "model": manifest.model_name,
        "profile": manifest.profile,
        "weights": manifest.weights,
        "runtime_only": bool(tvm.base._RUNTIME_ONLY),
        "load_s": round(loaded - started, 3),
        "run_s": round(ran - loaded, 3),
        "results": [to_record(item) for item in items],
        "unreadable": sum(not item.ok for item in items),
    }
    return report, items


def _print_text(report: dict, items: list[Classified]) -> None:
    from tvmdeploy.runtime.classify import prediction_lines, weights_caveat

    mode = "runtime-only" if report["runtime_only"] else "full TVM"
    print(f"{report['model']} on {report['profile']} ({mode}, load {report['load_s']} s, run {report['run_s']} s)")
    if caveat := weights_caveat(report["weights"]):
        print(f"warning: {caveat}")
    for item in items:
        if item.ok:  # the unreadable ones go to stderr (see main)
            print("\n".join(prediction_lines(item)))


def main(argv: list[str] | None = None) -> int:
    # Before anything imports tvm: load libtvm_runtime only, never the (absent) compiler library.
    os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
    # With torch installed, tvm_ffi would otherwise JIT-compile a torch extension at import (minutes, needs a
    # compiler); the bundle never hands tensors to torch.
    os.environ.setdefault("TVM_FFI_DISABLE_TORCH_C_DLPACK", "1")
    args = _parser().parse_args(argv)
    try:
        report, items = classify(args)
    except TvmDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from tvmdeploy.runtime.classify import describe_failure, unreadable_summary

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report, items)
    # As `tvmdeploy run`: every unreadable image on stderr with its reason, the others classified, exit 1.
    failed = [item for item in items if not item.ok]
    for item in failed:
        print(f"unreadable: {describe_failure(item)}", file=sys.stderr)
    if failed:
        print(f"error: {unreadable_summary(len(failed), len(items))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
