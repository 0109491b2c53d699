"""Classify image files with a loaded artifact, streaming: decode and infer a few images at a time.

Memory stays flat however many images are given (at most one artifact batch of decoded images is
held), and an unreadable file is reported with its reason instead of stopping the others.
Board-safe: numpy, Pillow and our runtime only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.postprocess import Prediction, softmax, topk
from tvmdeploy.runtime.preprocess import IMAGE_SUFFIXES, PreprocessConfig, is_image_file, load_image, preprocess_pil


@dataclass
class Classified:
    """One input (a file, or an in-memory PIL image: `path` None): its top-k predictions, or why it could not be read."""

    path: Path | None
    top: list[Prediction] | None = None
    error: str = ""
    position: int = 0  # index among the inputs (names an in-memory image in messages)
    logits: np.ndarray | None = field(default=None, repr=False, compare=False)  # its raw output row, when readable

    @property
    def ok(self) -> bool:
        return self.top is not None


def folder_images(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted by name (what a folder argument means everywhere)."""
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def expand_image_paths(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; a folder becomes its image files (sorted by name, not recursive).

    A missing or bad file stays in the list: it is reported when classified. A folder without any
    image is a usage error.
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = folder_images(path)
            if not found:
                raise TvmDeployError(f"{path}: no images found (expected {', '.join(sorted(IMAGE_SUFFIXES))} files)")
            paths += found
        else:
            paths.append(path)
    if not paths:
        raise TvmDeployError("no images given")
    return paths


def classify_files(
    run_images: Callable[[np.ndarray], np.ndarray],
    paths: Sequence[str | os.PathLike[str] | Image.Image],
    config: PreprocessConfig,
    *,
    batch_size: int,
    k: int,
    labels: Sequence[str] | None = None,
) -> Iterator[Classified]:
    """Yield one Classified per path (or PIL image), in input order, decoding at most `batch_size` images ahead.

    `run_images([n, ...])` returns [n, classes] logits (an artifact module's `run_images`, which pads
    a short batch); use the artifact's batch as `batch_size`.
    """
    if batch_size < 1:
        raise TvmDeployError(f"batch size must be >= 1, got {batch_size}")
    pending: list[Classified] = []
    arrays: list[np.ndarray] = []

    def flush() -> Iterator[Classified]:
        if arrays:
            logits = run_images(np.stack(arrays))
            predictions = iter(zip(topk(softmax(logits), k, labels), logits))
            for item in pending:
                if item.error == "":
                    item.top, item.logits = next(predictions)
        yield from pending
        pending.clear()
        arrays.clear()

    for position, item in enumerate(paths):
        path = None if isinstance(item, Image.Image) else Path(item)
        try:
            arrays.append(load_image(path, config) if path is not None else preprocess_pil(cast(Image.Image, item), config))
            pending.append(Classified(path, position=position))
        except TvmDeployError as exc:
            pending.append(Classified(path, error=str(exc), position=position))
        if len(arrays) == batch_size:
            yield from flush()
    yield from flush()


def describe_failure(item: Classified) -> str:
    """`PATH: reason`, without naming the file twice when the reason already does."""
    if item.path is None:
        return f"image #{item.position}: {item.error}"
    return item.error if str(item.path) in item.error else f"{item.path}: {item.error}"


# ---- reporting one classified input (`tvmdeploy run` and the runtime-only bundle print the same) ----------


def to_record(item: Classified) -> dict:
    """The JSON record of one input: {"image", "top": [{"index", "label", "probability"}, ...]} or {"image", "error"}."""
    if not item.ok:
        return {"image": str(item.path), "error": item.error}
    return {"image": str(item.path), "top": [{"index": p.index, "label": p.label, "probability": p.probability} for p in item.top or []]}


def prediction_lines(item: Classified) -> list[str]:
    """The text of one classified input: `PATH:`, then one `  RANK. PERCENT%  LABEL (class INDEX)` line per class."""
    return [f"{item.path}:"] + [
        f"  {rank}. {p.probability * 100:6.2f}%  {p.label} (class {p.index})" for rank, p in enumerate(item.top or [], 1)
    ]


def unreadable_summary(failed: int, total: int) -> str:
    """The closing line when some inputs could not be read (each was listed with `describe_failure`)."""
    return f"{failed} of {total} image(s) could not be read (listed above); the others were classified"


def weights_caveat(weights: str) -> str:
    """The warning to show with predictions of an artifact built with random weights (a manifest's `weights`), else ''."""
    return f"weights are random ({weights}): class names are meaningless" if weights.startswith("random") else ""
