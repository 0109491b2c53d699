"""One ONNX Runtime CPU session set-up (threads, sequential execution, config entries) for every ORT we time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tvmdeploy.runtime.errors import TvmDeployError


def ort_session(onnx_path: Path | str, threads: int = 0, config: dict[str, str] | None = None) -> Any:
    """An ONNX Runtime CPU InferenceSession on `threads` intra-op threads (0: ORT's choice, all cores), one inter-op
    thread, sequential execution, full graph optimisation, plus session `config` entries (e.g. the idle policy
    of its thread pool). `tvmdeploy bench`, the parity checks and the dev benchmarks all time this same set-up.

    onnxruntime is imported here, lazily: the runtime package also runs on boards that do not have it.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise TvmDeployError("ONNX Runtime is not installed here (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    # Same thread count as the TVM side, or the comparison is meaningless.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types without a common base
        raise TvmDeployError(f"ONNX Runtime cannot load {onnx_path}: {str(exc).splitlines()[0]}") from None
