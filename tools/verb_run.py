"""`tvmdeploy run`: classify images with an artifact (shared preprocessing, softmax top-k)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tvmdeploy.tools.module_opener import add_rpc_arguments, open_module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", type=Path, help="artifact folder written by `tvmdeploy build`")
    parser.add_argument("images", type=Path, nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the profile's)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_rpc_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tvmdeploy.runtime.labels import load_labels
    from tvmdeploy.runtime.postprocess import softmax, topk
    from tvmdeploy.runtime.preprocess import PreprocessConfig, preprocess_images

    module = open_module(args.artifact, args, threads=args.threads)
    manifest = module.manifest
    images = preprocess_images(args.images, PreprocessConfig.from_dict(manifest.preprocess))
    probs = softmax(module.run_images(images))
    labels = load_labels(manifest.labels)
    predictions = topk(probs, args.topk, labels.names)
    where = getattr(module, "description", f"local {manifest.device}")
    caveat = f"weights are random ({manifest.weights}): class names are meaningless" if manifest.weights_are_random else ""
    if args.json:
        print(json.dumps({
            "artifact": str(args.artifact),
            "model": manifest.model_name,
            "profile": manifest.profile,
            "device": where,
            "weights": manifest.weights,
            "warning": caveat or None,
            "results": [
                {"image": str(path), "top": [{"index": p.index, "label": p.label, "probability": p.probability} for p in preds]}
                for path, preds in zip(args.images, predictions)
            ],
        }, indent=2))
        return 0
    print(f"{manifest.model_name} on {manifest.profile} ({where})")
    if caveat:
        print(f"warning: {caveat}")
    for path, preds in zip(args.images, predictions):
        print(f"{path}:")
        for rank, p in enumerate(preds, 1):
            print(f"  {rank}. {p.probability * 100:6.2f}%  {p.label} (class {p.index})")
    return 0
