"""Warm-start a tuning database from another profile's records, re-measured on this profile's target."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tvmdeploy.compile.tasks import TaskInfo


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
    from tvm.s_tir import meta_schedule as ms

    from tvmdeploy.compile.ms_builder import build_and_run
    from tvmdeploy.compile.tuning_db import open_database

    seeds = open_database(seed_folder, readonly=True)
    result = SeedResult()
    candidates, owners = [], []
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
            candidates.append(candidate)
            owners.append(info)
    if not candidates:
        return result
    measured = build_and_run(builder, runner, [(c.sch.mod, c.args_info) for c in candidates],
                             owners[0].task.target, device)
    for candidate, info, run_secs in zip(candidates, owners, measured):
        if run_secs is None:  # did not build or run here: not kept
            result.failed += 1
            continue
        database.commit_tuning_record(ms.database.TuningRecord(
            trace=candidate.sch.trace,
            workload=database.commit_workload(info.task.dispatched[0]),
            run_secs=run_secs,
            target=info.task.target,
            args_info=candidate.args_info,
        ))
        result.measured += 1
    print(f"seeded {result.measured} records for {result.tasks} tasks from {seed_folder}"
          + (f" ({result.failed} seed schedules failed here)" if result.failed else ""), file=sys.stderr)
    return result
