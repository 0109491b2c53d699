"""Ship a log: the records a build will apply, out of a tuning history, with its meta (`tune --export-best`, tune_card)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tvmdeploy.compile.tuning.database import META_FILE, export_best
from tvmdeploy.targets import TargetProfile


@dataclass(frozen=True)
class ShippedLog:
    folder: Path
    records: int  # one per task
    reranked: Any = None  # the RerankResult when the records were chosen in the network (`rerank`), else None


def ship_log(
    model: Path,
    profile: TargetProfile,
    history: Path,
    destination: Path,
    *,
    rerank: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ShippedLog:
    """Write to `destination` the best record of every task of the `history` database, or, with `rerank` K, the
    fastest of each task's K best timed inside the built network (compile/tuning/rerank.py), and the history's
    tuning_meta.json (its model key and `tuned_on`, which the log choice reads)."""
    reranked = None
    if rerank:
        from tvmdeploy.compile.tuning.rerank import rerank_in_network

        reranked = rerank_in_network(model, profile, history, destination, top_k=rerank, progress=progress)
        records = reranked.records
    else:
        records = export_best(history, destination)
    shutil.copyfile(Path(history) / META_FILE, Path(destination) / META_FILE)
    return ShippedLog(Path(destination), records, reranked)
