"""`tvmdeploy bundle`: pack the runtime-only bundle (TVM runtime, tvmdeploy.runtime, artifacts) for a device."""

from __future__ import annotations

import argparse
from pathlib import Path

from tvmdeploy.tools.devices.bundle import PLATFORMS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", required=True, choices=sorted(PLATFORMS), help="the device's OS and CPU")
    parser.add_argument("-o", "--output", type=Path, help="archive to write (default ./tvmdeploy-runtime-PLATFORM.tar.gz)")
    parser.add_argument("--artifact", type=Path, action="append", default=[], metavar="DIR", help="artifact folder to include (repeatable)")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="X.Y",
        help="Python version(s) the device runs (repeatable; default: this one for x86-64, 3.11 for aarch64)",
    )
    parser.add_argument(
        "--cudart",
        choices=("auto", "yes", "no"),
        default="auto",
        help="include the CUDA toolkit's libcudart for CUDA artifacts (x86-64; default auto)",
    )
    parser.add_argument("--offline", action="store_true", help="use only wheels already in the cache")
    parser.add_argument(
        "--with-ort", action="store_true", help="add the device's ONNX Runtime (serve.py then times it beside the artifact; ~25 MB more)"
    )


def run(args: argparse.Namespace) -> int:
    from tvmdeploy.tools.devices.bundle import make_bundle

    result = make_bundle(
        args.platform,
        args.output,
        artifacts=args.artifact,
        python_versions=args.python,
        cudart=args.cudart,
        download=not args.offline,
        with_ort=args.with_ort,
    )
    print(
        f"wrote {result.path}: {result.size_bytes / 1e6:.1f} MB ({result.unpacked_bytes / 1e6:.1f} MB unpacked, "
        f"{result.files} files) for {result.platform}, Python {', '.join(result.python_versions)}"
        + (f", with {result.cudart}" if result.cudart else "")
        + (f", with ONNX Runtime {result.onnxruntime}" if result.onnxruntime else "")
    )
    for name in result.artifacts:
        print(f"  artifact: artifacts/{name}")
    print("run it: tar xzf the archive, then python3 tvmdeploy-runtime-*/classify.py ARTIFACT IMAGE")
    print("or serve it: python3 tvmdeploy-runtime-*/serve.py --tracker HOST:PORT --key KEY (a board for tvmdeploy bench/tune --rpc-*)")
    return 0
