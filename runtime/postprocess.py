"""Turn classifier logits into probabilities and labelled top-k predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError


@dataclass(frozen=True)
class Prediction:
    """One ranked class: output index, its human-readable label and its probability."""

    index: int
    label: str
    probability: float


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, stable for large logits; float64 inputs stay float64, others become float32."""
    x = np.asarray(logits)
    if x.ndim == 0:
        raise TvmDeployError("softmax needs at least one axis of logits, got a scalar")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    elif x.dtype not in (np.float32, np.float64):
        # float16 would lose too much in exp/sum; compute in float32.
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise TvmDeployError("logits contain NaN or infinity (the model output is broken)")
    # Subtracting the row max keeps exp() in (0, 1]: no overflow, and the largest term is exactly 1.
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` largest scores along the last axis ([..., k]), highest first; ties keep the lower index first."""
    # Stable sort on the negated scores: deterministic order among equal values.
    return np.argsort(-np.asarray(scores), axis=-1, kind="stable")[..., :k]


def topk(probs: np.ndarray, k: int, labels: Sequence[str] | None = None) -> list[list[Prediction]]:
    """Top-k per row of a [N, C] (or [C]) probability array, highest first; ties keep the lower index first.

    `labels` gives the name of each class (e.g. `load_labels().names`); without it labels are "class <i>".
    """
    p = np.asarray(probs)
    if p.ndim == 1:
        p = p[np.newaxis, :]
    if p.ndim != 2:
        raise TvmDeployError(f"top-k expects probabilities shaped [N, C] or [C], got shape {tuple(p.shape)}")
    num_classes = p.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
        raise TvmDeployError(f"top-k: k must be an integer in 1..{num_classes}, got {k!r}")
    if labels is not None and len(labels) != num_classes:
        raise TvmDeployError(f"top-k: {len(labels)} labels for {num_classes} classes (wrong label table for this model?)")
    results: list[list[Prediction]] = []
    for row, order in zip(p, topk_indices(p, int(k))):
        results.append([Prediction(int(i), labels[i] if labels is not None else f"class {int(i)}", float(row[i])) for i in order])
    return results
