"""Top-1/top-5 evaluation: ImageNet-style folder parsing, metrics, and agreement with a reference run.

`evaluate_model` is the whole job (the public `tvmdeploy.evaluate` and `tvmdeploy eval`): open an artifact
(here or over RPC) or an ONNX model, read the folder, run it in batches, return an `EvalResult`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.labels import Labels
from tvmdeploy.runtime.loader import run_padded
from tvmdeploy.runtime.module import DEFAULT_RPC_CALL_TIMEOUT_S, DEFAULT_RPC_TIMEOUT_S
from tvmdeploy.runtime.postprocess import topk_indices
from tvmdeploy.runtime.preprocess import IMAGE_SUFFIXES, is_image_file

if TYPE_CHECKING:
    from tvmdeploy.runtime.rpc import RpcEndpoint

logger = logging.getLogger(__name__)
_WNID = re.compile(r"^n\d{8}$")
_ONNX_BATCH = 8  # images per step of an ONNX model when no batch size is given (an artifact has its own)


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int  # output index of the classifier


@dataclass
class Dataset:
    """The images to evaluate with their ground-truth class indices, and how the folder was read."""

    root: Path
    layout: str  # "synset-folders" or "ground-truth-file"
    items: list[LabelledImage]

    def __len__(self) -> int:
        return len(self.items)


def load_dataset(root: Path, labels: Labels, ground_truth: Path | None = None, num_classes: int | None = None) -> Dataset:
    """Read an image folder: one sub-folder per synset (n01440764/...), or flat images plus a ground-truth file.

    Ground-truth files hold either one class index per line in sorted filename order (ILSVRC2012
    val style, 0-based indices of the model's classes) or `FILE LABEL` lines, LABEL an index or a wnid.
    """
    root = Path(root)
    if not root.is_dir():
        raise TvmDeployError(f"image folder not found: {root}")
    classes = num_classes if num_classes is not None else labels.num_classes
    if ground_truth is not None:
        items = _flat_with_ground_truth(root, Path(ground_truth), labels, classes)
        layout = "ground-truth-file"
    else:
        items = _synset_folders(root, labels, classes)
        layout = "synset-folders"
    if not items:
        raise TvmDeployError(f"{root}: no images found (expected {', '.join(sorted(IMAGE_SUFFIXES))} files)")
    return Dataset(root, layout, items)


def _synset_folders(root: Path, labels: Labels, classes: int) -> list[LabelledImage]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p for p in root.iterdir() if is_image_file(p)]
    if not subdirs:
        if loose:
            raise TvmDeployError(
                f"{root} holds images but no synset sub-folders; pass {arg('ground_truth')} FILE for a flat folder",
                param="ground_truth",
            )
        raise TvmDeployError(f"{root} is empty: expected one sub-folder per synset (n01440764/...) holding images")
    if loose:
        raise TvmDeployError(
            f"{root} mixes synset sub-folders with {len(loose)} loose image(s) (e.g. {loose[0].name}); move them into their synset folder"
        )
    items: list[LabelledImage] = []
    for sub in subdirs:
        if not _WNID.match(sub.name):
            raise TvmDeployError(f"{sub}: sub-folder name is not a WordNet id like n01440764")
        try:
            index = labels.index_of_wnid(sub.name)
        except TvmDeployError:
            raise TvmDeployError(f"{sub}: unknown synset {sub.name!r} for labels {labels.labels_id!r}") from None
        _check_index(index, classes, f"{sub}")
        items += [LabelledImage(p, index) for p in sorted(sub.iterdir()) if is_image_file(p)]
    return items


def _check_index(index: int, classes: int, where: str) -> None:
    if not 0 <= index < classes:
        raise TvmDeployError(f"{where}: label {index} out of range 0..{classes - 1}")


def _parse_label(text: str, labels: Labels, classes: int, where: str) -> int:
    if text.lstrip("-").isdigit():
        index = int(text)
    elif _WNID.match(text):
        try:
            index = labels.index_of_wnid(text)
        except TvmDeployError:
            raise TvmDeployError(f"{where}: unknown synset {text!r}") from None
    else:
        raise TvmDeployError(f"{where}: label {text!r} is neither a class index nor a WordNet id")
    _check_index(index, classes, where)
    return index


def _flat_with_ground_truth(root: Path, gt: Path, labels: Labels, classes: int) -> list[LabelledImage]:
    if not gt.is_file():
        raise TvmDeployError(f"ground-truth file not found: {gt}")
    lines = [(n, line.strip()) for n, line in enumerate(gt.read_text(encoding="utf-8").splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise TvmDeployError(f"{gt} is empty")
    images = sorted((p for p in root.iterdir() if is_image_file(p)), key=lambda p: p.name)
    two_columns = len(lines[0][1].split()) >= 2
    if not two_columns:
        # One index per line, in sorted filename order (ILSVRC2012_validation_ground_truth.txt style).
        if len(lines) != len(images):
            raise TvmDeployError(f"{gt} has {len(lines)} label(s) for {len(images)} image(s) in {root}; the counts must match")
        return [LabelledImage(path, _parse_label(line, labels, classes, f"{gt}:{n}")) for path, (n, line) in zip(images, lines)]
    by_name: dict[str, int] = {}
    for n, line in lines:
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise TvmDeployError(f"{gt}:{n}: expected 'FILE LABEL', got {line!r}")
        name = parts[0]
        if name in by_name:
            raise TvmDeployError(f"{gt}:{n}: {name} is listed twice")
        by_name[name] = _parse_label(parts[1], labels, classes, f"{gt}:{n}")
    present = {p.name: p for p in images}
    missing = sorted(set(by_name) - set(present))
    unlabelled = sorted(set(present) - set(by_name))
    if missing:
        raise TvmDeployError(f"{gt} lists {len(missing)} file(s) not in {root}, e.g. {missing[0]}")
    if unlabelled:
        raise TvmDeployError(f"{len(unlabelled)} image(s) in {root} have no label in {gt}, e.g. {unlabelled[0]}")
    return [LabelledImage(present[name], by_name[name]) for name in sorted(by_name)]


@dataclass
class Metrics:
    """Running top-1/top-5 counts, and agreement with a reference run when one is given."""

    k: int = 5
    count: int = 0
    top1: int = 0
    topk: int = 0
    compared: int = 0
    agree_top1: int = 0
    agree_topk_set: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def update(self, logits: np.ndarray, labels: Sequence[int], reference: np.ndarray | None = None) -> None:
        logits = np.asarray(logits)
        labels_arr = np.asarray(labels, dtype=np.int64)
        if logits.ndim != 2 or len(logits) != len(labels_arr):
            raise TvmDeployError(f"logits shape {list(logits.shape)} does not match {len(labels_arr)} label(s)")
        k = min(self.k, logits.shape[1])
        top = topk_indices(logits, k)
        self.count += len(labels_arr)
        self.top1 += int(np.sum(top[:, 0] == labels_arr))
        self.topk += int(np.sum(np.any(top == labels_arr[:, None], axis=1)))
        if reference is not None:
            ref = topk_indices(np.asarray(reference), k)
            self.compared += len(labels_arr)
            self.agree_top1 += int(np.sum(top[:, 0] == ref[:, 0]))
            # Set agreement: the same k classes, in any order (near-ties may swap ranks legitimately).
            self.agree_topk_set += int(sum(set(a) == set(b) for a, b in zip(top.tolist(), ref.tolist())))

    def add_unreadable(self, path: Path, reason: str) -> None:
        self.unreadable.append((str(path), reason))

    @staticmethod
    def _rate(hits: int, total: int) -> float | None:
        return hits / total if total else None

    def to_dict(self) -> dict:
        return {
            "images": self.count,
            "top1": self._rate(self.top1, self.count),
            f"top{self.k}": self._rate(self.topk, self.count),
            "top1_correct": self.top1,
            f"top{self.k}_correct": self.topk,
            "reference_compared": self.compared,
            "agreement_top1": self._rate(self.agree_top1, self.compared),
            f"agreement_top{self.k}_set": self._rate(self.agree_topk_set, self.compared),
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
        }


def evaluate(
    dataset: Dataset,
    classify: Callable[[np.ndarray], np.ndarray],
    load: Callable[[Path], np.ndarray],
    *,
    batch_size: int,
    reference: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Metrics:
    """Run `classify` (and `reference`) over the dataset in batches; unreadable images are recorded, not fatal
    (not even when none can be read: the caller lists them and decides the exit status).

    `load(path)` returns one preprocessed image and raises TvmDeployError for a bad file;
    `progress(n)` is told after each batch how many images were processed.
    """
    if batch_size < 1:
        raise TvmDeployError(f"batch size must be >= 1, got {batch_size}")
    metrics = Metrics()
    for start in range(0, len(dataset.items), batch_size):
        chunk = dataset.items[start : start + batch_size]
        arrays, labels = [], []
        for item in chunk:
            try:
                arrays.append(load(item.path))
                labels.append(item.label)
            except TvmDeployError as exc:
                metrics.add_unreadable(item.path, str(exc))
        if arrays:
            images = np.stack(arrays).astype(np.float32, copy=False)
            metrics.update(classify(images), labels, reference(images) if reference is not None else None)
        if progress is not None:
            progress(len(chunk))
    if metrics.count == 0:
        logger.warning("%s: none of the %d image(s) could be read", dataset.root, len(dataset))
    return metrics


class OrtClassifier:
    """ONNX Runtime over any number of images, in chunks of the model's fixed batch (padding the last)."""

    def __init__(self, onnx_path: Path, threads: int = 0):
        from tvmdeploy.compile.measure.reference import OrtModel

        self.model = OrtModel(onnx_path, threads=threads)
        dim = self.model.session.get_inputs()[0].shape[0]
        self.batch = dim if isinstance(dim, int) and dim > 0 else None  # None: dynamic batch
        self.version = self.model.version

    def run_images(self, images: np.ndarray) -> np.ndarray:
        if self.batch is None:
            return self.model.run(images)
        return run_padded(self.model.run, images, self.batch, np.zeros((0, 0), np.float32))


@dataclass(frozen=True)
class EvalModel:
    """What an evaluation runs: an artifact folder (TVM, here or over RPC), or an ONNX file (ONNX Runtime, here)."""

    path: Path
    onnx: bool

    @classmethod
    def choose(cls, artifact: str | os.PathLike[str] | None, onnx: str | os.PathLike[str] | None) -> EvalModel:
        """The one of `artifact` and `onnx` that is given; both or neither is an error."""
        if artifact is not None and onnx is None:
            return cls(Path(artifact), onnx=False)
        if onnx is not None and artifact is None:
            return cls(Path(onnx), onnx=True)
        raise TvmDeployError(f"give either an artifact folder or {arg('onnx')} M.onnx (not both)", param="onnx")


@dataclass(frozen=True)
class EvalResult:
    """One evaluation: what ran where on which folder, its metrics, and how long the batches took."""

    model: str  # the model's name (manifest or ONNX metadata)
    runner: str  # where it ran, e.g. "TVM x86-avx2 (local cpu)" or "ONNX Runtime 1.20.1 (host)"
    weights: str  # the weights' origin ("random:seed=0" for an export without a checkpoint)
    folder: Path
    layout: str  # "synset-folders" or "ground-truth-file"
    batch_size: int
    total: int  # images listed (after `limit`), readable or not
    seconds: float  # the batches' wall time, image decoding included
    with_reference: bool  # ONNX Runtime ran on the artifact's model beside it (the agreement_* values)
    metrics: Metrics

    @property
    def images(self) -> int:
        """Images evaluated (the readable ones)."""
        return self.metrics.count

    @property
    def top1(self) -> float | None:
        return Metrics._rate(self.metrics.top1, self.metrics.count)

    @property
    def top5(self) -> float | None:
        return Metrics._rate(self.metrics.topk, self.metrics.count)

    @property
    def agreement_top1(self) -> float | None:
        """Share of images with ONNX Runtime's top-1 (None without a reference run, or with no image read)."""
        return Metrics._rate(self.metrics.agree_top1, self.metrics.compared)

    @property
    def agreement_top5_set(self) -> float | None:
        """Share of images with ONNX Runtime's five classes, in any order."""
        return Metrics._rate(self.metrics.agree_topk_set, self.metrics.compared)

    @property
    def unreadable(self) -> list[tuple[str, str]]:
        """(path, reason) of each image that could not be read; the others were evaluated."""
        return list(self.metrics.unreadable)

    @property
    def images_per_second(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (`tvmdeploy eval --json`)."""
        return {
            "model": self.model,
            "runner": self.runner,
            "weights": self.weights,
            "folder": str(self.folder),
            "layout": self.layout,
            "batch_size": self.batch_size,
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            **self.metrics.to_dict(),
        }


def evaluate_model(
    model: EvalModel,
    images: Path,
    *,
    ground_truth: Path | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    threads: int | None = None,
    reference: bool = False,
    endpoint: RpcEndpoint | None = None,
    timeout_s: float = DEFAULT_RPC_TIMEOUT_S,
    call_timeout_s: float = DEFAULT_RPC_CALL_TIMEOUT_S,
    progress: bool = False,
) -> EvalResult:
    """Top-1/top-5 of `model` over the folder `images` (synset sub-folders, or flat with `ground_truth`), in
    batches of `batch_size` (default: the artifact's batch, 8 for ONNX), the first `limit` images only when
    given. An artifact runs here (`threads` defaults to the profile's) or on the device at `endpoint`;
    `reference` runs ONNX Runtime on the artifact's model.onnx beside it for the agreement. Unreadable images
    are recorded in the result, not raised. `progress`: a progress bar on stderr."""
    from tvmdeploy.runtime.labels import load_labels
    from tvmdeploy.runtime.preprocess import PreprocessConfig, load_image

    if model.onnx and (reference or endpoint is not None):
        raise TvmDeployError(f"{arg('reference')} and {arg('rpc')}* apply to an artifact, not to {arg('onnx')}", param="onnx")
    if limit is not None and limit < 1:
        raise TvmDeployError(f"{arg('limit')} must be >= 1", param="limit")
    if threads is not None and threads < 1:
        raise TvmDeployError(f"{arg('threads')} must be >= 1, got {threads}", param="threads")
    with contextlib.ExitStack() as stack:
        reference_run = None
        if model.onnx:
            from tvmdeploy.compile.frontend import inspect_onnx

            info = inspect_onnx(model.path)
            ort = OrtClassifier(model.path, threads=threads or 0)
            classify, runner = ort.run_images, f"ONNX Runtime {ort.version} (host)"
            name, weights = info.model_name, info.weights
            config = PreprocessConfig.for_input(info.input_shape)
            num_classes = info.output_dims[-1] if info.output_dims else None
            labels = load_labels(info.labels, num_classes)
            batch = batch_size if batch_size is not None else _ONNX_BATCH
        else:
            from tvmdeploy.runtime.module import open_module

            module = open_module(model.path, endpoint, threads=threads, timeout_s=timeout_s, call_timeout_s=call_timeout_s)
            stack.callback(module.close)
            manifest = module.manifest
            classify = module.run_images
            runner = module.description if endpoint is not None else f"TVM {manifest.profile} (local {manifest.device})"
            name, weights = manifest.model_name, manifest.weights
            config, labels = manifest.preprocess_config(), manifest.class_labels()
            batch = batch_size if batch_size is not None else manifest.batch
            num_classes = manifest.num_classes
            if reference:
                from tvmdeploy.runtime.artifact import verify_onnx

                # ONNX Runtime on the threads the artifact runs on here
                ort = OrtClassifier(verify_onnx(model.path, manifest), threads=threads or manifest.threads or 0)
                reference_run = ort.run_images
        dataset = load_dataset(images, labels, ground_truth, num_classes=num_classes)
        if limit is not None:
            dataset.items = dataset.items[:limit]
        logger.info("evaluating %s on %s: %d image(s) of %s (%s), batch %d", name, runner, len(dataset), images, dataset.layout, batch)
        metrics, seconds = _timed_run(dataset, classify, lambda p: load_image(p, config), batch, reference_run, progress)
    return EvalResult(
        model=name,
        runner=runner,
        weights=weights,
        folder=images,
        layout=dataset.layout,
        batch_size=batch,
        total=len(dataset),
        seconds=seconds,
        with_reference=reference_run is not None,
        metrics=metrics,
    )


def _timed_run(
    dataset: Dataset,
    classify: Callable[[np.ndarray], np.ndarray],
    load: Callable[[Path], np.ndarray],
    batch: int,
    reference: Callable[[np.ndarray], np.ndarray] | None,
    progress: bool,
) -> tuple[Metrics, float]:
    """`evaluate` under a progress bar (when asked), and its wall time in seconds."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), unit="img", desc="eval", file=sys.stderr, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        metrics = evaluate(dataset, classify, load, batch_size=batch, reference=reference, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    return metrics, time.perf_counter() - start
