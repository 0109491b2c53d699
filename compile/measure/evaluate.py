"""Top-1/top-5 evaluation: ImageNet-style folder parsing, metrics, and agreement with a reference run."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.labels import Labels
from tvmdeploy.runtime.loader import run_padded
from tvmdeploy.runtime.postprocess import topk_indices
from tvmdeploy.runtime.preprocess import IMAGE_SUFFIXES, is_image_file

logger = logging.getLogger(__name__)
_WNID = re.compile(r"^n\d{8}$")


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
