"""Warm-start a tuning database: other logs' records and the default schedules, re-measured on this target."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from tvmdeploy.compile.tuning.database import META_FILE, RECORD_FILE, mean_seconds, open_database, read_meta
from tvmdeploy.compile.tuning.tasks import TaskInfo

log = logging.getLogger(__name__)


@dataclass
class SeedResult:
    measured: int = 0  # seed schedules built and timed on this target, now records of the database
    failed: int = 0  # seed schedules that did not replay, build or run here (not kept)
    tasks: int = 0  # tasks the seed database had records for


def seed_database(database, seed_folder: Path, infos: list[TaskInfo], builder, runner, device: str, top_k: int = 4) -> SeedResult:
    """Measure the `top_k` best schedules of each task in `seed_folder` and commit them to `database`.

    Workloads do not depend on the target, so a schedule tuned for one ISA (e.g. AVX2) replays on
    another (AVX-512) and gives the search a near-converged start. Seed timings are never copied:
    every committed record was built for and timed on this database's target.
    """
    from tvm.s_tir import Schedule
    from tvm.s_tir import meta_schedule as ms

    seeds = open_database(seed_folder, readonly=True)
    result = SeedResult()
    candidates = []
    for info in infos:
        if not seeds.has_workload(info.task.dispatched[0]):
            continue
        mod = _workload_here(database, info)
        result.tasks += 1
        for record in seeds.get_top_k(seeds.commit_workload(mod), top_k):
            # Replayed on this database's copy of the kernel, never the seed log's: the same workload in another
            # model may name its blocks otherwise, and a record must replay on the workload it is filed under.
            sch = Schedule(mod)
            try:
                record.trace.apply_to_schedule(sch, remove_postproc=False)
            except Exception:  # noqa: BLE001 - other block names, or a trace this TVM cannot replay
                result.failed += 1
                continue
            if database.has_trace(mod, sch.trace):
                continue  # measured on this target already (a resumed run)
            candidates.append((info, sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
    _measure_and_commit(database, candidates, builder, runner, device, result)
    if not candidates:
        return result
    log.warning(
        "seeded %d records for %d tasks from %s%s",
        result.measured,
        result.tasks,
        seed_folder,
        f" ({result.failed} seed schedules failed here)" if result.failed else "",
    )
    return result


def all_logs(logs_root: Path, exclude: Path | None = None) -> list[Path]:
    """Every database under `logs_root/<any profile>/` that has records and a meta file describing its tasks."""
    return [
        meta.parent
        for meta in sorted(logs_root.glob(f"*/*/{META_FILE}"))
        if (meta.parent / RECORD_FILE).is_file() and (exclude is None or meta.parent.resolve() != Path(exclude).resolve())
    ]


def nearest_logs(logs_root: Path, infos: list[TaskInfo], exclude: Path | None = None) -> list[Path]:
    """Databases under `logs_root/<any profile>/` that hold workloads of these tasks, most shared first.

    Workloads (the kernels' TIR) do not depend on the target, so another profile's log for the same
    model, or this profile's log for a model sharing layers, gives measured-good first candidates.
    """
    wanted = {i.shash for i in infos}
    found = []
    for folder in all_logs(logs_root, exclude):
        try:
            known = {t.get("shash") for t in read_meta(folder).get("tasks", [])}
        except (TypeError, AttributeError):  # a meta file of another shape: not a log to seed from
            continue
        shared = len(wanted & known)
        if shared:
            found.append((shared, folder))
    return [folder for _, folder in sorted(found, key=lambda item: (-item[0], str(item[1])))]


def seed_similar(
    database, logs: list[Path], infos: list[TaskInfo], builder, runner, device: str, per_task: int = 2, tries: int = 6
) -> SeedResult:
    """For each task without a record yet (a workload never tuned), replay the best schedules of the most
    similar workloads in `logs` onto it, re-measured here.

    Similar: the same kernel class and kind (pointwise-expand, depthwise...), the same fused epilogue (the
    task name without its numbers), then the nearest FLOP count. A MetaSchedule trace replays on another
    shape of the same structure once its tile sizes fit the new loop extents (`fit_tile`); the searched
    choices (loop order, compute locations, unrolling, vectorised and parallel loops) are kept. A trace that
    does not replay is skipped; up to `tries` sources are tried per task for `per_task` seeds.
    """
    from tvm.s_tir import Schedule
    from tvm.s_tir import meta_schedule as ms

    result = SeedResult()
    # Tasks tuned before, or seeded from a log of this very workload, need none.
    never_tuned = [info for info in infos if not database.measured(info.task.dispatched[0])]
    sources = _best_schedules(logs) if never_tuned else []
    candidates = []
    for info in never_tuned:
        mod = _workload_here(database, info)
        found = 0
        for source in sorted((s for s in sources if _comparable(s, info)), key=lambda s: _distance(s, info))[:tries]:
            sch = Schedule(mod)
            try:
                source.trace.apply_to_schedule(sch, remove_postproc=False, decision_provider=_fitted_tiles(sch))
            except Exception:  # another loop nest after all (a stride, a padding): try the next source
                continue
            if database.has_trace(mod, sch.trace):
                continue
            candidates.append((info, sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
            found += 1
            if found == per_task:
                break
        result.tasks += found > 0
    _measure_and_commit(database, candidates, builder, runner, device, result)
    if candidates:
        log.warning(
            "seeded %d records for %d never-tuned tasks from the schedules of similar kernels%s",
            result.measured,
            result.tasks,
            f" ({result.failed} failed to build or run)" if result.failed else "",
        )
    return result


@dataclass
class _Schedule:
    """The best record of one workload of a log, with what similarity is judged by."""

    op_class: str
    kind: str  # the kind's first word: pointwise-expand, depthwise...
    pattern: str  # the task name without numbers: the fused epilogue
    flops: float
    trace: object


def _pattern(name: str) -> str:
    return re.sub(r"\d+", "", name)


def _comparable(source: _Schedule, info: TaskInfo) -> bool:
    return (source.op_class, source.kind, source.pattern) == (info.op_class, info.kind.split()[0], _pattern(info.name))


def _distance(source: _Schedule, info: TaskInfo) -> float:
    return abs(math.log(max(source.flops, 1.0) / max(info.flops, 1.0)))


def _best_schedules(logs: list[Path]) -> list[_Schedule]:
    """The best record of every conv/dense workload of the logs that their meta file describes."""
    import tvm_ffi

    schedules = []
    for folder in logs:
        described = {t.get("shash"): t for t in read_meta(folder).get("tasks", []) if isinstance(t, dict)}
        best: dict[str, tuple[float, object]] = {}
        for record in open_database(folder, readonly=True, quiet=True).get_all_tuning_records():
            shash = f"{tvm_ffi.structural_hash(record.workload.mod) & 0xFFFFFFFFFFFFFFFF:016x}"
            task = described.get(shash)
            if task is None or task.get("class") == "other" or not record.run_secs:
                continue
            seconds = mean_seconds(record.run_secs)
            if shash not in best or seconds < best[shash][0]:
                best[shash] = (seconds, record.trace)
        schedules += [
            _Schedule(
                described[h]["class"],
                str(described[h]["kind"]).split()[0],
                _pattern(str(described[h]["name"])),
                float(described[h].get("flops") or 0.0),
                trace,
            )
            for h, (_, trace) in best.items()
        ]
    return schedules


def _fitted_tiles(sch):
    """A replay decision provider: each tile-size decision refitted to the loop it splits in `sch`."""

    def provide(inst, inputs, _attrs, decision):
        if inst.kind.name == "SamplePerfectTile" and decision is not None:
            return fit_tile(int(sch.get(inputs[0]).extent), [int(d) for d in decision])
        return decision

    return provide


def fit_tile(extent: int, factors: list[int]) -> list[int]:
    """Tile sizes for a loop of `extent` shaped like `factors` (tuned for another extent): from the innermost
    out, each factor shrinks to the largest divisor of what is left, and the outermost takes the rest."""
    fitted = [1] * len(factors)
    left = extent
    for index in range(len(factors) - 1, 0, -1):
        factor = max(1, min(factors[index], left))
        while left % factor:
            factor -= 1
        fitted[index] = factor
        left //= factor
    fitted[0] = left
    return fitted


def seed_defaults(database, infos: list[TaskInfo], builder, runner, device: str) -> SeedResult:
    """Measure the default schedule (compile/schedules) of every task, once per database.

    For a workload never tuned anywhere this is the first candidate, and where other seeds exist (a log
    tuned for another ISA) it often beats them: the rules size their tiles for this target's vectors.
    """
    from tvm.s_tir import meta_schedule as ms

    from tvmdeploy.compile.schedules.cpu import schedule_kernel

    result = SeedResult()
    candidates = []
    for info in infos:
        mod = _workload_here(database, info)
        sch = schedule_kernel(mod["main"], info.task.target)
        if sch is None or database.has_trace(mod, sch.trace):  # no rule for it, or measured before (resume)
            continue
        result.tasks += 1
        # The kernel as timed takes its weights already repacked (the build does that once).
        candidates.append((info, sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
    _measure_and_commit(database, candidates, builder, runner, device, result)
    if not candidates:
        return result
    log.warning(
        "seeded the default schedules of %d tasks%s", result.measured, f" ({result.failed} failed to build or run)" if result.failed else ""
    )
    return result


def _workload_here(database, info: TaskInfo):
    """The task's kernel as this database files it: a schedule committed under it must replay on its block
    names, which depend on the model the workload was first committed from (lv375_red in one, lv384_red in
    another of the same kernels)."""
    return database.commit_workload(info.task.dispatched[0]).mod


def _measure_and_commit(database, candidates: list, builder, runner, device: str, result: SeedResult) -> None:
    """Build and time (task info, schedule, args info) candidates here; commit each that ran as a record.

    Candidates that do not build or run on this target are counted in `result.failed`, never kept.
    """
    if not candidates:
        return
    from tvm.s_tir import meta_schedule as ms

    from tvmdeploy.compile.tuning.builder import build_and_run

    measured = build_and_run(builder, runner, [(sch.mod, args) for _, sch, args in candidates], candidates[0][0].task.target, device)
    for (info, sch, args_info), run_secs in zip(candidates, measured):
        if run_secs is None:
            result.failed += 1
            continue
        database.commit_tuning_record(
            ms.database.TuningRecord(
                trace=sch.trace,
                workload=database.commit_workload(info.task.dispatched[0]),
                run_secs=run_secs,
                target=info.task.target,
                args_info=args_info,
            )
        )
        result.measured += 1
