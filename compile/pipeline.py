"""The Relax compilation pipeline shared by tuning and build: one place decides how a model is lowered."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm import relax

from tvmdeploy.compile.concat_pushdown import concat_pushdown
from tvmdeploy.compile.fast_math import legalize_map
from tvmdeploy.compile.fold_weights import fold_weights
from tvmdeploy.compile.quantization.integer_ops import IntegerOps, check_quantization_forms, is_quantized
from tvmdeploy.compile.schedules import BLOCK_CLASS, BLOCK_PREFIX, NO_RULE, RULE_FAILED, is_scheduled
from tvmdeploy.compile.schedules.dot_product import activation_dtype, dot_instruction
from tvmdeploy.compile.tuning.database import RECORD_FILE, open_database, read_meta, scan
from tvmdeploy.compile.tuning.log_choice import LogChoice
from tvmdeploy.compile.tuning.tasks import OP_CLASSES, classify
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.targets import TargetProfile

log = logging.getLogger(__name__)

# Bump when `prepare` changes what the TIR tasks look like: tuning logs are only valid for the same
# lowering, so the tuner writes this into the database folder's meta file and the build checks it.
PIPELINE_VERSION = "nhwc-prepack-1"

# CPU convolutions run in NHWC: depthwise and 1x1 kernels then vectorise along channels, which stay
# wide (up to 1280) down to the 7x7 layers, where NCHW would vectorise along a 7-wide row.
CPU_CONV_LAYOUT: dict[str, list[str]] | None = {"relax.nn.conv2d": ["NHWC", "OHWI"]}


# Where a kernel's schedule came from, in report order: a log record, a default rule, raw lowering because no
# rule matched it, raw lowering because the rule that matched failed on it (schedules.apply.RULE_FAILED).
SCHEDULE_SOURCES = ("log", "default", "raw", RULE_FAILED)
_SOURCE_LABELS = {RULE_FAILED: f"raw ({RULE_FAILED})"}


@dataclass
class CompiledModel:
    executable: tvm.runtime.Executable
    tasks_total: int = 0
    tasks_from_database: int = 0
    database_dir: Path | None = None  # the database applied (AUTO/SHIPPED resolved), or None
    log_note: str = ""  # why AUTO applied no shipped log although one fits
    # kernel class -> schedule source (SCHEDULE_SOURCES) -> number of distinct kernels
    schedule_sources: dict[str, dict[str, int]] = field(default_factory=dict)
    tasks_merged: int = 0  # tasks merged into blocks: no record applies to them; not in tasks_total
    raw_kernels: dict[str, str] = field(default_factory=dict)  # kernel on raw lowering -> why (schedules.apply)
    # A quantized model: kernel class -> [kernels on 8-bit tensors, kernels], and the ops left in float emulation.
    integer_kernels: dict[str, list[int]] = field(default_factory=dict)
    float_emulated: list[str] = field(default_factory=list)

    def integer_summary(self) -> str:
        """'stem 1/1, depthwise 10/10, ...; float emulation: none' for a quantized model, else ''."""
        if not self.integer_kernels:
            return ""
        kernels = ", ".join(f"{c} {n}/{total}" for c, (n, total) in self.integer_kernels.items())
        return f"{kernels}; float emulation: {', '.join(self.float_emulated) or 'none'}"

    def sources_summary(self) -> str:
        """One line: per kernel class, how many kernels came from the log, the default rules, raw lowering."""
        parts = []
        for op_class, counts in self.schedule_sources.items():
            shown = ", ".join(f"{counts[s]} {_SOURCE_LABELS.get(s, s)}" for s in SCHEDULE_SOURCES if counts.get(s))
            parts.append(f"{op_class}: {shown}")
        return "; ".join(parts)


def make_target(profile: TargetProfile) -> tvm.target.Target:
    return tvm.target.Target(profile.target)


@relax.expr_functor.mutator
class _ClipToRelaxOps(relax.PyExprMutator):
    """Turn the ONNX front end's pre-lowered `call_tir(maximum|minimum, (x, scalar))` back into Relax ops.

    The front end emits Clip (ReLU6) as TOPI prim funcs; ConvertLayout cannot see through them and
    wraps every ReLU6 in NHWC->NCHW->NHWC transposes, which also blocks fusing it into the conv.
    """

    _OPS = {"maximum": relax.op.maximum, "minimum": relax.op.minimum}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op != tvm.ir.Op.get("relax.call_tir") or not isinstance(call.args[0], tvm.ir.GlobalVar):
            return call
        name = call.args[0].name_hint.rstrip("0123456789_")
        args = call.args[1]
        if name not in self._OPS or not isinstance(args, relax.Tuple) or len(args.fields) != 2:
            return call
        scalar = args.fields[1]
        if not isinstance(scalar, tvm.ir.expr.Constant) or len(scalar.value.shape) != 0:
            return call
        return self._OPS[name](args.fields[0], scalar)


@tvm.transform.module_pass(opt_level=0, name="ClipToRelaxOps")
def clip_to_relax_ops(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    for gvar, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gvar] = _ClipToRelaxOps().visit_expr(func)
    return relax.transform.DeadCodeElimination()(mod)


def prepare(mod: tvm.IRModule, profile: TargetProfile, report: dict | None = None) -> tvm.IRModule:
    """Graph rewrites and lowering to fused TIR, shared by task extraction and build (records must match).

    `report`, when given, receives "quantized" (a QDQ model) and "float_emulated": the ops of a quantized model
    the integer rewrite left in float (compile/quantization/integer_ops.py). Quantized forms the integer kernels
    cannot take are refused here, in one line, for the build and the tuner alike.
    """
    cpu = profile.device == "cpu"
    target = make_target(profile)
    dot = dot_instruction(target)
    integer = IntegerOps(activation_dtype(target), dot.depth if dot else 1)
    quantized = is_quantized(mod)
    # Integer operators before any folding: FoldConstant would turn the int8 weights' dequantize into float32.
    # fold_weights before FoldConstant, which compiles each constant expression with LLVM (compile/fold_weights.py).
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings()]
    if quantized:
        check_quantization_forms(mod)  # before the passes: an error raised inside one reaches us re-typed
        passes += [clip_to_relax_ops, integer]  # a ReLU6 before a quantize folds into its saturation bounds
    passes += [fold_weights, relax.transform.FoldConstant()]
    if cpu:
        # Batch norm and activations after a Concat (MixNet) go into its branches, to fuse with their convolutions.
        passes += [clip_to_relax_ops, concat_pushdown]
        if CPU_CONV_LAYOUT:  # None keeps the ONNX NCHW layout (used to compare layouts)
            passes += [relax.transform.ConvertLayout(CPU_CONV_LAYOUT), fold_weights, relax.transform.FoldConstant()]
    # CPU: float32 exp and sigmoid as vector arithmetic; LLVM calls libm's expf once per lane otherwise.
    passes += [
        relax.transform.LegalizeOps(legalize_map() if cpu else None),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if cpu:
        # Weights are constants: MetaSchedule may then choose their memory layout (RewriteLayout),
        # and the build folds that repacking into the constants once (see `finish`).
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    with make_target(profile), tvm.transform.PassContext(opt_level=3):
        mod = tvm.transform.Sequential(passes)(mod)
    if report is not None:
        report.update(quantized=quantized, float_emulated=list(integer.float_emulated))
    return mod


def tuning_tasks(mod: tvm.IRModule, profile: TargetProfile) -> list:
    """MetaSchedule tasks of an already `prepare`d module (one per distinct fused TIR function)."""
    from tvm.s_tir import meta_schedule as ms  # lazy: MetaSchedule pulls in a lot

    return list(ms.relax_integration.extract_tasks(mod, make_target(profile)))


def _count_covered(tasks: list, database) -> int:
    """How many tasks the database has a schedule for (the rest keep TVM's default lowering)."""
    return sum(database.query_tuning_record(task.dispatched[0], task.target, task.task_name) is not None for task in tasks)


def _check_has_records(folder: Path) -> None:
    """A database folder without one valid record would silently build untuned code: refuse it in one line."""
    if not (folder / RECORD_FILE).exists():
        return  # open_database says so
    scanned = scan(folder)
    if scanned.records:
        return
    if scanned.problems:
        raise TvmDeployError(
            f"tuning log {folder} holds no valid tuning record: all {len(scanned.problems)} "
            f"line(s) are corrupt (first: {scanned.problems[0]})"
        )
    raise TvmDeployError(f"tuning log {folder} holds no tuning record ({RECORD_FILE} is empty)")


def _pipeline_of(folder: Path) -> str | None:
    """The pipeline version the tuner wrote into the folder's meta file (None: a bare MetaSchedule database)."""
    return read_meta(folder).get("pipeline")


def _made_by_note(folder: Path) -> str:
    made_by = _pipeline_of(folder)
    return f" (made by pipeline '{made_by}', this build is '{PIPELINE_VERSION}')" if made_by and made_by != PIPELINE_VERSION else ""


def _warn_if_other_pipeline(folder: Path, covered: int, total: int) -> None:
    """Records apply per kernel, so a log from another pipeline version still loads, but kernels that
    pipeline changed find no record: say why coverage may be low instead of failing the build."""
    made_by = _pipeline_of(folder)
    if made_by and made_by != PIPELINE_VERSION:
        log.warning(
            "warning: tuning log %s was made by pipeline '%s', this build is '%s': only unchanged kernels " "use it (%d/%d tasks)",
            folder,
            made_by,
            PIPELINE_VERSION,
            covered,
            total,
        )


def _scheduled(mod: tvm.IRModule) -> set[str]:
    """Names of the TIR kernels that carry a schedule (from a database record or a default rule)."""
    return {gvar.name_hint for gvar, func in mod.functions_items() if isinstance(func, tvm.tirx.PrimFunc) and is_scheduled(func)}


def _kernel_class(name: str, func) -> str:
    """The report class of a kernel: a merged block, or its op class (tuning.tasks.classify)."""
    return BLOCK_CLASS if name.startswith(BLOCK_PREFIX) else classify(name, func)[0]


def _count_sources(
    mod: tvm.IRModule, from_log: set[str], from_rules: set[str], failed: set[str] = frozenset()
) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        name = gvar.name_hint
        source = "log" if name in from_log else "default" if name in from_rules else RULE_FAILED if name in failed else "raw"
        counts.setdefault(_kernel_class(name, func), dict.fromkeys(SCHEDULE_SOURCES, 0))[source] += 1
    return {c: counts[c] for c in (*OP_CLASSES, BLOCK_CLASS) if c in counts}


def _count_integer(mod: tvm.IRModule) -> dict[str, list[int]]:
    """Per kernel class, [kernels that read or write 8-bit integer tensors, all kernels] (quantized models)."""
    counts: dict[str, list[int]] = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        integer = any(str(param.dtype) in ("int8", "uint8") for param in func.params)  # TVM 0.27: params are buffers
        entry = counts.setdefault(_kernel_class(gvar.name_hint, func), [0, 0])
        entry[0] += integer
        entry[1] += 1
    return {c: counts[c] for c in (*OP_CLASSES, BLOCK_CLASS) if c in counts}


def merge_blocks(mod: tvm.IRModule, profile: TargetProfile) -> tuple[tvm.IRModule, set[str]]:
    """A `prepare`d CPU module with its large inverted-residual blocks merged into one kernel each, as the
    default-schedule build compiles it (schedules/fusion.py), and the names of the kernels merged away: no
    record of theirs is ever used, so the tuner skips them."""
    from tvmdeploy.compile.schedules.fusion import called_kernels, merge_expand_depthwise  # lazy, as below

    try:
        with make_target(profile):
            merged = merge_expand_depthwise(mod)
    except Exception as exc:  # noqa: BLE001 - merging is an optimisation: a graph it cannot take builds unmerged
        log.warning("warning: inverted-residual blocks left unmerged: %s: %s", type(exc).__name__, exc)
        return mod, set()
    return merged, called_kernels(mod) - called_kernels(merged)


def apply_default_schedules(mod: tvm.IRModule, profile: TargetProfile, parallel: bool = True) -> tuple[tvm.IRModule, dict[str, str]]:
    """Give every kernel of a `prepare`d module that has no schedule yet our default CPU schedule, and say
    why each kernel left on raw lowering is (no rule matched it, or its rule failed: schedules.apply).

    `parallel=False` keeps them on one thread (a small model: see schedules.cpu.worth_parallel).
    """
    from tvmdeploy.compile.schedules.apply import apply_rules
    from tvmdeploy.compile.schedules.cpu import default_cpu_rules

    target = make_target(profile)
    with target:
        return apply_rules(mod, target, default_cpu_rules(parallel))


def compile_relax(
    mod: tvm.IRModule,
    profile: TargetProfile,
    *,
    database_dir: LogChoice | Path | str | None = None,
    default_schedules: bool | None = None,
) -> CompiledModel:
    """Lower and compile a Relax module for the profile: database records first, default rules for the rest.

    `database_dir`: a database folder or a LogChoice / its word (None: no log). AUTO and SHIPPED look the
    database up from the tasks extracted here, so a shipped-log build prepares the module and extracts its tasks
    once. `default_schedules=False` (the default for LogWord.NONE) leaves the kernels no record covers to TVM's raw
    lowering (for comparison; CPU only, CUDA always needs them).
    """
    choice = LogChoice.of(database_dir)
    if default_schedules is None:
        default_schedules = choice.default_schedules
    target = make_target(profile)
    from tvmdeploy.compile.schedules.cpu import worth_parallel  # lazy, as in apply_default_schedules

    report: dict = {}
    mod = prepare(mod, profile, report)
    # Judged on the kernels before any record schedules them; only the CPU default schedules use it.
    parallel = default_schedules and profile.device == "cpu" and worth_parallel(mod)
    tasks_total = tasks_from_database = 0
    tasks = None
    log_note = ""
    if choice.looks_up:
        tasks = tuning_tasks(mod, profile)
    database_dir, log_note = choice.resolve(tasks, profile)
    if log_note:
        log.info("%s", log_note)  # the build's result carries it (`build` prints it once)
    tasks_merged = 0
    if database_dir is not None and tasks is None:
        tasks = tuning_tasks(mod, profile)
    if default_schedules and profile.device == "cpu":
        # After task extraction (logs are keyed by the unmerged kernels), before records apply: a merged block
        # beats its kernels however well tuned, as it never writes its intermediate tensors out to memory.
        merged, gone = merge_blocks(mod, profile)
        if tasks is not None:
            tasks_merged = sum(task.task_name in gone for task in tasks)
            tasks = [task for task in tasks if task.task_name not in gone]  # the records this build can use
        mod = merged
    if database_dir is not None:
        database_dir = Path(database_dir)
        _check_has_records(database_dir)
        database = open_database(database_dir, readonly=True)
        tasks_total = len(tasks)
        tasks_from_database = _count_covered(tasks, database)
        if tasks_from_database == 0:
            raise TvmDeployError(
                f"tuning log {database_dir} covers none of this model's {tasks_total} kernels for {profile.name}"
                f"{_made_by_note(database_dir)}: it was tuned for another model, profile or lowering; "
                "use a log tuned for this model and profile (`tvmdeploy tune`), or none"
            )
        _warn_if_other_pipeline(database_dir, tasks_from_database, tasks_total)
    if database_dir is not None:
        with target, database, tvm.transform.PassContext(opt_level=3):
            mod = relax.transform.MetaScheduleApplyDatabase()(mod)
    from_log = _scheduled(mod)
    if profile.device == "cuda":
        # Issue 6 (compile/backends/gpu_schedule.py): dlight schedules for the kernels no database entry covered.
        from tvmdeploy.compile.backends.gpu_schedule import compile_cuda

        executable, scheduled = compile_cuda(mod, target)
        return CompiledModel(
            executable,
            tasks_total,
            tasks_from_database,
            database_dir,
            log_note,
            _count_sources(scheduled, from_log, _scheduled(scheduled) - from_log),
            tasks_merged,
        )
    if default_schedules:
        if not parallel:
            log.info("small kernels (%s): the default schedules run them on one thread", profile.name)
        mod, raw_kernels = apply_default_schedules(mod, profile, parallel)
    else:
        raw_kernels = {}
    failed = {name for name, why in raw_kernels.items() if why != NO_RULE}
    sources = _count_sources(mod, from_log, _scheduled(mod) - from_log, failed)
    integer_kernels = _count_integer(mod) if report["quantized"] else {}
    with target, tvm.transform.PassContext(opt_level=3):
        # Split the weight repacking the schedules chose out of each kernel and fold it into the constants.
        mod = tvm.transform.Sequential([relax.transform.SplitLayoutRewritePreproc(), relax.transform.FoldConstant()])(mod)
    return CompiledModel(
        executable=tvm.compile(mod, target=target),
        tasks_total=tasks_total,
        tasks_from_database=tasks_from_database,
        database_dir=database_dir,
        log_note=log_note,
        schedule_sources=sources,
        tasks_merged=tasks_merged,
        raw_kernels=raw_kernels,
        integer_kernels=integer_kernels,
        float_emulated=report.get("float_emulated", []),
    )
