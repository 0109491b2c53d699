"""Device check on a GPU machine without TVM: CUDA artifact parity and timing vs PyTorch, AVX-512 vs ONNX Runtime.

Run by device_check.sh from an unpacked kit (see prepare_device_check.py). Needs numpy and PyTorch;
ONNX Runtime for the CPU parity and AVX-512 timing. Writes device_check.json and device_check.md into
--out after every step, so a run cut short by its time limit still leaves what it measured.
Timing statistics, the CPU flags and top-k come from the bundle's `tvmdeploy.runtime` (importable once
`setup_paths` ran, hence the function-local imports).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

PARITY_ATOL = 1e-3  # logits of random-weight MobileNetV2 are O(1); fp32 kernels that differ in order agree to ~1e-5
RESULTS: dict = {"steps": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
_OUT = Path(".")
_DEADLINE = float("inf")


def left_s() -> float:
    return _DEADLINE - time.monotonic()


def save() -> None:
    _OUT.mkdir(parents=True, exist_ok=True)
    (_OUT / "device_check.json").write_text(json.dumps(RESULTS, indent=2, default=str) + "\n")
    (_OUT / "device_check.md").write_text(markdown(RESULTS))


def step(name: str, needs_s: float = 0.0):
    """Decorator: run a step, record its result or why it was skipped or failed, save, never raise."""

    def wrap(fn):
        def run(*args, **kwargs):
            if left_s() < needs_s:
                RESULTS["steps"][name] = {"status": "skipped", "reason": f"time budget: {left_s():.0f} s left"}
            else:
                started = time.monotonic()
                try:
                    value = fn(*args, **kwargs)
                    RESULTS["steps"][name] = {"status": "ok", **(value or {})}
                except Skip as why:
                    RESULTS["steps"][name] = {"status": "skipped", "reason": str(why)}
                except Exception as exc:  # noqa: BLE001  (a device check reports, it does not stop)
                    RESULTS["steps"][name] = {
                        "status": "failed",
                        "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(limit=6),
                    }
                RESULTS["steps"][name]["seconds"] = round(time.monotonic() - started, 1)
            save()
            print(f"[{name}] {RESULTS['steps'][name]['status']}", flush=True)
            return RESULTS["steps"][name]

        return run

    return wrap


class Skip(Exception):
    """A step that cannot run here (no GPU, no AVX-512, no ONNX Runtime): reported, not an error."""


def cpu_flags() -> set[str]:
    from tvmdeploy.runtime.cpu_check import host_cpu_flags

    return host_cpu_flags() or set()


def summary_ms(stats) -> dict:
    """The report's view of a runtime `LatencyStats`: median, p10, p90 (ms, rounded) and the sample count."""
    return {"median_ms": round(stats.median_ms, 4), "p10_ms": round(stats.p10_ms, 4), "p90_ms": round(stats.p90_ms, 4), "n": stats.n}


def stats_ms(samples_s: list[float]) -> dict:
    from tvmdeploy.runtime.timing import LatencyStats

    return summary_ms(LatencyStats.from_samples([s * 1e3 for s in samples_s]))


def compare(actual: np.ndarray, expected: np.ndarray) -> dict:
    from tvmdeploy.runtime.postprocess import topk_indices

    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_equal": bool((actual.argmax(-1) == expected.argmax(-1)).all()),
        "top5_equal": bool((topk_indices(actual, 5) == topk_indices(expected, 5)).all()),
        "passed": bool(diff.max() <= PARITY_ATOL),
    }


# ---------------------------------------------------------------------------------------------- setup


def setup_paths(kit: Path, bundle_root: Path) -> None:
    # Before `import tvm`: the bundle's runtime-only TVM, never a compiler library.
    os.environ["TVM_USE_RUNTIME_LIB"] = "1"
    # Else tvm_ffi JIT-compiles a torch extension at import when torch is present (minutes, needs nvcc).
    os.environ.setdefault("TVM_FFI_DISABLE_TORCH_C_DLPACK", "1")
    os.environ.setdefault("TVM_BIND_THREADS", "0")
    sys.path[:0] = [str(bundle_root / "site"), str(kit / "py")]


@step("environment")
def environment(kit: Path) -> dict:
    info = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "avx512f": "avx512f" in cpu_flags(),
        "kit": json.loads((kit / "KIT.json").read_text()),
    }
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"unavailable: {exc}"
    import torch

    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    if info["cuda_available"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    import tvm

    info["tvm"] = tvm.__version__
    info["tvm_runtime_only"] = bool(tvm.base._RUNTIME_ONLY)
    return info


def torch_model(kit: Path):
    import torch

    from tvmdeploy.compile.models.torch_models import SpecMobileNetV2

    saved = torch.load(kit / "torch_model.pt", map_location="cpu", weights_only=False)
    module = SpecMobileNetV2(saved["spec"])
    module.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in saved["state_dict"].items()})
    return module.eval()


def onnx_file(kit: Path, module, work: Path) -> Path:
    """The kit's model.onnx, or one exported here from the same weights when the kit left it out."""
    if (kit / "model.onnx").is_file():
        return kit / "model.onnx"
    import torch

    path = work / "model.onnx"
    if not path.is_file():
        example = torch.zeros(1, 3, 224, 224)
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                opset_version=17,
                do_constant_folding=True,
                dynamo=False,
            )
        except TypeError:  # PyTorch < 2.5 has no `dynamo` argument
            torch.onnx.export(
                module, (example,), str(path), input_names=["input"], output_names=["logits"], opset_version=17, do_constant_folding=True
            )
    return path


def ort_session(path: Path, threads: int, batch_dim: bool = False):
    """The session `tvmdeploy bench` times (runtime/ort_session.py), or a skipped step where ORT is missing."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        raise Skip("onnxruntime is not installed")
    from tvmdeploy.runtime.ort_session import ort_session as bench_session

    return bench_session(path, threads)


def load_tvm(kit: Path, name: str, threads: int | None = None):
    from tvmdeploy.runtime.artifact import read_manifest
    from tvmdeploy.runtime.loader import load_artifact
    from tvmdeploy.runtime.tvm_api import load_device_runtime

    folder = kit / "artifacts" / name
    if not folder.is_dir():
        raise Skip(f"artifact {name} is not in the kit")
    load_device_runtime(read_manifest(folder).device)
    return load_artifact(folder, threads=threads)


def fixed_input(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ GPU


def _require_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA GPU visible to PyTorch")


def torch_gpu_times(module, x: np.ndarray, iters: int, graphs: bool) -> dict:
    """Per-call GPU latency of PyTorch eager or a captured CUDA graph, measured with CUDA events."""
    import torch

    model = module.cuda().eval()
    static = torch.from_numpy(x).cuda()
    with torch.inference_mode():
        for _ in range(10):
            model(static)
        torch.cuda.synchronize()
        if graphs:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    model(static)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                model(static)
            call = graph.replay
        else:
            call = lambda: model(static)  # noqa: E731
        samples = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
    return stats_ms(samples)


@step("cuda_parity_batch1", needs_s=60)
def cuda_parity(kit: Path, module, onnx_path_fn, name: str) -> dict:
    _require_gpu()
    import torch

    # TF32 would make PyTorch's convolutions (not TVM's) lose ~1e-3: compare full fp32.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        tvm_module = load_tvm(kit, name)
    except Exception as exc:
        # PyTorch sees the GPU, so a TVM "no device" means its CUDA 13 runtime found no usable driver.
        raise RuntimeError(
            f"{exc} (TVM 0.27's CUDA runtime is CUDA 13: it needs NVIDIA driver R580 or newer; " f"see nvidia_smi in the environment step)"
        ) from exc
    x = fixed_input(tvm_module.manifest.batch)
    tvm_logits = tvm_module.run(x)
    with torch.inference_mode():
        torch_logits = module.cuda()(torch.from_numpy(x).cuda()).cpu().numpy()
    result = {"artifact": name, "vs_torch_gpu": compare(tvm_logits, torch_logits)}
    try:
        session = ort_session(onnx_path_fn(), threads=min(os.cpu_count() or 1, 16))
        result["vs_onnxruntime_cpu"] = compare(tvm_logits, session.run(None, {"input": x})[0])
    except Skip as why:
        result["vs_onnxruntime_cpu"] = {"skipped": str(why)}
    return result


def cuda_timing(kit: Path, module, name: str, iters: int) -> dict:
    _require_gpu()
    tvm_module = load_tvm(kit, name)
    batch = tvm_module.manifest.batch
    x = fixed_input(batch)
    tvm_module.run(x)  # warm-up: module load, first launch
    # time_evaluator synchronises the device around each sample: GPU time of one whole forward.
    tvm_samples = tvm_module.time(x, number=10, repeat=max(iters // 10, 5))
    result = {
        "artifact": name,
        "batch": batch,
        "tvm": stats_ms(tvm_samples),
        "torch_eager": torch_gpu_times(module, x, iters, graphs=False),
    }
    try:
        result["torch_cuda_graph"] = torch_gpu_times(module, x, iters, graphs=True)
    except Exception as exc:  # noqa: BLE001  (capture can fail on old drivers; the rest still counts)
        result["torch_cuda_graph"] = {"error": f"{type(exc).__name__}: {exc}"}
    result["images_per_s_tvm"] = round(batch / (result["tvm"]["median_ms"] / 1e3), 1)
    return result


# ------------------------------------------------------------------------------------------------ CPU


@step("avx512_vs_onnxruntime", needs_s=60)
def avx512(kit: Path, onnx_path_fn, name: str, threads: int, iters: int) -> dict:
    if "avx512f" not in cpu_flags():
        raise Skip("this CPU has no avx512f")
    tvm_module = load_tvm(kit, name, threads=threads)
    session = ort_session(onnx_path_fn(), threads)
    x = fixed_input(1)
    parity = compare(tvm_module.run(x), session.run(None, {"input": x})[0])
    from tvmdeploy.runtime.timing import measure

    tvm_samples = tvm_module.time(x, number=1, repeat=iters)
    ort_stats = measure(lambda: session.run(None, {"input": x}), warmup=5, min_runs=iters, min_seconds=0.0, max_runs=iters)
    tvm_ms, ort_ms = stats_ms(tvm_samples), summary_ms(ort_stats)
    return {
        "artifact": name,
        "threads": threads,
        "parity_vs_onnxruntime": parity,
        "tvm": tvm_ms,
        "onnxruntime": ort_ms,
        "tvm_over_ort": round(tvm_ms["median_ms"] / ort_ms["median_ms"], 2),
        "tuned": tvm_module.manifest.is_tuned,
        "schedules": tvm_module.manifest.schedule_text(),
    }


# --------------------------------------------------------------------------------------------- report


def markdown(results: dict) -> str:
    lines = ["# tvmdeploy device check", "", f"started {results['started']}", ""]
    env = results["steps"].get("environment", {})
    if env.get("status") == "ok":
        lines += [
            f"- GPU: {env.get('gpu', 'none')} ({env.get('nvidia_smi', '')})",
            f"- Python {env['python']}, PyTorch {env['torch']} (CUDA {env['torch_cuda']}), "
            f"onnxruntime {env['onnxruntime']}, TVM {env['tvm']} runtime-only={env['tvm_runtime_only']}",
            f"- CPU: {env['cpu_count']} logical cores, avx512f={env['avx512f']}",
            "",
        ]
    lines += ["| step | status | result |", "|---|---|---|"]
    for name, data in results["steps"].items():
        if name == "environment":
            continue
        status = data.get("status")
        detail = data.get("reason") or data.get("error") or ""
        if status == "ok":
            detail = summary(data)
        lines.append(f"| {name} | {status} | {detail} |")
    return "\n".join(lines) + "\n"


def summary(data: dict) -> str:
    parts = []
    for key in ("vs_torch_gpu", "vs_onnxruntime_cpu", "parity_vs_onnxruntime"):
        if isinstance(data.get(key), dict) and "max_abs_diff" in data[key]:
            p = data[key]
            parts.append(f"{key}: max|d| {p['max_abs_diff']:.2e}, top5 equal {p['top5_equal']}, passed {p['passed']}")
    for key in ("tvm", "torch_eager", "torch_cuda_graph", "onnxruntime"):
        if isinstance(data.get(key), dict) and "median_ms" in data[key]:
            parts.append(f"{key} {data[key]['median_ms']:.3f} ms")
    if "tvm_over_ort" in data:
        parts.append(f"TVM/ORT {data['tvm_over_ort']}x ({data['threads']} threads, tuned={data['tuned']})")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    global _OUT, _DEADLINE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", type=Path, required=True)
    parser.add_argument("--bundle-root", type=Path, required=True, help="the unpacked runtime bundle")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=420, help="stop starting new steps after this")
    parser.add_argument("--cpu-threads", type=int, default=min(os.cpu_count() or 1, 16))
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args(argv)
    _OUT, _DEADLINE = args.out, time.monotonic() + args.budget_s
    setup_paths(args.kit, args.bundle_root)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    save()
    kit_info = json.loads((args.kit / "KIT.json").read_text())
    cuda_names = [a["name"] for a in kit_info["artifacts"] if a["profile"].startswith("cuda")]
    cpu_names = [a["name"] for a in kit_info["artifacts"] if not a["profile"].startswith("cuda")]

    environment(args.kit)
    module = torch_model(args.kit)
    onnx_cache: list[Path] = []

    def onnx_path() -> Path:
        if not onnx_cache:
            onnx_cache.append(onnx_file(args.kit, module, work))
        return onnx_cache[0]

    batch1 = [n for n in cuda_names if n.endswith("-b1")]
    if batch1:
        cuda_parity(args.kit, module, onnx_path, batch1[0])
    for name in sorted(cuda_names, key=lambda n: int(n.rsplit("-b", 1)[1])):
        # Batch 1 first; larger batches only while time allows.
        step(f"cuda_timing_{name}", needs_s=45)(cuda_timing)(args.kit, module, name, args.iters)
    if cpu_names:
        avx512(args.kit, onnx_path, cpu_names[0], args.cpu_threads, min(args.iters, 100))
    RESULTS["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    print((args.out / "device_check.md").read_text())
    failed = [n for n, s in RESULTS["steps"].items() if s["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
