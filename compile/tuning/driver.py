"""MetaSchedule tuning of a model's kernels for a profile, into a resumable database under tuning_logs/."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from tvmdeploy.compile.tuning import builder as ms_builder  # `builder` is a local name in the functions below
from tvmdeploy.compile.tuning import plan as tuning_plan  # `plan` is a local name in tune()
from tvmdeploy.compile.tuning import search as ms_search
from tvmdeploy.compile.tuning.database import META_FILE, mean_seconds
from tvmdeploy.compile.tuning.history import HistoryWriter
from tvmdeploy.compile.tuning.log_choice import default_logs_root
from tvmdeploy.compile.tuning.report import format_task_table
from tvmdeploy.compile.tuning.tasks import TaskInfo, describe_tasks, model_key, parse_ops
from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.targets import TargetProfile

log = logging.getLogger(__name__)

TRIALS_PER_ITER = 16  # candidates per search iteration; also the granularity of trial allotment


@dataclass
class TaskOutcome:
    info: TaskInfo
    selected: bool
    before_ms: float | None  # per call: best in the database before this run, else the untuned kernel
    after_ms: float | None  # per call: best in the database after this run
    trials_before: int
    trials_after: int
    build_failures: int = 0
    run_failures: int = 0


@dataclass
class TuneResult:
    folder: Path
    key: str
    outcomes: list[TaskOutcome] = field(default_factory=list)
    trials_run: int = 0
    skipped_duplicates: int = 0  # proposals the search dropped because they were measured before
    remeasured: int = 0  # candidates measured again anyway (their second record is not kept)
    wall_s: float = 0.0
    interrupted: bool = False
    out_of_time: bool = False  # stopped by the time budget (cleanly; resumable like an interrupt)


@dataclass
class TuneOptions:
    """Every option of `tune` (and of `tvmdeploy.tune`), in one place; see `tune` for what each does."""

    trials: int | None = None  # total measured candidates for the selected tasks (default: the profile's tuning_trials)
    ops: str | None = None  # task classes: comma list of stem, depthwise, pointwise, dense, other, or all
    resume: bool = False  # continue an existing database
    log_dir: Path | None = None  # database folder (default: tuning_logs/<profile>/<model-key>/)
    rpc_tracker: str | None = None  # measure on a board behind this tracker (HOST:PORT)
    rpc_key: str | None = None  # its device key (default: the profile's rpc_key)
    max_trials_per_task: int | None = None
    trials_per_iter: int = TRIALS_PER_ITER
    measure_baseline: bool = True  # time the untuned kernels first
    seed: int = 0
    progress_bar: bool = True
    quick_measure: bool = False
    only: Callable[[TaskInfo], bool] | None = None  # a further filter on the selected tasks
    seed_from: Path | None = None  # re-measure another database's best schedules first
    seed_top_k: int = 4
    auto_seed: bool = True  # seed from the other shipped logs and the default schedules
    include_merged: bool = False  # also tune the kernels the default build merges into blocks (TaskInfo.merged)
    time_budget_min: float | None = None  # stop cleanly after this many minutes
    on_task_table: Callable[[str], None] | None = None  # gets the task table before the search (default: logged at INFO)

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `tune`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def prepared_tasks(onnx_path: Path, profile: TargetProfile) -> tuple[Any, list[TaskInfo], Any]:
    """(prepared module, task infos, onnx info): the same lowering the build compiles."""
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import merge_blocks, prepare, tuning_tasks

    mod, info = import_onnx(Path(onnx_path))
    prepared = prepare(mod, profile)
    infos = describe_tasks(tuning_tasks(prepared, profile))
    if profile.device == "cpu":
        gone = merge_blocks(prepared, profile)[1]
        for task in infos:
            task.merged = task.name in gone
    return prepared, infos, info


def database_folder(profile: TargetProfile, infos: list[TaskInfo], log_dir: Path | None) -> tuple[Path, str]:
    key = model_key(infos)
    if log_dir is not None:
        return Path(log_dir), key
    return default_logs_root() / profile.name / key, key


def _write_meta(folder: Path, profile: TargetProfile, infos: list[TaskInfo], model_name: str, key: str) -> None:
    from tvmdeploy.compile.pipeline import PIPELINE_VERSION
    from tvmdeploy.compile.tuning.log_choice import cpu_record

    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    models = sorted(set(meta.get("models", [])) | {model_name})
    meta.update(
        {
            "model_key": key,
            "models": models,
            "profile": profile.name,
            "target": profile.target,
            "pipeline": PIPELINE_VERSION,
            "key_note": "model_key hashes the tasks' TIR (shapes, layouts, fused ops), never weights",
            "tuned_on": cpu_record(),  # the CPU of the latest run on this log (compile/tuning/log_choice.choose_log)
            "tasks": [
                {"name": i.name, "class": i.op_class, "kind": i.kind, "calls": i.weight, "flops": i.flops, "shash": i.shash} for i in infos
            ],
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, meta_path)


def _quiet_loggers(folder: Path, names: list[str]) -> list[Any]:
    """Per-task MetaSchedule loggers writing to `logs/`; MetaSchedule's console handler shows only
    warnings: the console belongs to the progress bar and our tables."""
    from tvm.s_tir.meta_schedule.logging import get_loggers_from_work_dir

    top = logging.getLogger("tvm.s_tir.meta_schedule")
    # TVM rebuilds its logging config from the names of its top logger's handlers and crashes on an
    # unnamed one; a host process (pytest's capture handlers, an app's own) may have left some there.
    for handler in [h for h in top.handlers if h.get_name() is None]:
        top.removeHandler(handler)
    # MetaSchedule sizes its console handler by this level when it (re)configures its loggers;
    # its scheduler tables and XGBoost iterations still reach logs/*.log at DEBUG.
    top.setLevel(logging.WARNING)
    return get_loggers_from_work_dir(str(folder), names)


def _best_seconds(database, info: TaskInfo) -> float | None:
    mod = info.task.dispatched[0]
    if not database.has_workload(mod):
        return None
    top = database.get_top_k(database.commit_workload(mod), 1)
    if not top or not top[0].run_secs:
        return None
    best = mean_seconds(top[0].run_secs)
    return None if best >= 1e9 else best  # MetaSchedule stores 1e10 for failed candidates


def measure_untuned(infos: list[TaskInfo], profile: TargetProfile, builder, runner) -> dict[int, float]:
    """Per-call seconds of each kernel with no schedule at all (the 'before' of a first run)."""
    from tvm.s_tir import meta_schedule as ms

    from tvmdeploy.compile.tuning.builder import build_and_run

    if not infos:
        return {}
    items = [(i.task.dispatched[0], ms.arg_info.ArgInfo.from_prim_func(next(iter(i.task.dispatched[0].functions.values())))) for i in infos]
    measured = build_and_run(builder, runner, items, infos[0].task.target, "cpu" if profile.device == "cpu" else "cuda")
    return {info.index: mean_seconds(secs) for info, secs in zip(infos, measured) if secs}


def _pretrain_cost_model(cost_model, contexts, database) -> None:
    """On resume, teach the fresh cost model everything measured before, so search starts informed."""
    from tvm.s_tir import meta_schedule as ms

    batches = []
    for context in contexts:
        if database.has_workload(context.mod):
            records = database.get_top_k(database.commit_workload(context.mod), 100000)
            if records:
                batches.append((context, records))
    try:
        for number, (context, records) in enumerate(batches):
            # XGBModel retrains whenever its data grew by a fifth; train once, on the last batch.
            cost_model.last_train_size = 0 if number == len(batches) - 1 else 10**12
            cost_model.update(
                context,
                [r.as_measure_candidate() for r in records],
                [ms.runner.RunnerResult(run_secs=r.run_secs, error_msg=None) for r in records],
            )
    except Exception as exc:  # an informed start is an optimisation; never fail the run over it
        log.warning("warning: cost model warm start skipped (%s: %s)", type(exc).__name__, exc)


def tune(
    onnx_path: Path,
    profile: TargetProfile,
    *,
    trials: int | None = None,
    ops: str | None = None,
    resume: bool = False,
    log_dir: Path | None = None,
    rpc_tracker: str | None = None,
    rpc_key: str | None = None,
    max_trials_per_task: int | None = None,
    trials_per_iter: int = TRIALS_PER_ITER,
    measure_baseline: bool = True,
    seed: int = 0,
    progress_bar: bool = True,
    quick_measure: bool = False,
    only: Callable[[TaskInfo], bool] | None = None,
    seed_from: Path | None = None,
    seed_top_k: int = 4,
    auto_seed: bool = True,
    include_merged: bool = False,
    time_budget_min: float | None = None,
    on_task_table: Callable[[str], None] | None = None,
) -> TuneResult:
    """Tune the selected kernel classes; every finished record is on disk the moment it is measured.

    Tuning starts from what is known: `seed_from` and (with `auto_seed`) every other log under
    tuning_logs/ that holds some of these workloads are re-measured here first, then the default
    schedule of every task still without a record; the cost model is trained on all of it before the
    search. Kernels the default build merges into blocks (TaskInfo.merged) never use a record, so they are
    left out unless `include_merged` (their records serve only builds without the default schedules).
    `time_budget_min` stops the run cleanly (after the batch in flight) at that wall-clock time.
    `on_task_table` receives `report.format_task_table` of the run before the search (default: logged at INFO).
    """
    started = time.monotonic()
    deadline = None if time_budget_min is None else started + 60.0 * time_budget_min
    classes = parse_ops(ops)
    _check_where(profile, rpc_tracker, rpc_key)

    from tvmdeploy.compile.tuning.database import lock_database

    # One writer per database: a second `tune` on this folder refuses at once (readers are unaffected). A folder
    # given as log_dir is locked before the task extraction (28 s for x1.0 on 2 busy cores); the default folder is
    # named after the extracted kernels, so it is locked right after. Signals during seeding stop as cleanly as
    # during the search (the search's own graceful_stop nests).
    with ExitStack() as held:
        if log_dir is not None:
            held.enter_context(lock_database(Path(log_dir), what=" ".join(sys.argv)))
        infos, model_name, folder, key = _prepare_tasks(onnx_path, profile, log_dir)
        if log_dir is None:
            held.enter_context(lock_database(folder, what=" ".join(sys.argv)))
        held.enter_context(ms_search.graceful_stop())
        database = _open_for_writing(folder, resume, profile, infos, model_name, key)
        selected = [i for i in infos if i.op_class in classes and (include_merged or not i.merged) and (only is None or only(i))]
        builder, runner = _measurers(profile, rpc_tracker, rpc_key, quick_measure)
        if profile.device == "cpu" and not ms_search.STOP.is_set():
            _seed(database, folder, selected, builder, runner, Path(seed_from) if seed_from else None, auto_seed, seed_top_k)

        budget = trials if trials is not None else profile.tuning_trials
        already = {i.index: database.measured(i.task.dispatched[0]) for i in infos}
        remaining = max(0, budget - sum(already[i.index] for i in selected))
        per_task_cap = max_trials_per_task or max(trials_per_iter, budget)  # default: the scheduler decides
        to_tune = [i for i in selected if already[i.index] < per_task_cap] if remaining else []

        # Merged kernels (not tuned) are not timed either: in the build their time is their block's.
        before = _times_before(
            database,
            [i for i in infos if i in selected or not i.merged],
            profile,
            builder,
            runner,
            measure=measure_baseline and not rpc_tracker,
        )
        result = TuneResult(folder=folder, key=key)
        progress = _progress_from(database, infos)
        trials_at_start = progress.trials
        (on_task_table or log.info)(format_task_table(infos, before, selected={i.index for i in selected}))
        strategies = []
        history = HistoryWriter(folder, resume)
        if to_tune and remaining > 0:
            search = _Search(
                database,
                folder,
                to_tune,
                {i.index: already[i.index] for i in to_tune},
                builder,
                runner,
                progress,
                history,
                remaining=remaining,
                trials_at_start=trials_at_start,
                trials_per_iter=trials_per_iter,
                per_task_cap=per_task_cap,
                seed=seed,
                deadline=deadline,
                progress_bar=progress_bar,
            )
            strategies = search.strategies
            search.run(result)
        _record_outcomes(result, database, infos, selected, before, already, progress, trials_at_start, strategies)
        result.wall_s = time.monotonic() - started
        history.write(progress.history)
        return result


def _check_where(profile: TargetProfile, rpc_tracker: str | None, rpc_key: str | None) -> None:
    """Refuse at once what cannot be tuned where it would be measured."""
    if rpc_tracker and not (rpc_key or profile.rpc_key):
        raise TvmDeployError(f"{arg('rpc_tracker')} needs {arg('rpc_key')} (or a profile with rpc_key)", param="rpc_key")
    if profile.device != "cpu" and not rpc_tracker:
        # TODO(tuning): CUDA tuning needs a GPU runner; only CPU profiles are tuned here.
        raise TvmDeployError(f"profile '{profile.name}' is a {profile.device} target; tuning supports CPU profiles")
    if profile.needs_cross_compiler and not rpc_tracker:
        raise TvmDeployError(
            f"profile '{profile.name}' is for {profile.arch}; tune it on a board with " f"{arg('rpc_tracker')}/{arg('rpc_key')}",
            param="rpc_tracker",
        )


def _prepare_tasks(onnx_path: Path, profile: TargetProfile, log_dir: Path | None) -> tuple[list[TaskInfo], str, Path, str]:
    """(task infos, model name, database folder, model key) of the model as the build lowers it."""
    ms_builder.load_cpu_tensor_intrinsics(profile.arch)
    _, infos, onnx_info = prepared_tasks(onnx_path, profile)
    folder, key = database_folder(profile, infos, log_dir)
    return infos, onnx_info.model_name, folder, key


def _open_for_writing(folder: Path, resume: bool, profile: TargetProfile, infos: list[TaskInfo], model_name: str, key: str):
    """The (locked) database folder opened for appending, after its meta file is written; refuses to add to a
    database that holds records unless `resume`."""
    from tvmdeploy.compile.tuning.database import RECORD_FILE, open_database, unpack_history

    unpack_history(folder)  # a history kept packed in the repository resumes like an unpacked one
    has_records = (folder / RECORD_FILE).exists() and (folder / RECORD_FILE).stat().st_size > 0
    if has_records and not resume:
        raise TvmDeployError(
            f"{folder} already holds tuning records; pass {arg('resume')} to continue them or " f"{arg('log_dir')} for a new database",
            param="resume",
        )
    _write_meta(folder, profile, infos, model_name, key)
    return open_database(folder)


def _measurers(profile: TargetProfile, rpc_tracker: str | None, rpc_key: str | None, quick: bool) -> tuple[Any, Any]:
    """(builder, runner): candidates built on every core here (cross-compiled for a board), run here or on the board."""
    cores = os.cpu_count() or 1
    cross = profile.cross_compiler.command if (profile.cross_compiler and profile.needs_cross_compiler) else None
    builder = ms_builder.make_builder(max_workers=cores, cross_compiler=cross)
    if rpc_tracker:
        runner = ms_builder.make_rpc_runner(rpc_tracker, rpc_key or profile.rpc_key, quick=quick)
    else:
        runner = ms_builder.make_local_runner(profile.threads or cores, quick=quick)
    return builder, runner


def _times_before(database, infos: list[TaskInfo], profile: TargetProfile, builder, runner, *, measure: bool) -> dict[int, float | None]:
    """Per-call seconds of each task before this run: the database's best, else (with `measure`) untuned."""
    before = {i.index: _best_seconds(database, i) for i in infos}
    if measure:
        missing = [i for i in infos if before[i.index] is None]
        if missing:
            untuned = measure_untuned(missing, profile, builder, runner)
            before.update({k: v for k, v in untuned.items()})
    return before


def _progress_from(database, infos: list[TaskInfo]):
    """The search's progress, starting from what is known: the database bests (the report's estimate)."""
    progress = ms_search.Progress(weights={i.index: i.weight for i in infos})
    for info in infos:
        best = _best_seconds(database, info)
        if best is not None:
            progress.tasks[info.index] = ms_search.TaskProgress(best_s=best)
    return progress


class _Search:
    """The search over `to_tune`: one MetaSchedule context per task, a shared cost model, run task by task."""

    def __init__(
        self,
        database,
        folder: Path,
        to_tune: list[TaskInfo],
        done: dict[int, int],
        builder,
        runner,
        progress,
        history: HistoryWriter,
        *,
        remaining: int,
        trials_at_start: int,
        trials_per_iter: int,
        per_task_cap: int,
        seed: int,
        deadline: float | None,
        progress_bar: bool,
    ) -> None:
        from tvm.s_tir import meta_schedule as ms

        self.database, self.builder, self.runner, self.progress = database, builder, runner, progress
        self.to_tune, self.done = to_tune, done  # done: trials measured per task so far
        self.remaining, self.trials_at_start = remaining, trials_at_start
        self.trials_per_iter, self.per_task_cap, self.deadline = trials_per_iter, per_task_cap, deadline
        bar = self.bar = _make_bar(remaining, progress_bar)

        def on_update(p: ms_search.Progress) -> None:
            history.write(p.history)  # as it goes: a killed run keeps its latency-vs-time curve too
            done = p.trials - trials_at_start
            bar.n = min(done, remaining)
            est = p.estimated_ms()
            bar.set_postfix_str(
                (f"est {est:.2f} ms" if est is not None else "est ?") + f", build fails {p.build_failures}, run fails {p.run_failures}",
                refresh=True,
            )

        cores = os.cpu_count() or 1
        loggers = _quiet_loggers(folder, [i.name for i in to_tune])
        self.strategies = []
        contexts = []
        for info, logger, rand_state in zip(to_tune, loggers, range(seed, seed + len(to_tune))):
            strategy = ms_search.make_dedup_search(database)
            self.strategies.append(strategy)
            contexts.append(
                ms.TuneContext(
                    mod=info.task.dispatched[0],
                    target=info.task.target,
                    space_generator="post-order-apply",
                    search_strategy=strategy,
                    task_name=info.name,
                    logger=logger,
                    rand_state=rand_state + 1,
                    num_threads=cores,
                )
            )
        self.cost_model = ms.cost_model.XGBModel(num_tuning_cores=cores, adaptive_training=True)
        if any(database.measured(i.task.dispatched[0]) for i in to_tune):  # resumed or seeded
            _pretrain_cost_model(self.cost_model, contexts, database)
        self.current: list[int] = []  # task indices of the scheduler call in progress
        self.callbacks = list(ms.measure_callback.MeasureCallback.create("default"))
        self.callbacks.append(ms_search.make_progress_callback(progress, self.current, on_update))
        self.context_of = {info.index: context for info, context in zip(to_tune, contexts)}
        self.info_of = {info.index: info for info in to_tune}

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def run(self, result: TuneResult) -> None:
        """Search until the trials are spent, a signal stops it or time is up; marks `result` accordingly."""
        # At the deadline the search stops proposing (as on Ctrl-C): the batch in flight is measured and kept.
        deadline = self.deadline
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), ms_search.STOP.set) if deadline else None
        try:
            with ms_search.graceful_stop():
                if timer is not None:
                    timer.daemon = True
                    timer.start()
                self._rounds()
        except KeyboardInterrupt:
            result.interrupted = True
        finally:
            if timer is not None:
                timer.cancel()
            self.bar.close()
        result.out_of_time = self.out_of_time()
        result.interrupted = result.interrupted or (ms_search.STOP.is_set() and not result.out_of_time)

    def _rounds(self) -> None:
        """A first batch for every task without one, then rounds planned by each task's share of network time."""
        progress, done, per_task_cap, trials_per_iter = self.progress, self.done, self.per_task_cap, self.trials_per_iter
        remaining, trials_at_start = self.remaining, self.trials_at_start
        # Pass 1: one search batch for every task that has not had one. A few seed records
        # (--seed-from) are not a search: when they counted, the share-based rounds never got
        # to 14 of the 34 seeded tasks in a 1763-trial x86-avx512 run.
        first = {i.index: min(trials_per_iter, per_task_cap - done[i.index]) for i in self.to_tune if done[i.index] < trials_per_iter}
        first = _trim(first, remaining)
        self._run_tasks(first)
        # Then rounds in proportion to each task's share of network time, re-planned every round.
        last_best = {i: progress.tasks.get(i, ms_search.TaskProgress()).best_s for i in done}
        stalled: set[int] = set()
        while (left := remaining - (progress.trials - trials_at_start)) > 0 and not self.out_of_time():
            shares = {i: (progress.tasks.get(i, ms_search.TaskProgress()).best_s or 0.0) * self.info_of[i].weight for i in done}
            room = {i: per_task_cap - done[i] for i in done}
            plan = tuning_plan.allot(shares, tuning_plan.round_budget(left, len(done), trials_per_iter), trials_per_iter, room, stalled)
            if not plan:
                break
            before_round = progress.trials
            self._run_tasks(plan)
            if progress.trials == before_round:  # search spaces exhausted
                break
            for i in plan:
                best = progress.tasks.get(i, ms_search.TaskProgress()).best_s
                improved = best is not None and (last_best[i] is None or best < 0.99 * last_best[i])
                if improved:
                    stalled.discard(i)
                else:
                    stalled.add(i)
                last_best[i] = best

    def _run_tasks(self, plan: dict[int, int]) -> None:
        """Tune each planned task for its trials. One task per call, so the round-robin scheduler
        commits every batch before it sends the next (the gradient scheduler commits nothing until
        it has visited every task once: a kill in that first pass used to lose everything)."""
        from tvm.s_tir import meta_schedule as ms

        for index, trials in plan.items():
            if ms_search.STOP.is_set() or self.out_of_time():
                return
            self.current[:] = [index]
            ms.task_scheduler.RoundRobin().tune(
                tasks=[self.context_of[index]],
                task_weights=[float(self.info_of[index].weight)],
                max_trials_global=trials,
                max_trials_per_task=trials,
                num_trials_per_iter=min(self.trials_per_iter, trials),
                builder=self.builder,
                runner=self.runner,
                measure_callbacks=self.callbacks,
                database=self.database,
                cost_model=self.cost_model,
            )
            self.done[index] = self.database.measured(self.info_of[index].task.dispatched[0])


def _record_outcomes(
    result: TuneResult,
    database,
    infos: list[TaskInfo],
    selected: list[TaskInfo],
    before: dict[int, float | None],
    already: dict[int, int],
    progress,
    trials_at_start: int,
    strategies: list,
) -> None:
    """Fill `result` from the database after the run: per task before -> after, trials, failures."""
    result.trials_run = progress.trials - trials_at_start
    result.skipped_duplicates = sum(getattr(s, "skipped", 0) for s in strategies)
    result.remeasured = database.duplicates
    for info in infos:
        state = progress.tasks.get(info.index, ms_search.TaskProgress())
        result.outcomes.append(
            TaskOutcome(
                info=info,
                selected=info in selected,
                before_ms=None if before.get(info.index) is None else before[info.index] * 1e3,
                after_ms=(lambda b: None if b is None else b * 1e3)(_best_seconds(database, info)),
                trials_before=already[info.index],
                trials_after=database.measured(info.task.dispatched[0]),
                build_failures=state.build_failures,
                run_failures=state.run_failures,
            )
        )


def _seed(database, folder: Path, selected: list[TaskInfo], builder, runner, seed_from: Path | None, auto_seed: bool, top_k: int) -> None:
    """Records to start from: `seed_from`, the other logs holding these workloads, for workloads none holds
    the schedules of similar ones, then default schedules."""
    from tvmdeploy.compile.tuning.seeding import all_logs, nearest_logs, seed_database, seed_defaults, seed_similar

    sources = [seed_from] if seed_from is not None else []
    if auto_seed:
        sources += [f for f in nearest_logs(default_logs_root(), selected, exclude=folder) if f not in sources]
    for source in sources:
        seed_database(database, source, selected, builder, runner, "cpu", top_k=top_k)
    if auto_seed:
        similar = sources + [f for f in all_logs(default_logs_root(), exclude=folder) if f not in sources]
        seed_similar(database, similar, selected, builder, runner, "cpu")
    if auto_seed or seed_from is not None:
        seed_defaults(database, selected, builder, runner, "cpu")


def _trim(plan: dict[int, int], budget: int) -> dict[int, int]:
    """Keep a plan within `budget` trials (in plan order)."""
    trimmed = {}
    for task, trials in plan.items():
        trials = min(trials, budget - sum(trimmed.values()))
        if trials > 0:
            trimmed[task] = trials
    return trimmed


def _make_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="trial", desc="tuning", disable=not enabled, dynamic_ncols=True, smoothing=0.05, file=sys.stderr)
