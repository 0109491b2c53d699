"""`tvmdeploy quantize`: static INT8 quantization (QDQ) of an ONNX model, calibrated on a folder of images."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tvmdeploy.compile.quantization.calibrate import DEFAULT_SAMPLES, METHODS

    parser.add_argument("model", type=Path, help="float32 ONNX file")
    parser.add_argument(
        "--calibration", type=Path, required=True, help="folder of images; each goes through the model's deployment preprocessing"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="quantized ONNX file to write (QDQ form)")
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help=f"calibration images to use, at most (default {DEFAULT_SAMPLES}; the first by name)",
    )
    parser.add_argument("--method", choices=METHODS, default="minmax", help="calibration method (default minmax)")
    granularity = parser.add_mutually_exclusive_group()
    granularity.add_argument(
        "--per-channel", dest="per_channel", action="store_true", default=True, help="one weight scale per output channel (default)"
    )
    granularity.add_argument("--per-tensor", dest="per_channel", action="store_false", help="one weight scale per tensor")


def run(args: argparse.Namespace) -> int:
    import tvmdeploy

    result = tvmdeploy.quantize(
        args.model, args.calibration, args.output, samples=args.samples, method=args.method, per_channel=args.per_channel
    )
    print(f"quantized {args.model} -> {result.output} ({result.summary()})")
    print(f"{result.agreement.summary()} (ONNX Runtime; the int8 build computes the same logits)")
    if result.skipped:
        print(f"skipped {len(result.skipped)} calibration file(s) that are not readable images:")
        for _path, why in result.skipped:
            print(f"  {why}")
    return 0
