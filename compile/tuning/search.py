"""MetaSchedule search strategy and measure callback for resumable tuning with progress reporting."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from tvmdeploy.compile.tuning.database import mean_seconds

log = logging.getLogger(__name__)

# Evolutionary search tuned down from the defaults (population 512): on 2 cores the search itself,
# not the measurement, was the larger cost per trial, and 256 candidates still fill the 16-32 picks.
POPULATION = 256


# Set by Ctrl-C/SIGTERM. Raising KeyboardInterrupt inside MetaSchedule's C++ loop (which calls our
# Python callbacks) ends in std::terminate; instead the search stops proposing candidates, the
# scheduler finishes the batch in flight and returns normally with every record committed.
STOP = threading.Event()
_HANDLING = threading.Event()  # a graceful_stop() is active (its signal handlers are installed)


@contextmanager
def graceful_stop() -> Iterator[None]:
    """While tuning: the first Ctrl-C/SIGTERM asks for a clean stop, a second one interrupts at once.

    Re-entrant: a nested use (the search inside a run that also seeds) keeps the outer handler and
    a stop already asked for.
    """
    if threading.current_thread() is not threading.main_thread() or _HANDLING.is_set():
        yield
        return

    def handler(signum, frame):
        if STOP.is_set():
            raise KeyboardInterrupt
        STOP.set()
        log.warning("\n%s: finishing the batch in flight, then stopping (again to stop at once)", signal.Signals(signum).name)

    STOP.clear()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _HANDLING.set()
    try:
        yield
    finally:
        _HANDLING.clear()
        for sig, old in previous.items():
            signal.signal(sig, old)


def from_search_space(trace) -> bool:
    """Whether a record's trace came from MetaSchedule's design space (it has sampling decisions)."""
    return any(inst.kind.name.startswith("Sample") for inst in trace.insts)


def searchable_view(database) -> Any:
    """The database as the evolutionary search sees it: without default-schedule records.

    Those (compile/schedules, seeded as first candidates) have no sampling decisions to mutate, and
    the search's postprocessors replayed on them fail (RewriteLayout repacks an already repacked
    weight). They stay in the database itself, for the build and the report.
    """
    from tvm.ir.utils import derived_object

    from tvmdeploy.compile.tuning.database import delegating_database_base

    @derived_object
    class SearchView(delegating_database_base()):
        def get_top_k(self, workload, top_k: int):
            # Default-schedule records are one per task and seed source at most: a few more suffice.
            records = self.inner.get_top_k(workload, top_k + 8)
            return [r for r in records if from_search_space(r.trace)][:top_k]

        def get_all_tuning_records(self):
            return [r for r in self.inner.get_all_tuning_records() if from_search_space(r.trace)]

    return SearchView(database)


def make_dedup_search(database, population: int = POPULATION) -> Any:
    """Evolutionary search that never sends a candidate already measured (e.g. before a kill) again.

    MetaSchedule only remembers what it measured in this process; after `--resume` it would re-propose
    the best database records. Their trace (with every sampling decision) is the candidate's identity.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class DedupSearch(ms.search_strategy.PySearchStrategy):
        def __init__(self, inner=None) -> None:
            super().__init__()
            self.inner = inner or ms.search_strategy.EvolutionarySearch(population_size=population)
            self.mod = None
            self.skipped = 0

        def _initialize_with_tune_context(self, context) -> None:
            self.mod = context.mod
            self.inner._initialize_with_tune_context(context)

        def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
            view = None if database is None else searchable_view(database)
            self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, view, cost_model)

        def post_tuning(self) -> None:
            self.inner.post_tuning()

        def generate_measure_candidates(self):
            # Evolution excludes what it picked in earlier rounds, so a retry yields new candidates.
            for _ in range(5):
                if STOP.is_set():
                    return None
                candidates = self.inner.generate_measure_candidates()
                if candidates is None:
                    return None
                fresh = [c for c in candidates if not database.has_trace(self.mod, c.sch.trace)]
                self.skipped += len(candidates) - len(fresh)
                if fresh:
                    return fresh
            return None

        def notify_runner_results(self, measure_candidates, results) -> None:
            self.inner.notify_runner_results(measure_candidates, results)

        def clone(self):
            return DedupSearch(self.inner.clone())

    return DedupSearch()


@dataclass
class TaskProgress:
    trials: int = 0
    build_failures: int = 0
    run_failures: int = 0
    best_s: float | None = None  # best mean latency of one call, seconds


@dataclass
class Progress:
    """Live counters the callback updates and the report reads."""

    tasks: dict[int, TaskProgress] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)
    history: list[tuple[float, int, float | None]] = field(default_factory=list)  # (elapsed s, trials, est. ms)
    started: float = field(default_factory=time.monotonic)

    @property
    def trials(self) -> int:
        return sum(t.trials for t in self.tasks.values())

    @property
    def build_failures(self) -> int:
        return sum(t.build_failures for t in self.tasks.values())

    @property
    def run_failures(self) -> int:
        return sum(t.run_failures for t in self.tasks.values())

    def estimated_ms(self) -> float | None:
        """Sum over tuned tasks of best kernel time x calls: the tuner's own view of the network."""
        known = [(t.best_s, self.weights.get(i, 1)) for i, t in self.tasks.items() if t.best_s is not None]
        return sum(s * w for s, w in known) * 1e3 if known else None


def make_progress_callback(progress: Progress, task_ids: list[int], on_update: Callable[[Progress], None]) -> Any:
    """Measure callback: count trials and failures per task (never fatal) and report progress.

    `task_ids` maps the running scheduler's task numbers to ours; the caller updates it per call."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class ProgressCallback(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
            state = progress.tasks.setdefault(task_ids[task_id], TaskProgress())
            for built, ran in zip(builder_results, runner_results):
                state.trials += 1
                if built.error_msg is not None:
                    state.build_failures += 1
                elif ran.error_msg is not None or not ran.run_secs:
                    state.run_failures += 1
                else:
                    seconds = mean_seconds(ran.run_secs)
                    if state.best_s is None or seconds < state.best_s:
                        state.best_s = seconds
            progress.history.append((time.monotonic() - progress.started, progress.trials, progress.estimated_ms()))
            on_update(progress)

    return ProgressCallback()
