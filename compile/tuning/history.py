"""The search's tuning history: estimated latency vs trials and time, appended to logs/progress.csv as batches finish."""

from __future__ import annotations

from pathlib import Path

from tvmdeploy.compile.tuning.database import PROGRESS_FILE


class HistoryWriter:
    """Tuner-estimated latency vs trials and time, one line per measured batch, appended as batches finish
    (logs/progress.csv: elapsed s since the first search on this database began, search trials, estimated ms;
    for docs/benchmarks). A resumed search continues the clock where the file ends; a new database starts a new
    file (one left by a deleted database would otherwise prefix its curve)."""

    def __init__(self, folder: Path, resume: bool) -> None:
        self.path = folder / PROGRESS_FILE
        self.written = 0
        self.offset = 0.0
        if not resume:
            self.path.unlink(missing_ok=True)
        elif self.path.is_file():
            lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
            try:
                self.offset = float(lines[-1].split(",")[0]) if lines else 0.0
            except ValueError:  # a damaged last line: the curve restarts its clock, nothing else depends on it
                self.offset = 0.0

    def write(self, rows: list) -> None:
        if len(rows) <= self.written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for elapsed, trials, est in rows[self.written :]:
                handle.write(f"{self.offset + elapsed:.1f},{trials},{'' if est is None else f'{est:.4f}'}\n")
        self.written = len(rows)
