"""`tvmdeploy build`: compile an ONNX model for a profile into a verified artifact folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError


def parse_shape(text: str) -> list[int]:
    try:
        dims = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise TvmDeployError(f"--input-shape must look like 1,3,224,224, got '{text}'") from None
    return dims


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="ONNX file")
    parser.add_argument("--profile", required=True, help="target profile name (see `tvmdeploy targets`) or a TOML file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="artifact folder to write")
    parser.add_argument(
        "--tuning-log",
        metavar="DIR|auto|shipped|defaults|none",
        default="auto",
        help="MetaSchedule database folder to apply; 'auto' (default): the one under tuning_logs/ "
        "matching this model, if it was tuned on this CPU kind; 'shipped': that one whatever "
        "CPU it was tuned on; 'defaults': no log; 'none': no log and no default schedules "
        "(TVM's raw lowering, for comparison). Kernels no log covers get the default schedules",
    )
    parser.add_argument("--input-shape", type=parse_shape, help="N,C,H,W for models with dynamic dims")
    parser.add_argument("--batch", type=int, help="batch size to specialise for (default: the model's, or 1)")
    parser.add_argument(
        "--atol",
        type=float,
        default=None,
        help="absolute part of the parity tolerance on logits (default 1e-4); the bound adds "
        "float32 rounding of the model's deepest reduction scaled by the largest logit",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime parity check")


def run(args: argparse.Namespace) -> int:
    import tvmdeploy
    from tvmdeploy.runtime.artifact import tuned_tasks

    start = time.perf_counter()
    result = tvmdeploy.build(
        args.model,
        args.profile,
        args.output,
        tuning_log=args.tuning_log,
        input_shape=args.input_shape,
        batch=args.batch,
        verify=not args.no_verify,
        atol=args.atol,
    )
    manifest = result.manifest
    took = time.perf_counter() - start
    print(f"built {manifest.model_name} for {manifest.profile} ({manifest.target['kind']}) in {took:.1f} s -> {result.artifact_dir}")
    if manifest.tuning and manifest.tuning.get("database"):
        print(f"tuning log: {tuned_tasks(manifest.tuning)} from {manifest.tuning['database']}")
    else:
        print(f"tuning log: none ({result.tuning_note or f'--tuning-log {args.tuning_log}'}; see `tvmdeploy tune`)")
    print(f"schedules (kernels per class: from the log, default rules, raw lowering): {result.schedules}")
    if result.integer:
        print(f"integer kernels (8-bit tensors, int32 accumulation; per class): {result.integer}")
        print(result.agreement)
    for name, why in (manifest.tuning.get("raw_kernels") or {}).items():
        print(f"raw lowering: {name} ({why})")
    if result.parity is not None:
        print(result.parity.summary())
    else:
        print(f"parity: not run here ({result.parity_skipped_reason})")
    if manifest.weights_are_random:
        print(f"note: weights are random ({manifest.weights}); predictions and class names are meaningless")
    return 0
