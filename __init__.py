"""tvmdeploy: MobileNetV2-class image classifiers from ONNX to tuned, verified native code with Apache TVM.

The public Python API (the `tvmdeploy` command line is built on it)::

    import tvmdeploy

    result = tvmdeploy.build("mnv2.onnx", "x86-avx2", "art/x86")      # -> BuildResult (manifest, parity, ...)
    with tvmdeploy.load("art/x86") as model:                           # -> Model (local, or over TVM RPC)
        for top in model.classify(["cat.jpg"], topk=5):                # paths or PIL images
            print([(p.index, p.label, p.probability) for p in top])
        print(model.time().summary())                                  # LatencyStats, ms per batch
    tvmdeploy.tune("mnv2.onnx", "x86-avx2", tvmdeploy.TuneOptions(trials=64, time_budget_min=10))
    print(tvmdeploy.evaluate("art/x86", "val/", ground_truth="val.txt").top1)  # -> EvalResult (top-1/top-5)
    print(tvmdeploy.bench("art/a72", rpc_tracker="127.0.0.1:9190", rpc_key="rpi4").rows)  # TVM vs ORT there
    rows = tvmdeploy.compare(["x86-avx2", "arm-cortex-a72@rpi4"], "mnv2.onnx", rpc_tracker="127.0.0.1:9190")
    tvmdeploy.profiles(), tvmdeploy.zoo()

This file is the package's `__init__.py`: pyproject maps "tvmdeploy" to the repository root, whose
folders (compile/, targets/, runtime/, tools/, tuning_logs/) are its sub-packages, so the fixed
top-level layout stays. Everything heavy (TVM, ONNX, torch) is imported inside the functions:
`import tvmdeploy` costs only the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tvmdeploy.compile.build import BuildResult
    from tvmdeploy.compile.measure.bench import BenchResult
    from tvmdeploy.compile.measure.compare import CompareRow
    from tvmdeploy.compile.measure.evaluate import EvalResult
    from tvmdeploy.compile.models.export import ExportResult
    from tvmdeploy.compile.models.zoo import ZooEntry
    from tvmdeploy.compile.quantization.calibrate import QuantizeResult
    from tvmdeploy.compile.tuning.driver import TuneOptions, TuneResult
    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.runtime.module import ArtifactModule, Model
    from tvmdeploy.runtime.postprocess import Prediction
    from tvmdeploy.runtime.rpc import RpcEndpoint
    from tvmdeploy.runtime.timing import LatencyStats
    from tvmdeploy.targets import TargetProfile

__version__ = "0.1.0"

__all__ = [
    "BenchResult",
    "CompareRow",
    "ArtifactModule",
    "BuildResult",
    "EvalResult",
    "ExportResult",
    "LatencyStats",
    "Model",
    "Prediction",
    "TargetProfile",
    "TuneOptions",
    "QuantizeResult",
    "TuneResult",
    "TvmDeployError",
    "ZooEntry",
    "bench",
    "build",
    "compare",
    "evaluate",
    "export",
    "load",
    "profiles",
    "quantize",
    "tune",
    "zoo",
]

# Public types, imported on first use (PEP 562): name -> defining module.
_LAZY_TYPES = {
    "ArtifactModule": "tvmdeploy.runtime.module",
    "BuildResult": "tvmdeploy.compile.build",
    "BenchResult": "tvmdeploy.compile.measure.bench",
    "CompareRow": "tvmdeploy.compile.measure.compare",
    "EvalResult": "tvmdeploy.compile.measure.evaluate",
    "ExportResult": "tvmdeploy.compile.models.export",
    "LatencyStats": "tvmdeploy.runtime.timing",
    "Model": "tvmdeploy.runtime.module",
    "Prediction": "tvmdeploy.runtime.postprocess",
    "QuantizeResult": "tvmdeploy.compile.quantization.calibrate",
    "TargetProfile": "tvmdeploy.targets.profile",
    "TuneOptions": "tvmdeploy.compile.tuning.driver",
    "TuneResult": "tvmdeploy.compile.tuning.driver",
    "TvmDeployError": "tvmdeploy.runtime.errors",
    "ZooEntry": "tvmdeploy.compile.models.zoo",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_TYPES:
        import importlib

        value = getattr(importlib.import_module(_LAZY_TYPES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tvmdeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _profile(name_or_profile: str | os.PathLike[str] | TargetProfile) -> TargetProfile:
    """A TargetProfile as is, or one by name (see `profiles()`) or TOML file."""
    from tvmdeploy.targets import TargetProfile, load_profile

    if isinstance(name_or_profile, TargetProfile):
        return name_or_profile
    return load_profile(os.fspath(name_or_profile))


def _endpoint(rpc_server: str | None, rpc_tracker: str | None, rpc_key: str | None) -> RpcEndpoint | None:
    """The device the rpc_* arguments name (RpcEndpoint.from_options), or None for this machine."""
    if not (rpc_server or rpc_tracker or rpc_key):
        return None
    from tvmdeploy.runtime.rpc import RpcEndpoint

    return RpcEndpoint.from_options(rpc_server, rpc_tracker, rpc_key)


def profiles() -> list[TargetProfile]:
    """Every shipped target profile (targets/profiles/*.toml), validated."""
    from tvmdeploy.targets import all_profiles

    return all_profiles()


def zoo() -> list[ZooEntry]:
    """The MobileNetV2 variants of the model card, by name (for `tvmdeploy export NAME`)."""
    from tvmdeploy.compile.models import zoo as _zoo

    return [_zoo.get(name) for name in _zoo.names()]


def export(
    name: str,
    output: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    seed: int = 0,
    opset: int | None = None,
) -> ExportResult:
    """Export zoo model `name` to the ONNX file `output` (input `input` [1,3,S,S] float32, output `logits`), with
    the checkpoint `weights` (torchvision/timm .pth or .safetensors, PaddleClas .pdparams) or seeded random
    weights; `opset` defaults to 17. Needs torch (`pip install 'tvmdeploy[export]'`). Returns the ExportResult."""
    from pathlib import Path

    from tvmdeploy.compile.models import export as exporting
    from tvmdeploy.compile.models import zoo as model_zoo

    model_zoo.get(name)  # an unknown name fails here, before torch is imported
    return exporting.export_onnx(
        name,
        Path(output),
        weights=None if weights is None else Path(weights),
        seed=seed,
        opset=exporting.DEFAULT_OPSET if opset is None else opset,
    )


def build(
    model: str | os.PathLike[str],
    profile: str | os.PathLike[str] | TargetProfile,
    output: str | os.PathLike[str],
    tuning_log: str | os.PathLike[str] | None = "auto",
    *,
    input_shape: list[int] | None = None,
    batch: int | None = None,
    verify: bool = True,
    atol: float | None = None,
) -> BuildResult:
    """Compile the ONNX `model` for `profile` into the artifact folder `output`; returns the BuildResult.

    `tuning_log`: a MetaSchedule database folder (a path object always is one), "auto" (the shipped log
    matching the model, if it was tuned on this CPU kind: same LLVM CPU, or a kin core: log_choice.KIN_CORES), "shipped"
    (that log whatever CPU it was tuned on), "defaults" or None (no log), "none" (no log and no default
    schedules: TVM's raw lowering). `verify`
    checks parity with ONNX Runtime (max |Δ logits| <= `atol` (default 1e-4) + K x 2^-24 x max |logit|, K the
    model's deepest reduction, and the same top-5) when the library runs here; a failed build leaves a previous
    artifact in place.
    """
    from pathlib import Path

    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.measure.verify import DEFAULT_ATOL

    return build_artifact(
        Path(model),
        _profile(profile),
        Path(output),
        tuning_log=tuning_log,  # a path object is a folder, whatever its name (compile/tuning/log_choice.LogChoice)
        input_shape=input_shape,
        batch=batch,
        verify=verify,
        atol=DEFAULT_ATOL if atol is None else atol,
    )


def quantize(
    model: str | os.PathLike[str],
    calibration: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    samples: int = 100,
    method: str = "minmax",
    per_channel: bool = True,
    progress: bool = True,
) -> QuantizeResult:
    """Statically quantize the float32 ONNX `model` to INT8 in QDQ form (ONNX Runtime's tool, uint8 activations,
    int8 weights) into `output`, calibrated on up to `samples` images of the folder `calibration`, each
    preprocessed as deployment does. `method`: "minmax", "entropy" or "percentile". Returns a QuantizeResult
    (images used, files skipped)."""
    from tvmdeploy.compile.quantization.calibrate import quantize_model

    return quantize_model(model, calibration, output, samples=samples, method=method, per_channel=per_channel, progress=progress)


def load(
    artifact: str | os.PathLike[str],
    rpc_tracker: str | None = None,
    rpc_key: str | None = None,
    threads: int | None = None,
    *,
    rpc_server: str | None = None,
    timeout_s: float = 60.0,
    call_timeout_s: float = 600.0,
) -> Model:
    """Open a built artifact: here, or on the device with `rpc_key` behind the tracker at `rpc_tracker`
    ("HOST:PORT"), or on the RPC server at `rpc_server`. `threads`: CPU threads of a local run (default:
    the profile's). A remote device is waited for at most `timeout_s`, each call on it `call_timeout_s`.
    Returns a `Model` (classify, run, time, manifest; close it or use `with`)."""
    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.runtime.module import Model, open_module

    if threads is not None and threads < 1:
        raise TvmDeployError(f"threads must be >= 1, got {threads}")
    endpoint = _endpoint(rpc_server, rpc_tracker, rpc_key)
    return Model(open_module(artifact, endpoint, threads=threads, timeout_s=timeout_s, call_timeout_s=call_timeout_s))


def bench(
    artifact: str | os.PathLike[str],
    rpc_tracker: str | None = None,
    rpc_key: str | None = None,
    threads: int | None = None,
    *,
    rpc_server: str | None = None,
    runs: int = 100,
    warmup: int = 10,
    min_seconds: float = 2.0,
    onnxruntime: bool = True,
    timeout_s: float = 60.0,
    call_timeout_s: float = 600.0,
) -> BenchResult:
    """Latency of a built artifact against ONNX Runtime on its own model.onnx, in alternating blocks of `runs`, on
    the same device and threads: here, or on the device that `rpc_tracker`/`rpc_key` or `rpc_server` name (as in
    `load`), where both are timed by the device's clock and ONNX Runtime is the board's own (a board without it is
    timed alone; `BenchResult.ort_note` says why). Returns a BenchResult (rows of LatencyStats, ratio(), parity)."""
    from pathlib import Path

    from tvmdeploy.compile.measure.bench import bench as run_bench

    return run_bench(
        Path(artifact),
        _endpoint(rpc_server, rpc_tracker, rpc_key),
        threads=threads,
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        ort=onnxruntime,
        timeout_s=timeout_s,
        call_timeout_s=call_timeout_s,
    )


def compare(
    targets: list[str],
    model: str | os.PathLike[str] | None = None,
    *,
    out_dir: str | os.PathLike[str] = "compare-out",
    batch: int | None = None,
    threads: int | None = None,
    runs: int = 50,
    warmup: int = 10,
    min_seconds: float = 1.0,
    max_seconds: float = 60.0,
    baselines: tuple[str, ...] = ("onnxruntime", "pytorch"),
    rpc_tracker: str | None = None,
    tuning_logs: dict[str, str | os.PathLike[str]] | None = None,
    torch_weights: str | os.PathLike[str] | None = None,
    rebuild: bool = False,
    timeout_s: float = 60.0,
    call_timeout_s: float = 600.0,
    log: Callable[[str], None] | None = None,
) -> list[CompareRow]:
    """Latency of several targets in one table: each TARGET an artifact folder or a profile (built from `model` into
    `out_dir`, with its default schedules and, when `tuning_logs` names one for it, with that log too), optionally
    `@WHERE` a device (`KEY` behind `rpc_tracker`, `key=KEY,tracker=HOST:PORT`, `rpc=HOST:PORT[,key=KEY]`), beside
    the host `baselines`, at batch 1 and `batch`. A remote target gets a row of ONNX Runtime on its own device, and
    its ratio is against that one. Failures become rows (status, error); `log` hears the progress."""
    from pathlib import Path

    from tvmdeploy.compile.measure.compare import CompareConfig
    from tvmdeploy.compile.measure.compare import compare as run_compare

    config = CompareConfig(
        targets=[str(t) for t in targets],
        model=Path(model) if model is not None else None,
        out_dir=Path(out_dir),
        batch=batch,
        threads=threads,
        warmup=warmup,
        runs=runs,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        baselines=tuple(baselines),
        rpc_tracker=rpc_tracker,
        rpc_timeout_s=timeout_s,
        rpc_call_timeout_s=call_timeout_s,
        tuning_logs={name: value if isinstance(value, str) else Path(value) for name, value in (tuning_logs or {}).items()},
        torch_weights=Path(torch_weights) if torch_weights is not None else None,
        rebuild=rebuild,
    )
    return run_compare(config, log=log or (lambda _message: None))


def tune(
    model: str | os.PathLike[str],
    profile: str | os.PathLike[str] | TargetProfile,
    options: TuneOptions | None = None,
) -> TuneResult:
    """MetaSchedule tuning of the model's kernels for `profile` into a resumable database (see TuneOptions);
    every record is on disk the moment it is measured. Returns the TuneResult (its `folder` is the log)."""
    from pathlib import Path

    from tvmdeploy.compile.tuning.driver import TuneOptions
    from tvmdeploy.compile.tuning.driver import tune as _tune

    options = options if options is not None else TuneOptions()
    return _tune(Path(model), _profile(profile), **options.as_kwargs())


def evaluate(
    artifact: str | os.PathLike[str] | None,
    images: str | os.PathLike[str],
    *,
    onnx: str | os.PathLike[str] | None = None,
    ground_truth: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    threads: int | None = None,
    reference: bool = False,
    rpc_tracker: str | None = None,
    rpc_key: str | None = None,
    rpc_server: str | None = None,
    timeout_s: float = 60.0,
    call_timeout_s: float = 600.0,
    progress: bool = True,
) -> EvalResult:
    """Top-1/top-5 of the built `artifact` (or, with `artifact` None, of the ONNX model `onnx` on ONNX Runtime)
    over the folder `images`: one sub-folder per synset (n01440764/...), or flat images with `ground_truth` (one
    0-based class index per line in sorted filename order, or "FILE LABEL" lines, LABEL an index or a wnid).

    `batch_size`: images per step (default: the artifact's batch, 8 for ONNX); `limit`: the first N images only;
    `threads`: CPU threads of TVM and ONNX Runtime here (default: the profile's). `reference` also runs ONNX
    Runtime on the artifact's model.onnx and reports agreement. The artifact runs on a device as with `load`
    (`rpc_tracker` and `rpc_key`, or `rpc_server`; `timeout_s`, `call_timeout_s`). `progress`: a progress bar on
    stderr. Unreadable images do not raise: the EvalResult lists them (`unreadable`) beside the metrics.
    """
    from pathlib import Path

    from tvmdeploy.compile.measure.evaluate import EvalModel, evaluate_model

    model = EvalModel.choose(artifact, onnx)  # both or neither is the first error
    endpoint = _endpoint(rpc_server, rpc_tracker, rpc_key)
    return evaluate_model(
        model,
        Path(images),
        ground_truth=None if ground_truth is None else Path(ground_truth),
        batch_size=batch_size,
        limit=limit,
        threads=threads,
        reference=reference,
        endpoint=endpoint,
        timeout_s=timeout_s,
        call_timeout_s=call_timeout_s,
        progress=progress,
    )
