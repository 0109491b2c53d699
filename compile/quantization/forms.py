"""Quantized ONNX forms the integer build takes (8-bit, per-tensor or per-channel), refused in one line otherwise."""

from __future__ import annotations

from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError

_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def check_onnx_quantization(model, path: Path) -> None:
    """Refuse 4/16-bit and float8 quantized tensors and blocked scales before the importer sees them (it fails on
    them with an internal size check, or would emulate them in float)."""
    from onnx import TensorProto

    allowed = {TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32}
    types = {t.name: t.data_type for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in _QDQ_OPS:
            continue
        block = next((a.i for a in node.attribute if a.name == "block_size"), 0)
        if block:
            raise TvmDeployError(
                f"{path}: unsupported quantization: node '{node.name or node.output[0]}' uses blocked "
                f"scales (block_size {block}); only per-tensor and per-channel build as integer kernels"
            )
        quantized = node.input[0] if node.op_type == "DequantizeLinear" else None
        kind = types.get(quantized) if quantized else next((a.i for a in node.attribute if a.name == "output_dtype" and a.i), None)
        if kind is not None and kind not in allowed:
            name = TensorProto.DataType.Name(kind).lower()
            raise TvmDeployError(
                f"{path}: unsupported quantization: {name} tensor '{quantized or node.output[0]}' "
                f"(node '{node.name or node.op_type}'); only 8-bit weights and activations "
                "(int32 biases) build as integer kernels"
            )
