"""Small ONNX models built with onnx.helper, for front-end and build tests that must stay fast."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def tiny_classifier(path, *, input_shape=(1, 3, 16, 16), classes=10, extra_inputs=0, op="Conv", input_dims=None, seed=0):
    """Conv(3x3) -> Relu -> depthwise Conv -> GlobalAveragePool -> Flatten -> Gemm: the MobileNetV2 op mix, tiny."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w2")
    fc = numpy_helper.from_array(rng.standard_normal((classes, 8)).astype(np.float32), "fc")
    nodes = [
        helper.make_node(op, ["input", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]) if op == "Conv"
        else helper.make_node(op, ["input"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    dims = list(input_dims) if input_dims is not None else list(input_shape)
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)]
    inputs += [helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [1]) for i in range(extra_inputs)]
    graph = helper.make_graph(
        nodes, "tiny", inputs, [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dims[0], classes])],
        initializer=[w1, w2, fc],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx(tmp_path):
    """Factory: tiny_onnx(**options) -> path of a fresh tiny classifier ONNX file."""
    counter = iter(range(1000))

    def make(**options):
        return tiny_classifier(tmp_path / f"tiny{next(counter)}.onnx", **options)

    return make
