"""Latency of an artifact against ONNX Runtime on the same device, same threads, same input, in alternating blocks."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tvmdeploy.runtime.errors import TvmDeployError, arg

if TYPE_CHECKING:
    from tvmdeploy.compile.measure.verify import ParityReport
    from tvmdeploy.runtime.rpc import RpcEndpoint
    from tvmdeploy.runtime.timing import LatencyStats, Sampler

log = logging.getLogger(__name__)


@dataclass
class BenchResult:
    """What `bench` measured: a LatencyStats per runtime (the TVM row first), where ONNX Runtime ran, the parity."""

    artifact: Path
    model: str
    profile: str
    batch: int
    threads: int
    tuning: str  # the manifest's schedule text
    remote: bool
    emulated: bool
    rows: dict[str, LatencyStats] = field(default_factory=dict)
    ort_row: str | None = None  # the ONNX Runtime row's name, when ORT was timed
    ort_where: str | None = None  # "host" or "device"
    ort_note: str = ""  # why ONNX Runtime is missing from a remote measurement
    parity: ParityReport | None = None
    int8_agreement: str | None = None  # for an INT8 artifact: what `quantize` recorded

    def ratio(self, name: str) -> float | None:
        """A row's median over ONNX Runtime's, when ORT was timed."""
        if self.ort_row is None:
            return None
        return self.rows[name].median_ms / self.rows[self.ort_row].median_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact),
            "model": self.model,
            "profile": self.profile,
            "batch": self.batch,
            "threads": self.threads,
            "tuning": self.tuning,
            "emulated": self.emulated,
            "onnxruntime_on": self.ort_where,
            "onnxruntime_note": self.ort_note or None,
            "parity": self.parity.to_dict() if self.parity else None,
            "int8_agreement": self.int8_agreement,
            "results": {name: {**s.to_dict(), "ratio_to_ort": self.ratio(name)} for name, s in self.rows.items()},
        }


def bench(
    artifact: Path,
    endpoint: RpcEndpoint | None = None,
    *,
    threads: int | None = None,
    runs: int = 100,
    warmup: int = 10,
    min_seconds: float = 2.0,
    ort: bool = True,
    timeout_s: float | None = None,
    call_timeout_s: float | None = None,
) -> BenchResult:
    """Time the artifact and ONNX Runtime on the artifact's own model.onnx, alternating whole blocks of runs.

    Here (`endpoint` None): both on this machine with `threads` (default: the profile's, else every core).
    On a device (`endpoint`): both there with `threads` (default: the size of TVM's thread pool there, one per
    core), each timed by the device's clock, ONNX Runtime being the device's own (any tvmdeploy RPC server:
    `tvmdeploy board up`, `tvmdeploy rpc server`, serve.py of the runtime bundle); a device without it is measured
    alone and `ort_note` says why. The parity check runs where the timing does."""
    from tvmdeploy.compile.quantization.agreement import agreement_summary
    from tvmdeploy.runtime.module import DEFAULT_RPC_CALL_TIMEOUT_S, DEFAULT_RPC_TIMEOUT_S, open_module

    if runs < 1 or warmup < 0:
        raise TvmDeployError(f"{arg('runs')} must be >= 1 and {arg('warmup')} >= 0", param="runs" if runs < 1 else "warmup")
    if threads is not None and threads < 1:
        raise TvmDeployError(f"{arg('threads')} must be >= 1, got {threads}", param="threads")
    module = open_module(
        artifact,
        endpoint,
        threads=threads,
        timeout_s=DEFAULT_RPC_TIMEOUT_S if timeout_s is None else timeout_s,
        call_timeout_s=DEFAULT_RPC_CALL_TIMEOUT_S if call_timeout_s is None else call_timeout_s,
    )
    try:
        manifest = module.manifest
        result = BenchResult(
            artifact=Path(artifact),
            model=manifest.model_name,
            profile=manifest.profile,
            batch=manifest.batch,
            threads=0,
            tuning=manifest.schedule_text(),
            remote=endpoint is not None,
            emulated=module.emulated,
        )
        if (manifest.tuning or {}).get("integer_kernels"):
            result.int8_agreement = agreement_summary(manifest.extra)
        options = dict(runs=runs, warmup=warmup, min_seconds=min_seconds, ort=ort)
        if endpoint is None:
            _bench_here(module, result, threads or manifest.threads or os.cpu_count() or 1, **options)
        else:
            _bench_on_device(module, result, threads, **options)
        return result
    finally:
        module.close()


def module_sampler(module: Any, x: Any) -> Sampler:
    """A block of remote runs timed by the device's clock (RemoteModule.time): `warm` calls, then the timed ones."""

    def sample(warm: int, timed: int) -> list[float]:
        if warm:
            module.time(x, number=1, repeat=warm)
        return module.time(x, number=1, repeat=timed)

    return sample


def _parity(module: Any, x: Any, expected: Any, onnx_path: Path, label: str) -> ParityReport:
    """The artifact's logits against ONNX Runtime's on the same input, with the manifest's tolerance."""
    from tvmdeploy.compile.measure.verify import DEFAULT_ATOL, compare_logits, model_bounds

    bounds = model_bounds(onnx_path)
    atol = (module.manifest.parity or {}).get("atol", DEFAULT_ATOL)
    return compare_logits(module.run(x), expected, atol, label, rtol=bounds.rtol, step=bounds.step, steps=bounds.steps)


def _host_parity(module: Any, x: Any, onnx_path: Path) -> ParityReport | None:
    """The device's logits against ONNX Runtime here, when the device has none (correctness still checked)."""
    from tvmdeploy.compile.measure.reference import OrtModel

    try:
        session = OrtModel(onnx_path)
    except TvmDeployError:
        return None
    return _parity(module, x, session.run(x), onnx_path, f"onnxruntime {session.version} on the host")


def _bench_here(module: Any, result: BenchResult, threads: int, *, runs: int, warmup: int, min_seconds: float, ort: bool) -> None:
    from tvmdeploy.compile.measure.reference import OrtModel, reference_input
    from tvmdeploy.runtime.artifact import verify_onnx
    from tvmdeploy.runtime.timing import blocked

    result.threads = threads
    x = reference_input(module.manifest.input.shape)
    competitors = {f"TVM {result.profile}": lambda: module.run(x)}
    if ort:
        onnx_path = verify_onnx(result.artifact, module.manifest)
        session = OrtModel(onnx_path, threads=threads)
        name = f"ONNX Runtime {session.version} (host)"
        competitors[name] = lambda: session.run(x)
        result.ort_row, result.ort_where = name, "host"
        result.parity = _parity(module, x, session.run(x), onnx_path, f"onnxruntime {session.version}")
    # Whole blocks per runtime, alternated over rounds: each runtime's worker threads keep spinning
    # after a call, so call-by-call alternation on 2 cores makes each pay for the other's spinners.
    result.rows = blocked(competitors, warmup=warmup, min_runs=runs, min_seconds=min_seconds)


def _bench_on_device(
    module: Any, result: BenchResult, threads: int | None, *, runs: int, warmup: int, min_seconds: float, ort: bool
) -> None:
    from tvmdeploy.compile.measure.reference import reference_input
    from tvmdeploy.runtime.artifact import verify_onnx
    from tvmdeploy.runtime.rpc import DeviceOrt, device_threads, set_device_threads
    from tvmdeploy.runtime.timing import blocked_samples

    session = module.session
    if threads is not None:
        set_device_threads(session, threads)
    result.threads = device_threads(session)
    x = reference_input(module.manifest.input.shape)

    samplers = {f"TVM {result.profile} (device)": module_sampler(module, x)}
    if ort:
        onnx_path = verify_onnx(result.artifact, module.manifest)
        try:
            device_ort = DeviceOrt(session, onnx_path, result.threads)
            expected = device_ort.run(x)
        except TvmDeployError as exc:
            result.ort_note = str(exc)
            log.warning("%s", result.ort_note)
            result.parity = _host_parity(module, x, onnx_path)
        else:
            # The same input both sides, both computed on the device: a cross-compiled library's parity check.
            result.parity = _parity(module, x, expected, onnx_path, f"onnxruntime {device_ort.version} on the device")
            name = f"ONNX Runtime {device_ort.version} (device)"
            samplers[name] = lambda warm, timed: device_ort.time(x, warmup=warm, runs=timed)
            result.ort_row, result.ort_where = name, "device"
    # Remote blocks: the device's own clock per call; the round trips between blocks are not timed. min_seconds
    # does not apply: an emulated board takes seconds per run.
    result.rows = blocked_samples(samplers, warmup=warmup, min_runs=runs)
