"""Parity of a compiled module with ONNX Runtime on the same ONNX file: max |Δ logits| and top-5 agreement."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tvmdeploy.compile.measure.reference import OrtModel, reference_input
from tvmdeploy.runtime.postprocess import topk_indices

DEFAULT_ATOL = 1e-4


@dataclass
class ParityReport:
    max_abs_diff: float
    top5_identical: bool  # the same five classes in the same order, for every image of the batch
    atol: float
    reference: str  # what the logits were compared with, e.g. "onnxruntime 1.32.0"
    input_seed: int = 0

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.atol and self.top5_identical

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"parity vs {self.reference}: max |Δ logits| = {self.max_abs_diff:.3g} (tolerance {self.atol:g}), "
            f"top-5 {'identical' if self.top5_identical else 'DIFFERENT'} -> {verdict}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "status": "passed" if self.passed else "failed"}


def top5(logits: np.ndarray) -> np.ndarray:
    return topk_indices(logits, 5)


def compare_logits(actual: np.ndarray, expected: np.ndarray, atol: float, reference: str, seed: int = 0) -> ParityReport:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return ParityReport(float("inf"), False, atol, reference, seed)
    return ParityReport(
        max_abs_diff=float(np.max(np.abs(actual - expected))) if actual.size else 0.0,
        top5_identical=bool(np.array_equal(top5(actual), top5(expected))),
        atol=atol,
        reference=reference,
        input_seed=seed,
    )


def check_parity(
    run: Callable[[np.ndarray], np.ndarray],
    onnx_path: Path,
    input_shape: list[int],
    *,
    atol: float = DEFAULT_ATOL,
    seed: int = 0,
    threads: int = 0,
) -> ParityReport:
    """Run both on the same fixed random input and compare the logits."""
    x = reference_input(input_shape, seed)
    reference = OrtModel(onnx_path, threads=threads)
    return compare_logits(run(x), reference.run(x), atol, f"onnxruntime {reference.version}", seed)
