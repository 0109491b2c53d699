"""Apply the default rules kernel by kernel, safely: a rule that raises or yields code that does not lower is skipped."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx

from tvmdeploy.compile.schedules import NO_RULE, RULE_FAILED, SCHEDULED_ATTR, is_scheduled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleOutcome:
    """What the default rules made of one kernel: its schedule, or why it has none."""

    schedule: s_tir.Schedule | None
    rule: str = ""  # the rule that scheduled it, or the first that failed on it
    failure: str = ""  # why that rule failed (empty: scheduled, or no rule matched)

    @property
    def why_raw(self) -> str:
        """'' when scheduled; else NO_RULE or 'rule failed: <rule>: <reason>'."""
        if self.schedule is not None:
            return ""
        return f"{RULE_FAILED}: {self.rule}: {self.failure}" if self.failure else NO_RULE


def _one_line(exc: BaseException) -> str:
    """An exception as one short line: TVM's messages carry a C++ backtrace and a multi-line context."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().startswith("File ")]
    message = next((line for line in reversed(lines) if "Error" in line or "Check failed" in line), lines[-1] if lines else "")
    return f"{type(exc).__name__}: {message}"[:300]


def lowers(func: tirx.PrimFunc, target: tvm.target.Target) -> str:
    """'' if the scheduled kernel passes TVM's TIR lowering for `target` (all the build does before code
    generation), else the reason in one line. Schedule primitives check their own preconditions, but some
    combinations (a block reverse-inlined into a write-back that another block reads...) only fail at
    FlattenBuffer, inside `tvm.compile`, where one kernel would take the whole build down."""
    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    try:
        with target:
            mod = tirx.transform.BindTarget(target.with_host(target))(mod)
            pipeline, _, _ = tirx.get_default_tir_pipeline(target)
            pipeline(mod)
    except Exception as exc:  # noqa: BLE001 - any failure means: keep this kernel on raw lowering
        return _one_line(exc)
    return ""


def schedule_with_rules(func: tirx.PrimFunc, target: tvm.target.Target, rules: list, *, check_lowering: bool = True) -> RuleOutcome:
    """The first rule's schedule that applies without error (and lowers, when `check_lowering`), or why none did.

    A rule returning None does not apply; a rule that raises, or whose schedule does not lower, has failed on
    this kernel and the next rule is tried: only when none succeeds does the kernel keep its raw lowering.
    """
    failed: tuple[str, str] | None = None
    for rule in rules:
        name = type(rule).__name__
        try:
            sch = rule.apply(func, target, False)
        except Exception as exc:  # noqa: BLE001 - a bug in one rule must never take the build down
            failed = failed or (name, _one_line(exc))
            continue
        if isinstance(sch, list):
            sch = sch[0] if sch else None
        if sch is None:
            continue
        problem = lowers(sch.mod["main"], target) if check_lowering else ""
        if problem:
            failed = failed or (name, problem)
            continue
        return RuleOutcome(sch, name)
    return RuleOutcome(None, *(failed or ("", "")))


def apply_rules(mod: tvm.IRModule, target: tvm.target.Target, rules: list) -> tuple[tvm.IRModule, dict[str, str]]:
    """Schedule every unscheduled kernel of `mod` with the first rule that succeeds on it.

    Returns the module and, for each kernel left on raw lowering, why (NO_RULE or a failed rule's reason);
    each failure is logged as a warning naming the kernel.
    """
    mod, raw = mod.clone(), {}
    updated = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or is_scheduled(func):
            continue
        outcome = schedule_with_rules(func, target, rules)
        if outcome.schedule is not None:
            updated[gvar] = outcome.schedule.mod["main"].with_attr(SCHEDULED_ATTR, True)
            continue
        raw[gvar.name_hint] = outcome.why_raw
        if outcome.failure:
            log.warning("warning: kernel %s keeps TVM's raw lowering: %s", gvar.name_hint, outcome.why_raw)
        else:
            log.info("kernel %s keeps TVM's raw lowering: %s", gvar.name_hint, NO_RULE)
    for gvar, func in updated.items():
        mod[gvar] = func
    return mod, raw
