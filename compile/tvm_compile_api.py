"""The TVM compiler-side calls we depend on, in one place (front end and errors moved between releases)."""

from __future__ import annotations

import tvm
from tvm import relax

# Raised by the ONNX importer for operators it has no converter for.
OpNotImplemented = tvm.error.OpNotImplemented


def relax_from_onnx(
    model, shape_dict: dict[str, list[int]], dtype_dict: dict[str, str], *, weights_as_inputs: bool = False
) -> tvm.IRModule:
    """Import an ONNX ModelProto into Relax, weights embedded as constants or as trailing inputs of `main`."""
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(model, shape_dict=shape_dict, dtype_dict=dtype_dict, keep_params_in_input=weights_as_inputs)


def detach_weights(mod: tvm.IRModule) -> tuple[tvm.IRModule, dict]:
    """Split the weights of a module imported with weights_as_inputs into {function: [tensors]}."""
    return relax.frontend.detach_params(mod)


def supported_onnx_ops() -> set[str]:
    """Operator types the Relax ONNX importer converts (private map in 0.27; empty if it moved)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    get_map = getattr(onnx_frontend, "_get_convert_map", None)
    return set(get_map()) if get_map else set()
