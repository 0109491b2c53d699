"""Which shipped tuning log a model gets: the kernels each log covers, and the CPU each was tuned on.

Logs live in `tuning_logs/<profile>/<folder>/` (MetaSchedule's two JSON files + tuning_meta.json). A log
fits a model when its meta names the model's key (folder `<key>`, or `<key>@<anything>` for a second
log of the same kernels tuned on another CPU); failing that, the log whose records cover most of the
model's conv/dense kernels, if at least half. When several fit, the one tuned on the closest CPU wins:
same LLVM mcpu > a kin core (KIN_CORES: one core lineage) > any other CPU > a log that records no CPU at all,
closest cache sizes first within each. The build's default applies the chosen log only when it was tuned on
the same or a kin core (`tuned_elsewhere`).

Light on purpose: no TVM at import time (`tvmdeploy zoo` uses it); `cpu_record` asks TVM for the LLVM
CPU name lazily. `find_database_for_tasks` is the build's lookup (compile/pipeline.py, `--tuning-log shipped`).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tvmdeploy.compile.tuning.database import RECORD_FILE, WORKLOAD_FILE, read_meta
from tvmdeploy.compile.tuning.tasks import describe_tasks, model_key
from tvmdeploy.runtime.cpu_check import host_cpu_info

if TYPE_CHECKING:
    from tvmdeploy.targets import TargetProfile

TUNED_ON = "tuned_on"  # the meta field holding cpu_record()
MIN_COVER = 0.5
FOREIGN_RANK = 2  # closeness rank from which a log was tuned on another CPU kind (neither the same mcpu nor a kin core)
X86_PROFILES = ("x86-avx512", "x86-avx2")  # fastest first: the shipped logs a host is offered

log = logging.getLogger(__name__)

_WORKLOAD_HASH = re.compile(r'\s*\[\s*"?(-?\d+)"?\s*,')
_RECORD_INDEX = re.compile(r"\s*\[\s*(\d+)\s*,")
_CACHES = ("l1d_bytes", "l2_bytes", "l3_bytes")


def default_logs_root() -> Path:
    """`tuning_logs/` of the source tree (shipped databases live there)."""
    return Path(__file__).resolve().parents[2] / "tuning_logs"


def cpu_record() -> dict:
    """This host's CPU for a log's tuning_meta.json (`tuned_on`): host_cpu_info plus LLVM's name for it."""
    try:
        from tvm.target.codegen import llvm_get_system_cpu

        mcpu = str(llvm_get_system_cpu())
    except Exception as exc:  # a TVM built without LLVM: the record is still useful without mcpu
        log.debug("LLVM system CPU unknown: %s", exc)
        mcpu = None
    return host_cpu_info(mcpu)


def log_workloads(folder: Path) -> set[str]:
    """Structural hashes (16 hex digits, as TaskInfo.shash) of the workloads that have a record in the log.

    Reads only the start of each line (the workload lines are megabytes of TIR)."""
    folder = Path(folder)
    try:
        workload_lines = (folder / WORKLOAD_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
        record_lines = (folder / RECORD_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return set()
    hashes = []
    for line in workload_lines:
        if line.strip():
            match = _WORKLOAD_HASH.match(line[:64])
            hashes.append(f"{int(match.group(1)) & 0xFFFFFFFFFFFFFFFF:016x}" if match else None)
    used = {int(m.group(1)) for line in record_lines if (m := _RECORD_INDEX.match(line[:32]))}
    return {hashes[i] for i in used if i < len(hashes) and hashes[i]}


def _key_of(folder: Path) -> str:
    return str(read_meta(folder).get("model_key") or folder.name.split("@")[0])


def _logs(base: Path) -> list[Path]:
    base = Path(base)
    return sorted(p for p in base.iterdir() if (p / RECORD_FILE).is_file()) if base.is_dir() else []


def host_profiles(names: tuple[str, ...] = X86_PROFILES) -> list[str]:
    """The profiles of `names` whose code runs on this machine, in the given (fastest-first) order."""
    from tvmdeploy.targets import load_profile

    return [name for name in names if load_profile(name).runs_on_this_machine]


# ---- how close a log's CPU is to this host's -------------------------------------------------------------

# Cores of one lineage, by LLVM's host CPU name (`llvm_get_system_cpu`): a log tuned on one serves the others
# (rank 1). A schedule's records pick register tiles and L1/L2 blocking for a core's vector units and caches;
# vendor and family say nothing of that (every Intel Core and Xeon since 2006 is family 6), so a log tuned on
# an Emerald Rapids lost to the default schedules on an Ice Lake where the Rocket Lake log beat them
# (docs/benchmarks.md, "Log choice by core microarchitecture"). Grouped from the vendors' public descriptions
# of the cores, not measured pair by pair; an mcpu in no group is kin only to itself. Why each group:
KIN_CORES: dict[str, tuple[str, ...]] = {
    # Sunny Cove (Ice Lake), Willow Cove (Tiger Lake: Sunny Cove with a 1.25 MiB L2), Cypress Cove (Rocket Lake:
    # Sunny Cove back-ported to 14 nm): one core, 48 KiB L1d, AVX-512 (most Ice Lake Xeons add a second 512-bit FMA).
    "Sunny Cove": ("icelake-client", "icelake-server", "tigerlake", "rocketlake"),
    # Golden Cove (Alder Lake P-cores, Sapphire Rapids), Raptor Cove (Raptor Lake, Emerald Rapids: Golden Cove with
    # a 2 MiB L2) and Redwood Cove (Meteor Lake P-cores, Granite Rapids): Intel's tweak of Golden Cove (64 KiB L1i,
    # prefetch, AMX-FP16) keeping the 48 KiB L1d, 2 MiB L2 (server), decode width and FMA ports: kin too. The
    # hybrid clients have no AVX-512 (only their x86-avx2 logs cross); LLVM names them by the P-core.
    "Golden Cove": (
        "alderlake",
        "raptorlake",
        "meteorlake",
        "sapphirerapids",
        "emeraldrapids",
        "graniterapids",
        "graniterapids-d",
    ),
    # Lion Cove (Arrow Lake, Lunar Lake): a new core (L0/L1/L2 data caches, no SMT), kin to no Golden Cove.
    "Lion Cove": ("arrowlake", "arrowlake-s", "lunarlake"),
    # Skylake-SP, Cascade Lake (+VNNI), Cooper Lake (+BF16): one server core, 1 MiB L2, two 512-bit FMAs. Client
    # Skylake (256 KiB L2, no AVX-512) is not in it; LLVM names Kaby/Coffee/Comet Lake `skylake` already (rank 0).
    "Skylake server": ("skylake-avx512", "skx", "cascadelake", "cooperlake"),
    # Broadwell is Haswell shrunk to 14 nm.
    "Haswell": ("haswell", "broadwell"),
    # Zen 4 is Zen 3 with a 1 MiB L2 (was 512 KiB) and AVX-512 run on the same two 256-bit FMA pipes (two passes),
    # same 32 KiB L1d and 32 MiB L3 per CCD: the same FP32 work per cycle. Zen 5 (znver5) is a new core (full
    # 512-bit datapaths, 48 KiB L1d, wider dispatch) and Zen 2 (znver2) an older one: kin to neither.
    "Zen 3/Zen 4": ("znver3", "znver4"),
}
_KIN_OF = {mcpu: group for group, members in KIN_CORES.items() for mcpu in members}


def _cache_distance(tuned_on: dict, host: dict) -> float:
    """Sum over L1d/L2/L3 of |log2(size ratio)|; a size unknown on either side counts as 4 (16x)."""
    total = 0.0
    for name in _CACHES:
        a, b = tuned_on.get(name), host.get(name)
        total += abs(math.log2(a / b)) if a and b else 4.0
    return total


def _mib(size: int | None) -> str:
    if not size:
        return "?"
    return f"{size // 1024} KiB" if size < 1024**2 else f"{size / 1024**2:g} MiB"


def closeness(tuned_on: dict | None, host: dict) -> tuple[tuple[int, float], str]:
    """(sort key, smaller is closer; why) for a log tuned on `tuned_on` used on `host` (host_cpu_info dicts).

    Rank 0: the same LLVM mcpu (where either side lacks it: the same vendor, family and model number); 1: a kin
    core (KIN_CORES; needs both mcpus); FOREIGN_RANK: any other CPU; 4: the log records no CPU. Then cache sizes."""
    if not tuned_on:
        return (4, 0.0), "the log records no CPU"
    caches = _cache_distance(tuned_on, host)
    cpu = f"{tuned_on.get('model_name') or tuned_on.get('vendor') or '?'}"
    mcpu, host_mcpu = tuned_on.get("mcpu"), host.get("mcpu")
    if mcpu and mcpu == host_mcpu:
        return (0, caches), f"tuned on the same CPU kind (mcpu {mcpu}, {cpu})"
    ids = ("vendor", "family", "model")
    if not (mcpu and host_mcpu) and all(tuned_on.get(k) and tuned_on.get(k) == host.get(k) for k in ids):
        return (0, caches), (
            f"tuned on the same CPU model ({tuned_on['vendor']} family {tuned_on['family']} model {tuned_on['model']}: {cpu})"
        )
    group = _KIN_OF.get(mcpu or "")
    if group and group == _KIN_OF.get(host_mcpu or ""):
        return (1, caches), f"tuned on a kin core ({group}: mcpu {mcpu}, {cpu})"
    sizes = "/".join(_mib(tuned_on.get(n)) for n in _CACHES)
    known = any(tuned_on.get(n) for n in _CACHES)
    return (FOREIGN_RANK, caches), f"tuned on {cpu} (mcpu {mcpu or '?'})" + (f", closest caches L1d/L2/L3 {sizes}" if known else "")


def tuned_elsewhere(tuned_on: dict | None, host: dict) -> str | None:
    """Why a log tuned on `tuned_on` counts as tuned on another CPU kind than `host` (neither the same LLVM mcpu
    nor a kin core, KIN_CORES), or None: the same or a kin core, or a log that records no CPU (not judged).

    The build's default (`auto`) leaves such a log out: its records were ranked by another core's timings and
    lost to the default schedules on the other cores measured (docs/benchmarks.md: session 5, issue 22)."""
    if not tuned_on:
        return None
    (rank, _), why = closeness(tuned_on, host)
    return why if rank >= FOREIGN_RANK else None


def left_out_by_auto(folder: Path | None, host: dict | None = None) -> str | None:
    """Why `--tuning-log auto` leaves the fitting log `folder` out (tuned_elsewhere), or None to apply it."""
    if folder is None:
        return None
    return tuned_elsewhere(read_meta(folder).get(TUNED_ON), cpu_record() if host is None else host)


def choose_log(candidates: list[Path], host: dict) -> tuple[Path, str]:
    """The candidate log tuned on the CPU closest to `host` (host_cpu_info / cpu_record), and why.

    Ties keep the candidates' order. Raises ValueError on an empty list."""
    if not candidates:
        raise ValueError("choose_log needs at least one candidate")
    ranked = sorted(
        ((closeness(read_meta(c).get(TUNED_ON), host), n, Path(c)) for n, c in enumerate(candidates)),
        key=lambda item: (item[0][0], item[1]),
    )
    (_, why), _, best = ranked[0]
    if len(candidates) == 1:
        return best, f"the only log that fits; {why}"
    return best, f"closest of {len(candidates)} fitting logs: {why}"


# ---- which logs fit a model ------------------------------------------------------------------------------


def fitting_logs(base: Path, key: str, wanted: set[str]) -> tuple[list[Path], str]:
    """(logs, how they fit) under `base` = tuning_logs/<profile>: those with the model's key, else those
    covering the largest share (>= MIN_COVER) of `wanted` (the model's conv/dense task hashes)."""
    logs = _logs(base)
    same = [p for p in logs if _key_of(p) == key]
    if same:
        return same, f"model key {key}"
    if not wanted:
        return [], ""
    cover = {p: len(wanted & log_workloads(p)) / len(wanted) for p in logs}
    best = max(cover.values(), default=0.0)
    if best < MIN_COVER:
        return [], ""
    return [p for p in logs if cover[p] == best], f"{round(best * len(wanted))}/{len(wanted)} conv/dense kernels"


def find_log(base: Path, key: str, wanted: set[str], host: dict | None = None) -> Path | None:
    """The log the build should use for a model (see the module doc), logging which and why."""
    logs, fit = fitting_logs(base, key, wanted)
    if not logs:
        return None
    host = cpu_record() if host is None else host
    chosen, why = choose_log(logs, host)
    level = logging.WARNING if len(logs) > 1 and closeness(read_meta(chosen).get(TUNED_ON), host)[0][0] > 0 else logging.INFO
    log.log(level, "tuning log %s (%s): %s", chosen, fit, why)
    return chosen


def find_database_for_tasks(tasks: list, profile: TargetProfile, root: Path | None = None) -> Path | None:
    """The tuned database folder for these extracted tasks under `root/<profile>/` (default: the shipped logs), if any.

    The folders with the module's own key win (`<key>`, `<key>@<mcpu>` when tuned on several CPUs);
    otherwise those whose recorded workloads cover the most of the module's conv/dense kernels, if at
    least half (records apply per workload). Of several, the one tuned on the CPU closest to this one.
    """
    infos = describe_tasks(tasks)
    base = (root or default_logs_root()) / profile.name
    return find_log(base, model_key(infos), {i.shash for i in infos if i.op_class != "other"})


class LogWord(str, enum.Enum):
    """How `--tuning-log` / `tuning_log=` finds a database when it names no folder."""

    AUTO = "auto"  # the shipped log that fits the model, when tuned on this or a kin core (left_out_by_auto)
    SHIPPED = "shipped"  # that log whatever CPU it was tuned on
    DEFAULTS = "defaults"  # no log: the default schedules only
    NONE = "none"  # no log and no default schedules: TVM's raw lowering (for comparison)


@dataclass(frozen=True)
class LogChoice:
    """The tuning log a build applies: a database folder, or a LogWord. Parsed once (`of`), resolved once
    (`resolve`): build, compile_relax and the dev benchmarks share both."""

    word: LogWord | None = LogWord.AUTO
    folder: Path | None = None  # when `word` is None

    @classmethod
    def of(cls, value: LogChoice | LogWord | str | os.PathLike | None) -> LogChoice:
        """A choice from what a caller passes: a word, a folder (a path object is always a folder, even one named
        like a word), or None (the API's "no log": the default schedules)."""
        if isinstance(value, LogChoice):
            return value
        if value is None:
            return cls(LogWord.DEFAULTS)
        if isinstance(value, LogWord) or (isinstance(value, str) and value in LogWord._value2member_map_):
            return cls(LogWord(value))
        return cls(None, Path(value))

    @property
    def default_schedules(self) -> bool:
        """Whether the kernels no record covers get the default rules (all but NONE)."""
        return self.word is not LogWord.NONE

    @property
    def looks_up(self) -> bool:
        """Whether the database is found among the shipped logs (AUTO, SHIPPED)."""
        return self.word in (LogWord.AUTO, LogWord.SHIPPED)

    def __str__(self) -> str:
        return str(self.folder) if self.word is None else self.word.value

    def resolve(self, tasks: list, profile: TargetProfile, root: Path | None = None) -> tuple[Path | None, str]:
        """(the database folder to apply or None, why AUTO applied none although a shipped log fits). `tasks`: the
        model's tuning tasks, as compile_relax extracts them (only AUTO and SHIPPED read them)."""
        if self.word is None:
            return self.folder, ""
        if not self.looks_up:
            return None, ""
        database = find_database_for_tasks(tasks, profile, root)
        elsewhere = left_out_by_auto(database) if self.word is LogWord.AUTO else None
        if elsewhere:
            return None, (
                f"shipped log {database.name} left out: {elsewhere}, another CPU kind than this one; "
                f"default schedules instead (`--tuning-log {LogWord.SHIPPED.value}` applies it)"
            )
        return database, ""
