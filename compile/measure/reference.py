"""The reference runtimes: ONNX Runtime on the same ONNX file and eager PyTorch on the zoo twin, same threads, CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError, arg
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


def torch_module(onnx_path: Path, weights: Path | None) -> tuple[Any, str]:
    """The eager PyTorch twin of a zoo export (from its tvmdeploy.* metadata) and a label; raises with the reason to skip."""
    try:
        import torch
    except ImportError:
        raise TvmDeployError("torch is not installed (pip install 'tvmdeploy[export]')") from None
    from tvmdeploy.compile.models.export import META_MODEL, META_WEIGHTS, build_torch_model, read_metadata

    meta = read_metadata(onnx_path)
    name, tag = meta.get(META_MODEL), meta.get(META_WEIGHTS, "")
    if not name:
        raise TvmDeployError("the ONNX file is not a tvmdeploy zoo export (no tvmdeploy.model metadata); no PyTorch module to rebuild")
    if tag.startswith("random:seed="):
        module, built = build_torch_model(name, seed=int(tag.split("=", 1)[1]))
    elif weights is not None:
        module, built = build_torch_model(name, weights=weights)
    else:
        raise TvmDeployError(
            f"the export used checkpoint weights ({tag[:19]}…); pass {arg('torch_weights')} FILE to rebuild it", param="torch_weights"
        )
    if built != tag:
        raise TvmDeployError(f"rebuilt weights {built[:19]}… differ from the export's {tag[:19]}…")
    return module, f"PyTorch {torch.__version__.split('+')[0]} eager"


class TorchModel:
    """An eager PyTorch module on a fixed number of threads, run like OrtModel (numpy in, numpy out)."""

    def __init__(self, module: Any, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.torch, self.module = torch, module

    def run(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module(self.torch.from_numpy(x)).numpy()


def reference_input(shape: list[int], seed: int = 0) -> np.ndarray:
    """A fixed input with the statistics of a normalized image batch (mean 0, std 1)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
