"""Build here (no GPU needed) the kit that tools/dev/device_check.sh runs on a fresh GPU machine without TVM.

Kit layout: runtime.tar.gz (runtime-only bundle for several Pythons, with libcudart), artifacts/<name>/
(CUDA sm_90 at batch 1 and 32, AVX-512 at batch 1), torch_model.pt (spec + fp16-exact state dict),
py/ (the torch model's source), optionally model.onnx, device_check.sh/.py and KIT.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError

# What one device-check run may carry (the device tool's limit on carried paths).
CARRY_LIMIT_BYTES = 64 * 2**20
_TOOLS = Path(__file__).resolve().parent
_MODEL_SOURCES = (
    "compile/__init__.py",
    "compile/models/__init__.py",
    "compile/models/mobilenetv2_spec.py",
    "compile/models/torch_models.py",
)


def fp16_exact_model(name: str, seed: int):
    """The zoo model with seeded random weights rounded to fp16-representable values.

    The state dict can then travel as fp16 (half the bytes) and still restore the exact fp32 weights
    the artifacts were compiled from, which keeps the kit under the carry limit.
    """
    import torch

    from tvmdeploy.compile.models.export import build_torch_model

    module, tag = build_torch_model(name, seed=seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return module, f"{tag}:fp16-exact"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def prepare(
    kit: Path, *, model: str, cuda_profile: str, cpu_profile: str, batches: list[int], pythons: list[str], with_onnx: bool, seed: int
) -> dict:
    import torch

    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.models.export import LABELS_ID, META_LABELS, META_MODEL, META_WEIGHTS, export_module, set_metadata
    from tvmdeploy.targets import load_profile
    from tvmdeploy.tools.devices.bundle import make_bundle

    if kit.exists():
        shutil.rmtree(kit)
    (kit / "artifacts").mkdir(parents=True)
    timings: dict[str, float] = {}

    module, weights_tag = fp16_exact_model(model, seed)
    onnx_path = kit / "model.onnx"
    export_module(module, onnx_path)
    set_metadata(onnx_path, {META_MODEL: model, META_WEIGHTS: weights_tag, META_LABELS: LABELS_ID})
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in module.state_dict().items()}
    torch.save({"zoo_name": model, "weights": weights_tag, "spec": module.spec, "state_dict": half}, kit / "torch_model.pt")
    repo = _TOOLS.parents[1]
    for rel in _MODEL_SOURCES:
        target = kit / "py" / "tvmdeploy" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / rel, target)

    artifacts = []
    builds = [(cuda_profile, b) for b in batches] + [(cpu_profile, 1)]
    for profile_name, batch in builds:
        name = f"{profile_name}-b{batch}"
        started = time.perf_counter()
        # The CPU build applies the shipped MetaSchedule log (tuned on the 2-core dev host); CUDA has none.
        result = build_artifact(
            onnx_path,
            load_profile(profile_name),
            kit / "artifacts" / name,
            batch=batch,
            tuning_log="shipped" if profile_name == cpu_profile else None,
        )
        timings[f"build {name} s"] = round(time.perf_counter() - started, 1)
        (kit / "artifacts" / name / "model.onnx").unlink(missing_ok=True)  # one copy (kit/model.onnx) is enough
        artifacts.append(
            {
                "name": name,
                "profile": profile_name,
                "batch": batch,
                "parity_here": result.manifest.parity,
                "bytes": _size(kit / "artifacts" / name),
            }
        )
        print(f"built {name} in {timings[f'build {name} s']} s", flush=True)

    bundle = make_bundle("linux-x86_64", kit / "runtime.tar.gz", python_versions=pythons, cudart="yes")
    for script in ("device_check.sh", "device_check.py"):
        shutil.copy2(_TOOLS / script, kit / script)
    if not with_onnx:
        # The device re-exports it from torch_model.pt with its own PyTorch (same weights).
        onnx_path.unlink()
    info = {
        "model": model,
        "weights": weights_tag,
        "cuda_profile": cuda_profile,
        "cpu_profile": cpu_profile,
        "artifacts": artifacts,
        "bundle": {"bytes": bundle.size_bytes, "pythons": bundle.python_versions, "cudart": bundle.cudart},
        "has_onnx": with_onnx,
        "timings": timings,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (kit / "KIT.json").write_text(json.dumps(info, indent=2) + "\n")
    info["total_bytes"] = _size(kit)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kit", type=Path, nargs="?", default=Path("device_check_kit"), help="folder to (re)create")
    parser.add_argument("--model", default="torchvision_mobilenet_v2", help="zoo model (default: MobileNetV2 x1.0)")
    parser.add_argument("--cuda-profile", default="cuda-sm90", help="H100/H200: cuda-sm90; A100: cuda-sm80")
    parser.add_argument("--cpu-profile", default="x86-avx512")
    parser.add_argument("--batch", type=int, action="append", help="CUDA batch sizes (default 1 and 32)")
    parser.add_argument("--python", action="append", help="Python versions of the GPU machine (default 3.10-3.13)")
    parser.add_argument(
        "--with-onnx", action="store_true", help="carry model.onnx too (+14 MB; by default the device re-exports it with its PyTorch)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        info = prepare(
            args.kit,
            model=args.model,
            cuda_profile=args.cuda_profile,
            cpu_profile=args.cpu_profile,
            batches=args.batch or [1, 32],
            pythons=args.python or ["3.10", "3.11", "3.12", "3.13"],
            with_onnx=args.with_onnx,
            seed=args.seed,
        )
    except TvmDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = info["total_bytes"]
    print(f"kit {args.kit}: {total / 2**20:.1f} MiB ({', '.join(f'{k} {v}' for k, v in info['timings'].items())})")
    if total > CARRY_LIMIT_BYTES:
        print(f"warning: over the {CARRY_LIMIT_BYTES / 2**20:.0f} MiB carry limit; drop --with-onnx or a batch size", file=sys.stderr)
    print(f"run on the GPU machine: bash {args.kit}/device_check.sh   (writes device_check.json/.md under $OUT)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
