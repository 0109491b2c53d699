"""ONNX Runtime as the reference implementation: same ONNX file, same threads, CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError


class OrtModel:
    """An ONNX Runtime CPU session with a fixed number of intra-op threads."""

    def __init__(self, onnx_path: Path, threads: int = 0):
        import onnxruntime as ort  # lazy: heavy, and boards don't have it

        options = ort.SessionOptions()
        # Same thread count as the TVM side, or the comparison is meaningless; 0 lets ORT use all cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types without a common base
            raise TvmDeployError(f"ONNX Runtime cannot load {onnx_path}: {str(exc).splitlines()[0]}") from None
        self.threads = threads
        self.input_name = self.session.get_inputs()[0].name
        self.version = ort.__version__

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def reference_input(shape: list[int], seed: int = 0) -> np.ndarray:
    """A fixed input with the statistics of a normalized image batch (mean 0, std 1)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
