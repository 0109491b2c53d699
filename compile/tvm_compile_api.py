"""The TVM compiler-side calls we depend on, in one place (front end and errors moved between releases)."""

from __future__ import annotations

import contextlib
import io
import logging

import tvm
from tvm import relax

logger = logging.getLogger(__name__)

# Raised by the ONNX importer for operators it has no converter for.
OpNotImplemented = tvm.error.OpNotImplemented


def relax_from_onnx(
    model, shape_dict: dict[str, list[int]], dtype_dict: dict[str, str], *, weights_as_inputs: bool = False
) -> tvm.IRModule:
    """Import an ONNX ModelProto into Relax, weights embedded as constants or as trailing inputs of `main`."""
    from tvm.relax.frontend.onnx import from_onnx

    # The importer prints "Error converting operator ..." to stdout before re-raising: keep stdout
    # clean (the caller turns the exception into one line) and log what it printed.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            return from_onnx(model, shape_dict=shape_dict, dtype_dict=dtype_dict, keep_params_in_input=weights_as_inputs)
    finally:
        if printed.getvalue().strip():
            logger.debug("Relax ONNX importer: %s", printed.getvalue().strip())


def failing_onnx_node(exc: BaseException):
    """The ONNX NodeProto the Relax importer was converting when `exc` was raised, or None.

    0.27's importer does not name the node in its errors; its `_construct_nodes` loop holds it in
    the local `node`, which the traceback still has.
    """
    tb = exc.__traceback__
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_construct_nodes" and "node" in frame.f_locals:
            found = frame.f_locals["node"]
        tb = tb.tb_next
    return found


def error_text(exc: BaseException) -> str:
    """One line for an importer error: the last non-empty line of TVM's (often multi-line) message."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__


def detach_weights(mod: tvm.IRModule) -> tuple[tvm.IRModule, dict]:
    """Split the weights of a module imported with weights_as_inputs into {function: [tensors]}."""
    return relax.frontend.detach_params(mod)


def supported_onnx_ops() -> set[str]:
    """Operator types the Relax ONNX importer converts (private map in 0.27; empty if it moved)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    get_map = getattr(onnx_frontend, "_get_convert_map", None)
    return set(get_map()) if get_map else set()
