"""Resumable MetaSchedule JSON database: corrupt lines reported and skipped, known candidates not re-recorded."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import functools
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvmdeploy.runtime.errors import TvmDeployError

log = logging.getLogger(__name__)

# Same file names and line format as MetaSchedule's own JSONDatabase, so either can read the folder.
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
REJECTED_FILE = "database_rejected.txt"
# A tuning history kept in the repository: its JSON files in one xz archive (MetaSchedule traces repeat
# themselves: 36 MB of records pack into 140 KB). `tune` unpacks it to resume; tools/dev/tune_card.py packs it.
HISTORY_ARCHIVE = "history.tar.xz"
PROGRESS_FILE = "logs/progress.csv"  # the search's trials over time (history.HistoryWriter), packed with the history
LOCK_FILE = ".tvmdeploy-writer.lock"  # not *.json: never part of the database hash or of an export
# Ours, next to MetaSchedule's files: the model key, profile, pipeline version, tasks and CPU of the tuning run.
META_FILE = "tuning_meta.json"


@dataclass
class ScanResult:
    """What the files hold: parsed workload and record lines, and one message per skipped line."""

    workloads: list[Any] = field(default_factory=list)  # JSON of each valid workload, in file order
    records: list[tuple[int, Any]] = field(default_factory=list)  # (index into `workloads`, record JSON)
    problems: list[str] = field(default_factory=list)
    rejected_lines: list[str] = field(default_factory=list)


def read_meta(folder: Path) -> dict:
    """A database folder's META_FILE, or the one packed in its HISTORY_ARCHIVE ({} when absent or unreadable)."""
    import tarfile

    path = Path(folder) / META_FILE
    try:
        if path.exists() or not (Path(folder) / HISTORY_ARCHIVE).is_file():
            text = path.read_text(encoding="utf-8")
        else:
            with tarfile.open(Path(folder) / HISTORY_ARCHIVE, "r:xz") as archive:
                text = archive.extractfile(META_FILE).read().decode("utf-8")
        meta = json.loads(text)
    except (OSError, ValueError, KeyError, AttributeError, tarfile.TarError, EOFError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    # errors="replace": a torn multi-byte write must be reported as a bad line, not crash the load.
    return path.read_text(encoding="utf-8", errors="replace").split("\n")


def scan(folder: Path) -> ScanResult:
    """Parse both files line by line; a line that is not valid is reported with its number and skipped."""
    result = ScanResult()
    remap: dict[int, int] = {}  # workload line index (as records refer to it) -> index in result
    lines = _read_lines(folder / WORKLOAD_FILE)
    index = -1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        index += 1
        try:
            value = json.loads(line)
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
                raise ValueError("expected [hash, module]")
        except ValueError as exc:
            result.problems.append(f"{folder / WORKLOAD_FILE}:{number}: corrupt workload line skipped ({exc})")
            result.rejected_lines.append(f"{WORKLOAD_FILE}:{number}: {line}")
            continue
        remap[index] = len(result.workloads)
        result.workloads.append(value)
    for number, line in enumerate(_read_lines(folder / RECORD_FILE), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], list)):
                raise ValueError("expected [workload index, record]")
            if value[0] not in remap:
                raise ValueError(f"refers to missing workload #{value[0]}")
        except ValueError as exc:
            result.problems.append(f"{folder / RECORD_FILE}:{number}: corrupt record line skipped ({exc})")
            result.rejected_lines.append(f"{RECORD_FILE}:{number}: {line}")
            continue
        result.records.append((remap[value[0]], value[1]))
    return result


def _rewrite_clean(folder: Path, scanned: ScanResult, into: Path | None = None) -> None:
    """Write the files without the reported lines (atomically); the originals' bad lines go to REJECTED_FILE."""
    target = into or folder
    target.mkdir(parents=True, exist_ok=True)
    if into is None:
        with open(folder / REJECTED_FILE, "a", encoding="utf-8") as rejected:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for line in scanned.rejected_lines:
                rejected.write(f"[{stamp}] {line}\n")
        scanned.rejected_lines = []  # set aside once, however often the folder is rewritten
    for name, rows in (
        (WORKLOAD_FILE, scanned.workloads),
        (RECORD_FILE, [[index, record] for index, record in scanned.records]),
    ):
        tmp = target / (name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target / name)


def report_problems(problems: list[str]) -> None:
    """Log each problem found in a database folder as a warning (the CLI shows warnings)."""
    for problem in problems:
        log.warning("warning: %s", problem)


def _json_database(folder: Path):
    from tvm.s_tir import meta_schedule as ms

    try:
        return ms.database.JSONDatabase(work_dir=str(folder), allow_missing=True)
    except Exception as exc:  # valid JSON that TVM cannot parse (e.g. a log from another TVM version)
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise TvmDeployError(f"tuning log {folder} cannot be loaded by this TVM: {first}") from None


def open_database(folder: Path, *, readonly: bool = False, quiet: bool = False):
    """Load a tuning-log folder as a MetaSchedule database after checking every line.

    Corrupt lines (e.g. the torn last line of a killed run) are reported with their line number and
    skipped, as are records whose schedule does not replay on their workload (TVM would refuse the
    whole folder for one of them). `readonly` (build) never touches the folder: a cleaned copy is loaded
    instead. Otherwise the files are rewritten without them, so that appends never follow a torn line,
    and the result is a ResumableDatabase that drops re-measurements of a known candidate.
    """
    folder = Path(folder)
    if readonly and not (folder / RECORD_FILE).exists():
        raise TvmDeployError(f"tuning log folder {folder} has no {RECORD_FILE}")
    scanned = scan(folder)
    try:
        database = _load(folder, scanned, readonly)
    except TvmDeployError:
        if not _set_aside_unreplayable(scanned):
            raise
        database = None
    if not quiet:
        report_problems(scanned.problems)
    return database if database is not None else _load(folder, scanned, readonly)


def _load(folder: Path, scanned: ScanResult, readonly: bool):
    import tempfile

    if readonly:
        if scanned.problems:
            clean = Path(tempfile.mkdtemp(prefix="tvmdeploy-db-"))
            _rewrite_clean(folder, scanned, into=clean)
            return _json_database(clean)
        return _json_database(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if scanned.problems:
        _rewrite_clean(folder, scanned)
    return _make_resumable(_json_database(folder))


def _set_aside_unreplayable(scanned: ScanResult) -> bool:
    """Drop from `scanned` the records TVM cannot load (a trace naming blocks its workload lacks); True if any.

    When none loads, nothing is dropped: the folder is not for this TVM, and the caller says so."""
    from tvm.s_tir import meta_schedule as ms

    workloads: dict[int, Any] = {}
    kept, problems, rejected = [], [], []
    for number, (index, record) in enumerate(scanned.records, start=1):
        try:
            if index not in workloads:
                workloads[index] = ms.database.Workload.from_json(scanned.workloads[index])
            ms.database.TuningRecord.from_json(record, workloads[index])
        except Exception:  # noqa: BLE001 - whatever TVM raises (its message is often "(not rendered)")
            problems.append(
                f"{RECORD_FILE}: valid record #{number} skipped: its schedule does not replay on its "
                "workload (it names a block or loop the kernel lacks)"
            )
            rejected.append(f"{RECORD_FILE}: {json.dumps([index, record], separators=(',', ':'))}")
            continue
        kept.append((index, record))
    if not kept or not problems:
        return False
    scanned.records = kept
    scanned.problems += problems
    scanned.rejected_lines += rejected
    return True


def _workload_key(mod) -> int:
    import tvm_ffi

    return int(tvm_ffi.structural_hash(mod))


@functools.cache
def delegating_database_base():
    """A MetaSchedule PyDatabase forwarding every call to `self.inner`: subclass it, decorate the subclass
    with `tvm.ir.utils.derived_object`, and override only what differs."""
    from tvm.s_tir import meta_schedule as ms

    class DelegatingDatabase(ms.database.PyDatabase):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def has_workload(self, mod) -> bool:
            return self.inner.has_workload(mod)

        def commit_workload(self, mod):
            return self.inner.commit_workload(mod)

        def commit_tuning_record(self, record) -> None:
            self.inner.commit_tuning_record(record)

        def get_top_k(self, workload, top_k: int):
            return self.inner.get_top_k(workload, top_k)

        def get_all_tuning_records(self):
            return self.inner.get_all_tuning_records()

        def query_tuning_record(self, mod, target, workload_name=None):
            return self.inner.query_tuning_record(mod, target, workload_name)

        def query_schedule(self, mod, target, workload_name=None):
            return self.inner.query_schedule(mod, target, workload_name)

        def query_ir_module(self, mod, target, workload_name=None):
            return self.inner.query_ir_module(mod, target, workload_name)

        def __len__(self) -> int:
            return len(self.inner)

    return DelegatingDatabase


def _make_resumable(inner):
    from tvm.ir.utils import derived_object

    @derived_object
    class ResumableDatabase(delegating_database_base()):
        """MetaSchedule's JSONDatabase (it appends each record to the file as it is committed), plus
        bookkeeping: measured candidates per workload, and no second record for a known candidate."""

        def __init__(self, inner) -> None:
            super().__init__(inner)
            self.keys: set[tuple[int, str]] = set()
            self.counts: dict[int, int] = {}
            self.duplicates = 0
            for record in inner.get_all_tuning_records():
                self._remember(record)

        def _remember(self, record) -> bool:
            # The printed trace includes every sampling decision: it identifies the candidate.
            key = (_workload_key(record.workload.mod), str(record.trace))
            if key in self.keys:
                return False
            self.keys.add(key)
            self.counts[key[0]] = self.counts.get(key[0], 0) + 1
            return True

        def commit_tuning_record(self, record) -> None:
            if not self._remember(record):
                self.duplicates += 1
                return
            self.inner.commit_tuning_record(record)

        def measured(self, mod) -> int:
            """How many distinct candidates were measured for this workload."""
            return self.counts.get(_workload_key(mod), 0)

        def has_trace(self, mod, trace) -> bool:
            """Whether this exact candidate (workload + trace with decisions) was measured before."""
            return (_workload_key(mod), str(trace)) in self.keys

    return ResumableDatabase(inner)


def mean_seconds(run_secs) -> float:
    """Mean of one candidate's measured repeats (MetaSchedule keeps them as a list of FloatImm)."""
    secs = [float(s) for s in run_secs]
    return sum(secs) / len(secs)


def require_no_database(destination: Path) -> None:
    """Exports write fresh databases: never append to (or mix into) one that is already there."""
    if (Path(destination) / RECORD_FILE).exists():
        raise TvmDeployError(f"{destination} already holds a database; choose an empty folder")


def export_best(source: Path, destination: Path) -> int:
    """Write the best record of every workload of `source` into a fresh database at `destination`.

    This is what ships under tuning_logs/: the build only ever applies the best record, and the full
    history (thousands of ~12 KB records) stays with whoever tuned. Returns the records written.
    """
    from tvm.s_tir import meta_schedule as ms

    destination = Path(destination)
    require_no_database(destination)
    destination.mkdir(parents=True, exist_ok=True)
    pruned = ms.database.JSONDatabase(work_dir=str(destination), allow_missing=True)
    open_database(Path(source), readonly=True).dump_pruned(pruned)
    return len(pruned)


def lock_holder(folder: Path) -> str:
    """What the current (or last) writer wrote into the lock file: 'PID <pid> on <host>, since <time>: <command>'."""
    try:
        return (Path(folder) / LOCK_FILE).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def lock_database(folder: Path, what: str = "tvmdeploy tune") -> Iterator[Path]:
    """Hold the single-writer lock of a tuning database folder for the duration of the block.

    An advisory `flock` on LOCK_FILE inside the folder: the kernel drops it when the holder exits or
    is killed (SIGKILL included), so a dead writer never leaves the folder stuck, and there is no
    stale-PID guessing. Only writers take it: readers (`open_database(readonly=True)`, the build)
    read the append-only files while a tuner writes. A second writer gets a one-line TvmDeployError
    naming the running one. The lock file stays (removing it would race with a writer opening it).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(folder) or "another process"
            raise TvmDeployError(
                f"tuning database {folder} is being written by {holder}; wait for it to finish or stop it "
                f"(it can be resumed), or use another folder"
            ) from None
        since = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}, since {since}: {what}\n".encode(), 0)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def pack_history(folder: Path) -> Path:
    """Replace the JSON files of a tuning history by one xz archive in the same folder (atomic).

    The search's progress (logs/progress.csv: trials per minute) goes in too, so a fresh checkout can still
    replay the history by minutes of search (`tools/dev/bench_tuned.py --curve 5m,...`); it stays in place.
    """
    import tarfile

    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    if not files:
        raise TvmDeployError(f"{folder} holds no tuning database to pack")
    progress = folder / PROGRESS_FILE
    tmp = folder / (HISTORY_ARCHIVE + ".tmp")
    with tarfile.open(tmp, "w:xz", preset=9) as archive:
        for path in files:
            archive.add(path, arcname=path.name)
        if progress.is_file():
            archive.add(progress, arcname=progress.name)
    os.replace(tmp, folder / HISTORY_ARCHIVE)
    for path in files:
        path.unlink()
    return folder / HISTORY_ARCHIVE


def unpack_history(folder: Path) -> bool:
    """Restore a packed history's JSON files (to resume it); False when the folder has no archive.

    Files already there win: they are newer than the archive (a run that was not packed again yet).
    """
    import tarfile

    archive_path = Path(folder) / HISTORY_ARCHIVE
    if not archive_path.is_file():
        return False
    try:
        with tarfile.open(archive_path, "r:xz") as archive:
            for member in archive.getmembers():
                is_progress = member.name == Path(PROGRESS_FILE).name
                if not member.isfile() or "/" in member.name or not (member.name.endswith(".json") or is_progress):
                    raise TvmDeployError(f"{archive_path}: unexpected entry {member.name!r}; not a tuning history")
                destination = Path(folder) / (Path(PROGRESS_FILE).parent if is_progress else ".")
                if not (destination / member.name).exists():
                    destination.mkdir(parents=True, exist_ok=True)
                    archive.extract(member, destination, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TvmDeployError(f"{archive_path}: corrupt tuning history archive ({exc})") from None
    return True
