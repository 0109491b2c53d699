"""Warm-start a tuning database: other logs' records and the default schedules, re-measured on this target."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tvmdeploy.compile.tuning.database import META_FILE, RECORD_FILE, open_database, read_meta
from tvmdeploy.compile.tuning.tasks import TaskInfo

log = logging.getLogger(__name__)


@dataclass
class SeedResult:
    measured: int = 0  # seed schedules built and timed on this target, now records of the database
    failed: int = 0  # seed schedules that did not replay, build or run here (not kept)
    tasks: int = 0  # tasks the seed database had records for


def seed_database(database, seed_folder: Path, infos: list[TaskInfo], builder, runner, device: str,
                  top_k: int = 4) -> SeedResult:
    """Measure the `top_k` best schedules of each task in `seed_folder` and commit them to `database`.

    Workloads do not depend on the target, so a schedule tuned for one ISA (e.g. AVX2) replays on
    another (AVX-512) and gives the search a near-converged start. Seed timings are never copied:
    every committed record was built for and timed on this database's target.
    """
    seeds = open_database(seed_folder, readonly=True)
    result = SeedResult()
    candidates = []
    for info in infos:
        mod = info.task.dispatched[0]
        if not seeds.has_workload(mod):
            continue
        result.tasks += 1
        for record in seeds.get_top_k(seeds.commit_workload(mod), top_k):
            try:
                candidate = record.as_measure_candidate()
            except Exception:  # a trace that does not replay on this TVM: nothing to measure
                result.failed += 1
                continue
            if database.has_trace(mod, candidate.sch.trace):
                continue  # measured on this target already (a resumed run)
            candidates.append((info, candidate.sch, candidate.args_info))
    _measure_and_commit(database, candidates, builder, runner, device, result)
    if not candidates:
        return result
    log.warning("seeded %d records for %d tasks from %s%s", result.measured, result.tasks, seed_folder,
                f" ({result.failed} seed schedules failed here)" if result.failed else "")
    return result


def nearest_logs(logs_root: Path, infos: list[TaskInfo], exclude: Path | None = None) -> list[Path]:
    """Databases under `logs_root/<any profile>/` that hold workloads of these tasks, most shared first.

    Workloads (the kernels' TIR) do not depend on the target, so another profile's log for the same
    model, or this profile's log for a model sharing layers, gives measured-good first candidates.
    """
    wanted = {i.shash for i in infos}
    found = []
    for meta in sorted(logs_root.glob(f"*/*/{META_FILE}")):
        folder = meta.parent
        if exclude is not None and folder.resolve() == Path(exclude).resolve():
            continue
        if not (folder / RECORD_FILE).is_file():
            continue
        try:
            known = {t.get("shash") for t in read_meta(folder).get("tasks", [])}
        except (TypeError, AttributeError):  # a meta file of another shape: not a log to seed from
            continue
        shared = len(wanted & known)
        if shared:
            found.append((shared, folder))
    return [folder for _, folder in sorted(found, key=lambda item: (-item[0], str(item[1])))]


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
        mod = info.task.dispatched[0]
        func = mod["main"]
        sch = schedule_kernel(func, info.task.target)
        if sch is None or database.has_trace(mod, sch.trace):  # no rule for it, or measured before (resume)
            continue
        result.tasks += 1
        # The kernel as timed takes its weights already repacked (the build does that once).
        candidates.append((info, sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
    _measure_and_commit(database, candidates, builder, runner, device, result)
    if not candidates:
        return result
    log.warning("seeded the default schedules of %d tasks%s", result.measured,
                f" ({result.failed} failed to build or run)" if result.failed else "")
    return result


def _measure_and_commit(database, candidates: list, builder, runner, device: str, result: SeedResult) -> None:
    """Build and time (task info, schedule, args info) candidates here; commit each that ran as a record.

    Candidates that do not build or run on this target are counted in `result.failed`, never kept.
    """
    if not candidates:
        return
    from tvm.s_tir import meta_schedule as ms

    from tvmdeploy.compile.tuning.builder import build_and_run

    measured = build_and_run(builder, runner, [(sch.mod, args) for _, sch, args in candidates],
                             candidates[0][0].task.target, device)
    for (info, sch, args_info), run_secs in zip(candidates, measured):
        if run_secs is None:
            result.failed += 1
            continue
        database.commit_tuning_record(ms.database.TuningRecord(
            trace=sch.trace,
            workload=database.commit_workload(info.task.dispatched[0]),
            run_secs=run_secs,
            target=info.task.target,
            args_info=args_info,
        ))
        result.measured += 1
