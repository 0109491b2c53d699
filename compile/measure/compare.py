"""Latency comparison across targets: resolve/build each, measure alike with host baselines, one row per target and batch."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tvmdeploy.compile.frontend import onnx_with_batch
from tvmdeploy.compile.measure.bench import module_sampler
from tvmdeploy.compile.tuning.log_choice import LogChoice, LogWord
from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.rpc.target_spec import RemoteSpec, TargetSpec, parse_target
from tvmdeploy.runtime.timing import LatencyStats, Sampler, blocked, blocked_samples

KINDS = ("tvm", "onnxruntime", "pytorch")
BASELINES = ("onnxruntime", "pytorch")


@dataclass
class CompareRow:
    """One competitor at one batch size: its latency, or why there is none."""

    label: str
    kind: str  # one of KINDS
    batch: int
    device: str = ""
    emulated: bool = False
    tuning: str = ""
    stats: LatencyStats | None = None
    ratio_to_ort: float | None = None
    parity: str = ""
    status: str = "ok"  # ok | failed | skipped
    error: str = ""
    artifact: str = ""
    threads: int = 0

    @property
    def images_per_second(self) -> float | None:
        if self.stats is None or self.stats.median_ms <= 0:
            return None
        return self.batch / (self.stats.median_ms / 1e3)

    def fail(self, error: str, status: str = "failed") -> "CompareRow":
        self.status, self.error, self.stats = status, error, None
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "batch": self.batch,
            "device": self.device,
            "emulated": self.emulated,
            "tuning": self.tuning,
            "status": self.status,
            "error": self.error or None,
            "artifact": self.artifact or None,
            "threads": self.threads,
            **(self.stats.to_dict() if self.stats else {"n": 0, "median_ms": None, "p10_ms": None, "p90_ms": None}),
            "images_per_second": self.images_per_second,
            "ratio_to_ort": self.ratio_to_ort,
            "parity": self.parity,
        }


@dataclass
class CompareConfig:
    targets: list[str]
    model: Path | None = None
    out_dir: Path = Path("compare-out")
    batch: int | None = None  # the larger batch; profiles are built at 1 and at this
    threads: int | None = None
    warmup: int = 10
    runs: int = 50
    min_seconds: float = 1.0
    max_seconds: float = 60.0  # per remote competitor: an emulated board takes seconds per run
    baselines: tuple[str, ...] = BASELINES
    rpc_tracker: str | None = None
    rpc_timeout_s: float = 60.0  # waiting for a device
    rpc_call_timeout_s: float = 600.0  # one call on it
    # PROFILE -> a database folder or a log word (LogChoice); such a profile is measured with its default schedules
    # and with the log.
    tuning_logs: dict[str, str | Path] = field(default_factory=dict)
    torch_weights: Path | None = None
    rebuild: bool = False
    atol: float | None = None


@dataclass
class Candidate:
    """A TVM target resolved to an artifact folder (or to the error that prevented it)."""

    spec: TargetSpec
    label: str
    artifact: Path | None
    remote: RemoteSpec | None
    batch: int
    error: str = ""
    manifest: Any = None


Opener = Callable[[Path, "RemoteSpec | None", int], Any]
Log = Callable[[str], None]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _artifact_reusable(folder: Path, onnx_sha: str, profile, tuning_log: Path | None) -> bool:
    """An artifact built here before from the same model, profile, TVM and database (`tuning_log` a folder or None)."""
    from tvmdeploy.compile.build import database_sha256
    from tvmdeploy.runtime import tvm_api
    from tvmdeploy.runtime.artifact import read_manifest

    try:
        m = read_manifest(folder)
        same_tuning = (m.tuning or {}).get("database_sha256") == (database_sha256(tuning_log) if tuning_log else None)
        return (
            m.model_sha256 == onnx_sha
            and m.profile == profile.name
            and m.tvm_version == tvm_api.tvm_version()
            and same_tuning
            and (folder / "model.so").is_file()
        )
    except TvmDeployError:
        return False


def resolve_targets(config: CompareConfig, log: Log) -> list[Candidate]:
    """Each target as artifact folders: given ones as they are, profiles built at batch 1 (and --batch) first."""
    from tvmdeploy.runtime.artifact import read_manifest

    candidates: list[Candidate] = []
    for text in config.targets:
        spec = parse_target(text)
        path = Path(spec.name)
        if path.is_dir():
            try:
                manifest = read_manifest(path)
            except TvmDeployError as exc:
                candidates.append(Candidate(spec, f"TVM {spec.name}", None, spec.remote, 1, _one_line(exc)))
                continue
            candidates.append(Candidate(spec, f"TVM {manifest.profile}", path, spec.remote, manifest.batch, manifest=manifest))
            continue
        candidates += _build_profile(spec, config, log)
    return candidates


def _build_profile(spec: TargetSpec, config: CompareConfig, log: Log) -> list[Candidate]:
    from tvmdeploy.targets import load_profile, profile_names

    batches = sorted({1, config.batch or 1})
    label = f"TVM {spec.name}"
    if spec.name not in profile_names() and not spec.name.endswith(".toml"):
        error = f"neither an artifact folder nor a profile (profiles: {', '.join(profile_names())})"
        return [Candidate(spec, label, None, spec.remote, b, error) for b in batches]
    if config.model is None:
        error = f"a profile target needs {arg('model')} M.onnx to build from"
        return [Candidate(spec, label, None, spec.remote, b, error) for b in batches]
    try:
        profile = load_profile(spec.name)
    except TvmDeployError as exc:
        return [Candidate(spec, label, None, spec.remote, b, _one_line(exc)) for b in batches]
    label = f"TVM {profile.name}"
    remote = spec.remote
    if remote is None and not profile.runs_on_this_machine and profile.rpc_key and config.rpc_tracker:
        remote = RemoteSpec(key=profile.rpc_key)  # the profile's own device key behind --rpc-tracker
    # Default schedules always (what a build gives without tuning), and the profile's log too when one is given.
    variants: list[tuple[str, LogChoice]] = [("", LogChoice(LogWord.DEFAULTS))]
    if profile.name in config.tuning_logs:
        variants.append(("-tuned", LogChoice.of(config.tuning_logs[profile.name])))
    out: list[Candidate] = []
    for suffix, choice in variants:
        out += [_build_one(spec, config, log, profile, remote, label + (" (tuned)" if suffix else ""), suffix, choice, b) for b in batches]
    return out


def _build_one(spec, config: CompareConfig, log: Log, profile, remote, label: str, suffix: str, choice: LogChoice, batch: int) -> Candidate:
    from tvmdeploy.runtime.artifact import read_manifest, sha256_file

    folder = Path(config.out_dir) / f"{profile.name}{suffix}-b{batch}"
    try:
        source = batch_onnx(Path(config.model), batch, Path(config.out_dir))
        # A log word (auto, shipped) is resolved by the build: such an artifact is always rebuilt.
        reusable = choice.word in (LogWord.DEFAULTS, None) and _artifact_reusable(folder, sha256_file(source), profile, choice.folder)
        if not config.rebuild and reusable:
            log(f"reusing {folder}")
        else:
            from tvmdeploy.compile.build import build_artifact
            from tvmdeploy.compile.measure.verify import DEFAULT_ATOL

            log(f"building {source} for {profile.name} at batch {batch} ({choice}) -> {folder}")
            build_artifact(
                source, profile, folder, tuning_log=choice, batch=batch, atol=config.atol if config.atol is not None else DEFAULT_ATOL
            )
        return Candidate(spec, label, folder, remote, batch, manifest=read_manifest(folder))
    except Exception as exc:  # noqa: BLE001 - any build failure (TVM, cross compiler) is this target's row
        return Candidate(spec, label, None, remote, batch, f"build failed: {_one_line(exc)}")


def batch_onnx(model: Path, batch: int, out_dir: Path) -> Path:
    """`model` itself when it runs at `batch`, else its re-batched copy OUT/<stem>-b<batch>.onnx (made once).

    Exported zoo models fix the batch at 1; ONNX Runtime, and the build's own parity check, need
    a file whose input really has the batch being measured.
    """
    fixed = _onnx_batch(model)
    if fixed is None or fixed == batch:
        return model
    dest = out_dir / f"{model.stem}-b{batch}.onnx"
    if not dest.is_file() or dest.stat().st_mtime < model.stat().st_mtime:
        onnx_with_batch(model, batch, dest)
    return dest


def _onnx_batch(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None


def _parity(actual: np.ndarray, expected: np.ndarray, atol: float, bounds) -> str:
    from tvmdeploy.compile.measure.verify import compare_logits

    report = compare_logits(actual, expected, atol, "onnxruntime", rtol=bounds.rtol, step=bounds.step, steps=bounds.steps)
    verdict = "pass" if report.passed else "FAIL"
    return f"{verdict} ({report.max_abs_diff:.1e}{'' if report.top5_identical else ', top-5 differs'})"


def host_description() -> str:
    return f"host {platform.machine()}"


def open_target(config: CompareConfig) -> Opener:
    """Opens an artifact here (with the run's threads) or on its RemoteSpec's device (the run's tracker by default)."""
    from tvmdeploy.runtime.module import open_module

    def opener(artifact: Path, remote: RemoteSpec | None, threads: int) -> Any:
        endpoint = remote.endpoint(config.rpc_tracker) if remote is not None else None
        return open_module(
            artifact,
            endpoint,
            threads=threads if remote is None else None,
            timeout_s=config.rpc_timeout_s,
            call_timeout_s=config.rpc_call_timeout_s,
        )

    return opener


def compare(config: CompareConfig, opener: Opener | None = None, log: Log = lambda _m: None) -> list[CompareRow]:
    """Every target and baseline at every batch size, measured the same way; failures become rows.

    A remote target gets a row of ONNX Runtime on that device too (the board's own, timed there in alternation with
    the TVM module); its TVM row's ratio is against that ORT, a local target's against ORT here. `opener` (default
    `open_target(config)`) opens an artifact where it runs."""
    opener = opener or open_target(config)
    from tvmdeploy.compile.measure.verify import DEFAULT_ATOL, ModelBounds, model_bounds

    if config.runs < 1 or config.warmup < 0 or (config.batch is not None and config.batch < 1):
        raise TvmDeployError(
            f"{arg('runs')} must be >= 1, {arg('warmup')} >= 0 and {arg('batch')} >= 1",
            param="runs" if config.runs < 1 else "warmup" if config.warmup < 0 else "batch",
        )
    unknown = set(config.baselines) - set(BASELINES)
    if unknown:
        raise TvmDeployError(f"unknown baseline(s) {', '.join(sorted(unknown))}; choose from {', '.join(BASELINES)}")
    candidates = resolve_targets(config, log)
    reference_onnx = _reference_onnx(config, candidates)
    reference_sha = None
    if reference_onnx is not None:
        from tvmdeploy.runtime.artifact import sha256_file

        reference_sha = sha256_file(reference_onnx)
    threads = (
        config.threads
        or next((c.manifest.threads for c in candidates if c.manifest is not None and c.remote is None and c.manifest.threads), 0)
        or os.cpu_count()
        or 1
    )
    atol = config.atol if config.atol is not None else DEFAULT_ATOL
    # The same weights at every batch size: read the model's deepest reduction and output step once.
    bounds = model_bounds(reference_onnx) if reference_onnx is not None else ModelBounds()
    batches = sorted({c.batch for c in candidates} | {1} | ({config.batch} if config.batch else set()))
    rows: list[CompareRow] = []
    for batch in batches:
        rows += _compare_batch(
            batch, [c for c in candidates if c.batch == batch], config, opener, log, reference_onnx, reference_sha, threads, atol, bounds
        )
    return rows


def _reference_onnx(config: CompareConfig, candidates: list[Candidate]) -> Path | None:
    if config.model is not None:
        if not Path(config.model).is_file():
            raise TvmDeployError(f"ONNX file not found: {config.model}")
        return Path(config.model)
    from tvmdeploy.runtime.artifact import verify_onnx

    for c in candidates:
        if c.artifact is not None:
            try:
                return verify_onnx(c.artifact, c.manifest)
            except TvmDeployError:
                continue
    return None


def _compare_batch(batch, candidates, config, opener, log, reference_onnx, reference_sha, threads, atol, bounds) -> list[CompareRow]:
    """One batch size: open the baselines and every target (parity against ORT), time them all, tabulate."""
    log(f"batch {batch}: preparing {len(candidates)} TVM target(s) and {len(config.baselines)} baseline(s)")
    table = _BatchTable(batch, _batch_input(batch, candidates, reference_onnx), threads, atol, bounds)
    table.onnx = batch_onnx(reference_onnx, batch, Path(config.out_dir)) if reference_onnx is not None else None
    accepted_sha = _accepted_sha(batch, reference_onnx, reference_sha, Path(config.out_dir))
    ort_row = _open_baselines(table, config, reference_onnx)
    _open_targets(table, candidates, opener, log, reference_sha, accepted_sha, config)
    _time_rows(table, config, log)
    _tabulate(table, ort_row)
    return table.rows


@dataclass
class _BatchTable:
    """One batch: its input, its rows, and how to time those that opened: host calls (timed together) and
    remote modules."""

    batch: int
    x: np.ndarray | None  # the input every competitor runs (None: each target's own reference input)
    threads: int
    atol: float
    bounds: object  # verify.ModelBounds of the reference model
    expected: np.ndarray | None = None  # ONNX Runtime's output: the parity reference
    onnx: Path | None = None  # the reference model at this batch: what ONNX Runtime runs, here or on a device
    rows: list[CompareRow] = field(default_factory=list)
    local: dict[int, Callable[[], object]] = field(default_factory=dict)  # row index -> call
    peer: dict[int, int] = field(default_factory=dict)  # remote TVM row -> the row of ORT on its device

    def add(self, row: CompareRow) -> int:
        self.rows.append(row)
        return len(self.rows) - 1


def _batch_input(batch: int, candidates: list[Candidate], reference_onnx: Path | None) -> np.ndarray | None:
    """The input every competitor of this batch runs: the reference model's shape, else the first target's."""
    from tvmdeploy.compile.measure.reference import reference_input

    shape = None
    if reference_onnx is not None:
        from tvmdeploy.compile.frontend import inspect_onnx

        shape = inspect_onnx(reference_onnx, batch=batch).input_shape
    elif candidates and candidates[0].manifest is not None:
        shape = list(candidates[0].manifest.input.shape)
    return reference_input(shape) if shape else None


def _accepted_sha(batch: int, reference_onnx: Path | None, reference_sha: str | None, out_dir: Path) -> set:
    """The model hashes that count as the baseline's model at this batch."""
    accepted_sha = {reference_sha}
    if reference_onnx is not None:
        from tvmdeploy.runtime.artifact import sha256_file

        # An artifact built from this batch's re-batched copy is the same model.
        accepted_sha.add(sha256_file(batch_onnx(reference_onnx, batch, out_dir)))
    return accepted_sha


def _open_baselines(table: _BatchTable, config: CompareConfig, reference_onnx: Path | None) -> CompareRow | None:
    """The ONNX Runtime and PyTorch rows that were asked for (ORT's output becomes the parity reference); the ORT row."""
    from tvmdeploy.compile.measure.reference import TorchModel, torch_module

    batch, x, threads, atol = table.batch, table.x, table.threads, table.atol
    ort_row = None
    if "onnxruntime" in config.baselines:
        ort_row, ort_run = _ort_baseline(batch, reference_onnx, config, threads)
        index = table.add(ort_row)
        if ort_run is not None and x is not None:
            try:
                table.expected = ort_run(x)
                ort_row.parity = "reference"
                table.local[index] = lambda: ort_run(x)
            except Exception as exc:  # noqa: BLE001 - ORT errors have no common base type
                ort_row.fail(f"ONNX Runtime cannot run batch {batch}: {_one_line(exc)}")
    if "pytorch" in config.baselines:
        row = CompareRow("PyTorch eager", "pytorch", batch, host_description(), tuning="-", threads=threads)
        index = table.add(row)
        if reference_onnx is None:
            row.fail("no ONNX model to rebuild PyTorch from", "skipped")
        else:
            try:
                module, row.label = torch_module(reference_onnx, config.torch_weights)
                runner = TorchModel(module, threads)
                out = runner.run(x)
                row.parity = _parity(out, table.expected, atol, table.bounds) if table.expected is not None else "not checked (no ORT)"
                table.local[index] = lambda r=runner: r.run(x)
            except TvmDeployError as exc:
                row.fail(_one_line(exc), "skipped")
            except Exception as exc:  # noqa: BLE001 - a broken torch install must not sink the comparison
                row.fail(f"PyTorch failed: {_one_line(exc)}")
    return ort_row


def _open_targets(
    table: _BatchTable,
    candidates: list[Candidate],
    opener: Opener,
    log: Log,
    reference_sha: str | None,
    accepted_sha: set,
    config: CompareConfig,
) -> None:
    """A row per TVM target: opened here or on its device, run once (parity), or the reason it failed."""
    from tvmdeploy.compile.measure.reference import reference_input

    batch, x, expected, threads, atol = table.batch, table.x, table.expected, table.threads, table.atol

    for c in candidates:
        row = CompareRow(c.label, "tvm", batch, artifact=str(c.artifact or ""), threads=threads)
        index = table.add(row)
        if c.error:
            row.fail(c.error)
            continue
        m = c.manifest
        row.tuning = m.schedule_text()
        if reference_sha is not None and m.model_sha256 not in accepted_sha:
            row.fail(f"built from another model ({m.model_name}, sha {m.model_sha256[:12]}…) than the baseline")
            continue
        try:
            log(f"opening {c.artifact}" + (f" on {c.remote}" if c.remote else ""))
            module = opener(c.artifact, c.remote, threads)
            row.emulated = c.remote is not None and module.emulated
            row.device = module.description if c.remote is not None else f"{host_description()} (local)"
            if c.remote is not None and getattr(m, "threads", 0):
                row.threads = m.threads
            xm = x if x is not None else reference_input(m.input.shape)
            out = module.run(xm)
            row.parity = _parity(out, expected, atol, table.bounds) if expected is not None else _manifest_parity(m)
            if c.remote is None:
                table.local[index] = lambda mod=module, xm=xm: mod.run(xm)
            else:
                # Measured now and hung up: the next target may want the same device (a board serves one session).
                samplers = {index: module_sampler(module, xm)}
                try:
                    _open_device_ort(table, index, module, xm, out, samplers)
                    _time_on_device(table, samplers, config, log)
                finally:
                    samplers.clear()  # ONNX Runtime's remote functions hold the session too
                    module.close()
        except Exception as exc:  # noqa: BLE001 - unreachable board, load error: this row fails, the rest goes on
            row.fail(_one_line(exc))


def _open_device_ort(table: _BatchTable, tvm_index: int, module: Any, x: np.ndarray, tvm_out: np.ndarray, samplers: dict) -> None:
    """The row of ONNX Runtime on a remote target's device, run once there: the parity reference of the TVM row on
    that device, and (in `samplers`) its competitor in the device's alternating blocks; or why the device has none."""
    from tvmdeploy.runtime.rpc import DeviceOrt, device_threads

    tvm_row = table.rows[tvm_index]
    target = tvm_row.label.removeprefix("TVM ").removesuffix(" (tuned)")
    row = CompareRow(f"ONNX Runtime on {target}", "onnxruntime", table.batch, tvm_row.device, tvm_row.emulated, tuning="-")
    index = table.add(row)
    table.peer[tvm_index] = index
    session = getattr(module, "session", None)
    if table.onnx is None or session is None:
        row.fail("no ONNX model to run on the device" if table.onnx is None else "the device offers no ONNX Runtime", "skipped")
        return
    try:
        device_ort = DeviceOrt(session, table.onnx, device_threads(session))
        out = device_ort.run(x)
    except TvmDeployError as exc:
        row.fail(str(exc), "skipped")
        return
    row.label, row.threads = f"ONNX Runtime {device_ort.version} on {target}", device_ort.threads
    row.parity = _parity(out, table.expected, table.atol, table.bounds) if table.expected is not None else "reference"
    tvm_row.parity = _parity(tvm_out, out, table.atol, table.bounds)  # checked on the device, against its own ORT
    samplers[index] = lambda warm, runs: device_ort.time(x, warmup=warm, runs=runs)


def _time_rows(table: _BatchTable, config: CompareConfig, log: Log) -> None:
    """Host competitors in alternating blocks (fair under drift); remote ones were timed when opened."""
    batch, rows = table.batch, table.rows
    if table.local:
        log(f"batch {batch}: timing {len(table.local)} host competitor(s) in alternating blocks")
        stats = blocked(
            {str(i): fn for i, fn in table.local.items()}, warmup=config.warmup, min_runs=config.runs, min_seconds=config.min_seconds
        )
        for i in table.local:
            rows[i].stats = stats[str(i)]


def _time_on_device(table: _BatchTable, samplers: dict[int, Sampler], config: CompareConfig, log: Log) -> None:
    """A remote target's TVM module and its device's ORT, timed there in alternating blocks."""
    rows = table.rows
    first = next(iter(samplers))
    log(f"batch {table.batch}: timing {' and '.join(rows[i].label for i in samplers)} on {rows[first].device}")
    try:
        for i, stats in _time_device(samplers, config).items():
            rows[i].stats = stats
    except Exception as exc:  # noqa: BLE001
        for i in samplers:
            rows[i].fail(f"timing failed: {_one_line(exc)}")


def _time_device(samplers: dict[int, Sampler], config: CompareConfig) -> dict[int, LatencyStats]:
    """Competitors on one device, each call timed by its clock, in alternating blocks sized to the time budget
    (`max_seconds` per competitor: an emulated board takes seconds per run)."""
    import math

    per_run = max(max(s(0, 1)[0] for s in samplers.values()), 1e-6)  # a first call each: warm-up, and a size for the budget
    warmup = min(config.warmup, max(0, int(config.max_seconds * 0.1 / per_run)))
    wanted = max(config.runs, math.ceil(config.min_seconds / per_run))
    runs = max(3, min(wanted, int(config.max_seconds / per_run)))
    return blocked_samples(samplers, warmup=warmup, min_runs=runs)


def _tabulate(table: _BatchTable, ort_row: CompareRow | None) -> None:
    """Each timed row's latency relative to ONNX Runtime's on the same device: here, or the remote target's own."""
    host = ort_row.stats if ort_row is not None and ort_row.stats is not None else None
    on_device = set(table.peer) | set(table.peer.values())
    for i, row in enumerate(table.rows):
        if row.stats is None:
            continue
        if i in on_device:
            peer = table.rows[table.peer.get(i, i)]
            row.ratio_to_ort = row.stats.median_ms / peer.stats.median_ms if peer.stats is not None else None
        elif host is not None:
            row.ratio_to_ort = row.stats.median_ms / host.median_ms


def _ort_baseline(batch: int, onnx_path: Path | None, config: CompareConfig, threads: int):
    from tvmdeploy.compile.measure.reference import OrtModel

    row = CompareRow("ONNX Runtime", "onnxruntime", batch, host_description(), tuning="-", threads=threads)
    if onnx_path is None:
        return row.fail(f"no ONNX model (give {arg('model')} or an artifact)", "skipped"), None
    try:
        ort = OrtModel(batch_onnx(onnx_path, batch, Path(config.out_dir)), threads=threads)
    except Exception as exc:  # noqa: BLE001
        return row.fail(_one_line(exc)), None
    row.label = f"ONNX Runtime {ort.version}"
    return row, ort.run


def _manifest_parity(manifest) -> str:
    parity = manifest.parity or {}
    status = parity.get("status", "unknown")
    return f"{status} (manifest)"
