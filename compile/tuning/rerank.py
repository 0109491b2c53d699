"""Pick each kernel's schedule by its time inside the whole network, among the tuner's best few."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.targets import TargetProfile

LAYOUT_SUFFIX = "_prepacked"  # SplitLayoutRewritePreproc renames a kernel whose weights it repacked


@dataclass
class RerankChoice:
    task: str
    ranks: int  # candidates tried (the database may hold fewer than top_k valid records)
    chosen: int  # rank (0 = the tuner's best) with the lowest in-network time
    in_network_us: list[float]  # per rank: kernel time inside the network, summed over its call sites
    tuner_us: list[float]  # per rank: the tuner's own measurement, per call
    default_rank: int | None = None  # the rank holding the default schedule's record, if the history has it

    @property
    def chose_default(self) -> bool:
        return self.chosen == self.default_rank


@dataclass
class RerankResult:
    choices: list[RerankChoice] = field(default_factory=list)
    records: int = 0  # records written to the output database

    @property
    def changed(self) -> list[RerankChoice]:
        return [c for c in self.choices if c.chosen != 0]

    def summary(self) -> str:
        """One line: how many tasks were reranked and how many changed schedule."""
        defaults = sum(c.chose_default for c in self.changed)
        return (
            f"reranked {len(self.choices)} tasks in the network: {len(self.changed)} now use a schedule other than "
            f"the tuner's best ({defaults} the default schedule)"
        )

    def table(self) -> str:
        """Markdown, biggest in-network gain first; tasks the hook did not see (folded into VM builtins) last."""
        lines = [
            "| task | tried | chosen rank | in-network us: tuner's best -> chosen | tuner us/call: best -> chosen |",
            "|---|--:|--:|--:|--:|",
        ]
        seen = [c for c in self.choices if np.isfinite(c.in_network_us[0])]
        for c in sorted(seen, key=lambda c: c.in_network_us[0] - c.in_network_us[c.chosen], reverse=True):
            chosen = f"{c.chosen} (default)" if c.chose_default else str(c.chosen)
            lines.append(
                f"| {c.task} | {c.ranks} | {chosen} | {c.in_network_us[0]:.1f} -> {c.in_network_us[c.chosen]:.1f} "
                f"| {c.tuner_us[0]:.1f} -> {c.tuner_us[c.chosen]:.1f} |"
            )
        for c in self.choices:
            if c not in seen:
                lines.append(f"| {c.task} | {c.ranks} | 0 | not timed in the network | {c.tuner_us[0]:.1f} |")
        before = sum(c.in_network_us[0] for c in seen)
        after = sum(c.in_network_us[c.chosen] for c in seen)
        lines.append(f"| **{len(seen)} timed tasks** | | {len(self.changed)} changed | {before:.0f} -> {after:.0f} | |")
        return "\n".join(lines)


class _VmModule:
    """The two things `kernel_breakdown` needs of a module: its VM and a run on numpy input."""

    def __init__(self, executable) -> None:
        import tvm
        from tvm import relax

        self.vm = relax.VirtualMachine(executable, tvm.cpu())
        self._tensor = tvm.runtime.tensor

    def run(self, x: np.ndarray):
        return self.vm["main"](self._tensor(x))


def rerank_in_network(
    onnx_path: Path, profile: TargetProfile, history: Path, output: Path, *, top_k: int = 4, repeats: int = 30, progress=None
) -> RerankResult:
    """Write to `output` one record per workload: of the `top_k` best in `history`, the fastest in the network.

    The tuner times a kernel alone, hundreds of times over the same warm buffers. In the network its
    input was just written by the previous kernel (often by the other core) and its weights were
    evicted by the layers between: some schedules that win alone lose there. Build i applies every
    task's i-th best record; each kernel's time is read per call site from the VM's instrument hook
    (`kernel_breakdown`), and every task keeps its fastest rank. On a CPU the default schedule's record
    (the tuner seeds one per task) is always a candidate too, however it ranked alone: a shipped log then
    keeps the default schedule wherever that runs faster in the network than any tuned record.
    """
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.measure.kernel_breakdown import kernel_breakdown
    from tvmdeploy.compile.measure.reference import reference_input
    from tvmdeploy.compile.pipeline import compile_relax, prepare, tuning_tasks
    from tvmdeploy.compile.tuning.database import mean_seconds, open_database, require_no_database
    from tvmdeploy.compile.tuning.tasks import describe_tasks
    from tvmdeploy.runtime.tvm_api import configure_threads

    if top_k < 1:
        raise TvmDeployError(f"rerank needs top_k >= 1, got {top_k}")
    if not profile.runs_on_this_machine:
        raise TvmDeployError(f"rerank times the model on this machine, which cannot run profile {profile.name}")
    output = Path(output)
    require_no_database(output)  # now, not after K builds
    database = open_database(Path(history), readonly=True)
    mod, info = import_onnx(Path(onnx_path))
    candidates: dict[str, list] = {}  # task name -> records, best first (then the default schedule's)
    default_ranks: dict[str, int] = {}
    workloads = {}
    for task in describe_tasks(tuning_tasks(prepare(mod, profile), profile)):
        workload_mod = task.task.dispatched[0]
        if database.has_workload(workload_mod):
            workload = database.commit_workload(workload_mod)
            records = [r for r in database.get_top_k(workload, top_k) if r.run_secs]
            default = _default_schedule_record(database, workload, task.task.target) if profile.device == "cpu" else None
            if default is not None:
                traces = [str(r.trace) for r in records]
                if str(default.trace) not in traces:
                    records.append(default)
                    traces.append(str(default.trace))
                default_ranks[task.name] = traces.index(str(default.trace))
            if records:
                candidates[task.name] = records
                workloads[task.name] = workload_mod
    if not candidates:
        raise TvmDeployError(f"{history} has no record for any kernel of {Path(onnx_path).name} on {profile.name}")

    configure_threads(profile.threads or None)  # as deployed; before the first kernel starts TVM's pool
    x = reference_input(info.input_shape)
    ranks = max(len(r) for r in candidates.values())
    in_network: dict[str, list[float]] = {name: [] for name in candidates}
    scratch = Path(tempfile.mkdtemp(prefix="tvmdeploy-rerank-"))
    try:
        for rank in range(ranks):
            folder = scratch / f"rank{rank}"
            _write_database(folder, {name: records[min(rank, len(records) - 1)] for name, records in candidates.items()}, workloads)
            compiled = compile_relax(mod, profile, database_dir=folder)
            breakdown = kernel_breakdown(_VmModule(compiled.executable), x, repeats=repeats)
            times = {k.name.removesuffix(LAYOUT_SUFFIX): k.median_us for k in breakdown.kernels}
            for name in candidates:
                # A task the network calls under another name (or not at all) cannot be ranked: keep rank 0.
                in_network[name].append(times.get(name, float("inf")) if rank < len(candidates[name]) else float("inf"))
            if progress is not None:
                progress(rank + 1, ranks)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    result = RerankResult()
    chosen_records = {}
    for name, records in candidates.items():
        times = in_network[name]
        best = int(np.argmin(times)) if np.isfinite(min(times)) else 0
        chosen_records[name] = records[best]
        result.choices.append(
            RerankChoice(
                name, len(records), best, times[: len(records)], [mean_seconds(r.run_secs) * 1e6 for r in records], default_ranks.get(name)
            )
        )
    result.records = _write_database(output, chosen_records, workloads)
    return result


def _default_schedule_record(database, workload, target):
    """The history's record of this workload's default schedule (compile/schedules), or None if it has none."""
    from tvmdeploy.compile.schedules.cpu import schedule_kernel

    sch = schedule_kernel(workload.mod["main"], target)
    if sch is None:
        return None
    wanted = str(sch.trace)  # printed with its decisions: what the tuner's seeding committed
    return next((r for r in database.get_top_k(workload, len(database)) if r.run_secs and str(r.trace) == wanted), None)


def _write_database(folder: Path, records: dict, workloads: dict) -> int:
    """A fresh MetaSchedule database holding exactly these records (one per task)."""
    from tvm.s_tir import meta_schedule as ms

    folder.mkdir(parents=True, exist_ok=True)
    database = ms.database.JSONDatabase(work_dir=str(folder), allow_missing=True)
    for name, record in records.items():
        database.commit_tuning_record(
            ms.database.TuningRecord(
                trace=record.trace,
                workload=database.commit_workload(workloads[name]),
                run_secs=record.run_secs,
                target=record.target,
                args_info=record.args_info,
            )
        )
    return len(records)
