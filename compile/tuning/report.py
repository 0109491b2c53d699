"""The tuning run's tables: the task table before the search and the before -> after report after it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tvmdeploy.compile.tuning.tasks import TaskInfo
from tvmdeploy.runtime.errors import arg

if TYPE_CHECKING:  # annotations only: driver.py imports this module, so a runtime import would be a cycle
    from tvmdeploy.compile.tuning.driver import TuneResult


def _share(values: dict[int, float]) -> dict[int, float]:
    total = sum(values.values())
    return {k: (v / total if total else 0.0) for k, v in values.items()}


def format_task_table(infos: list[TaskInfo], seconds: dict[int, float | None], selected: set[int]) -> str:
    """Every task with its class, calls, share of FLOPs and share of measured time (before tuning)."""
    flops = _share({i.index: i.total_flops for i in infos})
    timed = _share({i.index: (seconds.get(i.index) or 0.0) * i.weight for i in infos})
    lines = [f"{'#':>3} {'task':<38} {'class':<10} {'kind':<28} {'calls':>5} {'FLOPs%':>7} {'time%':>6} {'ms/call':>8} tune"]
    for info in sorted(infos, key=lambda i: -timed[i.index]):
        ms_call = seconds.get(info.index)
        lines.append(
            f"{info.index:>3} {info.name[:38]:<38} {info.op_class:<10} {info.kind[:28]:<28} {info.weight:>5} "
            f"{100 * flops[info.index]:>6.1f}% {100 * timed[info.index]:>5.1f}% "
            f"{'-' if ms_call is None else f'{ms_call * 1e3:.4g}':>8} "
            f"{'yes' if info.index in selected else 'merged' if info.merged else 'no'}"
        )
    return "\n".join(lines)


def format_report(result: TuneResult) -> str:
    """Final table: per task before -> after (per call and x calls), trials, failures; then totals and the database."""
    lines = [
        f"\n{'#':>3} {'task':<38} {'class':<10} {'calls':>5} {'before ms':>10} {'after ms':>9} {'speedup':>7} "
        f"{'trials':>6} {'b-fail':>6} {'r-fail':>6}"
    ]
    total_before = total_after = 0.0
    for o in sorted(result.outcomes, key=lambda o: -((o.after_ms or o.before_ms or 0) * o.info.weight)):
        before = "-" if o.before_ms is None else f"{o.before_ms:.4g}"
        after = "-" if o.after_ms is None else f"{o.after_ms:.4g}"
        speed = f"{o.before_ms / o.after_ms:.1f}x" if o.before_ms and o.after_ms else "-"
        total_before += (o.before_ms or 0.0) * o.info.weight
        total_after += (o.after_ms if o.after_ms is not None else (o.before_ms or 0.0)) * o.info.weight
        lines.append(
            f"{o.info.index:>3} {o.info.name[:38]:<38} {o.info.op_class:<10} {o.info.weight:>5} {before:>10} "
            f"{after:>9} {speed:>7} {o.trials_after:>6} {o.build_failures:>6} {o.run_failures:>6}"
        )
    builds = sum(o.build_failures for o in result.outcomes)
    runs = sum(o.run_failures for o in result.outcomes)
    lines.append(
        f"kernel time x calls: {total_before:.2f} ms -> {total_after:.2f} ms (sum of kernels, not end to end); "
        f"{result.trials_run} trials in {result.wall_s / 60:.1f} min; build failures {builds}, run failures {runs}; "
        f"{result.skipped_duplicates} already-measured candidates skipped"
    )
    stopped = (
        f" (interrupted; {arg('resume')} continues)"
        if result.interrupted
        else (f" (time budget reached; {arg('resume')} continues)" if result.out_of_time else "")
    )
    lines.append(f"database: {result.folder}{stopped}")
    return "\n".join(lines)
