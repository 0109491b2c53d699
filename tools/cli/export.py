"""`tvmdeploy export`: write a zoo model as ONNX (input `input` [1,3,224,224], output `logits`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tvmdeploy.compile.models import zoo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"zoo model, one of: {', '.join(zoo.names())}")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    parser.add_argument(
        "--weights",
        type=Path,
        help="checkpoint to load: torchvision/timm .pth or .safetensors, PaddleClas .pdparams "
        "(default: seeded random weights, class names then mean nothing)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")


def run(args: argparse.Namespace) -> int:
    # torch is imported inside export only, so `--help` and name errors stay fast.
    import tvmdeploy
    from tvmdeploy.compile.models.export import DEFAULT_OPSET, weights_are_random

    result = tvmdeploy.export(args.name, args.output, weights=args.weights, seed=args.seed, opset=args.opset)
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    print(f"wrote {result.path} ({result.model}, weights {result.weights}, opset {opset})")
    if weights_are_random(result.weights):
        print("note: random weights: predictions are meaningless; pass --weights for a real checkpoint")
    return 0
