"""The reference runtimes (compile/measure/reference.py): ONNX Runtime on the same file, the eager PyTorch twin."""

import numpy as np
import pytest

from tvmdeploy.compile.measure.reference import OrtModel, TorchModel, reference_input, torch_module
from tvmdeploy.runtime.errors import TvmDeployError


def test_torch_is_skipped_for_a_foreign_onnx(tiny_onnx):
    pytest.importorskip("torch")
    with pytest.raises(TvmDeployError, match="not a tvmdeploy zoo export"):
        torch_module(tiny_onnx(), None)


def test_the_torch_twin_of_a_zoo_export_matches_onnx_runtime_on_it(exported_onnx):
    pytest.importorskip("torch")
    path = exported_onnx("ppcls_mobilenetv2_x0_25")
    module, label = torch_module(path, None)  # random weights: rebuilt from the seed in the export's metadata
    assert label.startswith("PyTorch ")
    x = reference_input([1, 3, 224, 224])
    np.testing.assert_allclose(TorchModel(module, threads=2).run(x), OrtModel(path, threads=2).run(x), atol=1e-4)
