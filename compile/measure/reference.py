"""ONNX Runtime as the reference implementation: same ONNX file, same threads, CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tvmdeploy.runtime.ort_session import ort_session


class OrtModel:
    """An ONNX Runtime CPU session with a fixed number of intra-op threads."""

    def __init__(self, onnx_path: Path, threads: int = 0, config: dict[str, str] | None = None):
        import onnxruntime as ort  # lazy: heavy, and boards don't have it

        self.session = ort_session(onnx_path, threads, config)
        self.threads = threads
        self.input_name = self.session.get_inputs()[0].name
        self.version = ort.__version__

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def reference_input(shape: list[int], seed: int = 0) -> np.ndarray:
    """A fixed input with the statistics of a normalized image batch (mean 0, std 1)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
