"""Test models written from ONNX nodes: one way to turn nodes and constants into a saved model file."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def save_graph(
    path, nodes: list, inputs: dict[str, list], outputs: dict[str, list], initializers=(), *, opset: int = 13, name: str = "g"
) -> Path:
    """Save `nodes` as an ONNX model at `path` (float32 `inputs`/`outputs`, name -> shape, None for a dynamic dim;
    IR version 8, the default domain at `opset`) and return its path."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in outputs.items()],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)
