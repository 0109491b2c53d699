"""Class-label tables: shipped ones (ImageNet-1k, runtime/data/*.tsv) and "index" (class 0..N-1, any class count)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError

_DATA_DIR = Path(__file__).resolve().parent / "data"
# labels_id -> (file under data/, expected number of classes). The id is what manifests store.
_TABLES: dict[str, tuple[str, int]] = {"imagenet1k": ("imagenet1k_classes.tsv", 1000)}
_HEADER = ["index", "wnid", "name"]
# Generic labels for a classifier of any other class count: "class 0" .. "class N-1", no WordNet ids.
INDEX_LABELS = "index"


@dataclass(frozen=True)
class Labels:
    """One label table: `names[i]` and `wnids[i]` describe output index i of the classifier."""

    labels_id: str
    names: tuple[str, ...]
    wnids: tuple[str, ...]
    _wnid_to_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.wnids):
            raise ValueError("names and wnids differ in length")
        if not self._wnid_to_index:
            object.__setattr__(self, "_wnid_to_index", {w: i for i, w in enumerate(self.wnids) if w})

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index_of_wnid(self, wnid: str) -> int:
        try:
            return self._wnid_to_index[wnid]
        except KeyError:
            raise TvmDeployError(f"unknown WordNet id {wnid!r} for labels {self.labels_id!r}") from None

    def name(self, index: int) -> str:
        if not 0 <= index < len(self.names):
            raise TvmDeployError(f"class index {index} out of range 0..{len(self.names) - 1} for labels {self.labels_id!r}")
        return self.names[index]


def available_labels() -> list[str]:
    return sorted([*_TABLES, INDEX_LABELS])


def table_classes(labels_id: str) -> int | None:
    """How many classes a shipped table has (None for INDEX_LABELS, which fits any count)."""
    if labels_id == INDEX_LABELS:
        return None
    if labels_id not in _TABLES:
        raise TvmDeployError(f"unknown labels id {labels_id!r}; available: {', '.join(available_labels())}")
    return _TABLES[labels_id][1]


def load_labels(labels_id: str = "imagenet1k", num_classes: int | None = None) -> Labels:
    """Load and validate a label table (cached: tables are immutable).

    `num_classes` (the model's output count) is required for INDEX_LABELS and checked against a shipped table.
    """
    expected = table_classes(labels_id)
    if expected is None:
        if num_classes is None or num_classes < 1:
            raise TvmDeployError(f"labels {INDEX_LABELS!r} need the model's class count, got {num_classes!r}")
        return _index_labels(int(num_classes))
    if num_classes is not None and num_classes != expected:
        raise TvmDeployError(f"labels {labels_id!r} have {expected} classes but the model outputs {num_classes}")
    return _load_cached(labels_id)


@functools.lru_cache(maxsize=8)
def _index_labels(num_classes: int) -> Labels:
    return Labels(INDEX_LABELS, tuple(f"class {i}" for i in range(num_classes)), ("",) * num_classes)


@functools.lru_cache(maxsize=None)
def _load_cached(labels_id: str) -> Labels:
    if labels_id not in _TABLES:
        raise TvmDeployError(f"unknown labels id {labels_id!r}; available: {', '.join(available_labels())}")
    filename, expected = _TABLES[labels_id]
    path = _DATA_DIR / filename
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        # Only a broken install gets here; say which file so it can be reinstalled.
        raise TvmDeployError(f"cannot read label table {path}: {exc.strerror or exc}") from None
    return _parse_table(labels_id, path, text, expected)


def _parse_table(labels_id: str, path: Path, text: str, expected: int) -> Labels:
    lines = text.splitlines()
    if not lines or lines[0].split("\t") != _HEADER:
        raise TvmDeployError(f"label table {path} lacks the header {' '.join(_HEADER)!r}")
    names: list[str] = []
    wnids: list[str] = []
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 3 or parts[0] != str(len(names)):
            raise TvmDeployError(f"label table {path} line {lineno}: expected '{len(names)}<TAB>wnid<TAB>name'")
        wnids.append(parts[1])
        names.append(parts[2])
    if len(names) != expected or len(set(wnids)) != expected:
        raise TvmDeployError(f"label table {path}: expected {expected} unique classes, found {len(names)} rows")
    return Labels(labels_id=labels_id, names=tuple(names), wnids=tuple(wnids))
