"""Weight folding with numpy: the same module as Relax's FoldConstant, bit for bit, without an LLVM compile per weight."""

from __future__ import annotations

import numpy as np
import pytest


def _prepared(onnx_path, profile_name: str, with_numpy: bool, monkeypatch):
    import tvm

    from tvmdeploy.compile import pipeline
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.targets import load_profile

    if not with_numpy:
        monkeypatch.setattr(pipeline, "fold_weights", tvm.transform.module_pass(lambda m, _c: m, opt_level=0, name="off"))
    try:
        return pipeline.prepare(import_onnx(onnx_path)[0], load_profile(profile_name))
    finally:
        monkeypatch.undo()


def test_prepared_module_is_identical_to_relax_folding_alone(exported_onnx, monkeypatch):
    import tvm_ffi

    path = exported_onnx("ppcls_mobilenetv2_x0_25")  # every CPU profile prepares alike (the target plays no part)
    ours = _prepared(path, "x86-avx512", True, monkeypatch)
    relax_only = _prepared(path, "x86-avx512", False, monkeypatch)
    assert tvm_ffi.structural_equal(ours, relax_only, map_free_vars=True)


def test_structural_equality_sees_the_constants_values():
    """The check above would be empty if constants compared by shape only."""
    import tvm_ffi
    from tvm import relax

    def module(value: float):
        x = relax.Var("x", relax.TensorType((4,), "float32"))
        bb = relax.BlockBuilder()
        with bb.function("main", [x]):
            bb.emit_func_output(bb.emit(relax.op.add(x, relax.const(np.full(4, value, "float32")))))
        return bb.get()

    assert tvm_ffi.structural_equal(module(1.0), module(1.0))
    assert not tvm_ffi.structural_equal(module(1.0), module(np.nextafter(np.float32(1.0), np.float32(2.0))))


@pytest.mark.parametrize("op", ["reshape", "permute_dims", "expand_dims", "isnan_where", "add", "divide", "sqrt"])
def test_each_folded_op_matches_tvm_bit_for_bit(op):
    import tvm
    from tvm import relax

    from tvmdeploy.compile.fold_weights import fold_weights

    rng = np.random.default_rng(0)
    a = relax.const(rng.standard_normal((8, 3, 3, 2)).astype("float32"))
    b = relax.const(rng.uniform(0.5, 2.0, (8, 3, 3, 2)).astype("float32"))
    build = {
        "reshape": lambda: relax.op.reshape(a, [8, 18]),
        "permute_dims": lambda: relax.op.permute_dims(a, [0, 2, 3, 1]),
        "expand_dims": lambda: relax.op.expand_dims(a, [0, -1]),
        "isnan_where": lambda: relax.op.where(relax.op.isnan(a), relax.const(0.0, "float32"), a),
        "add": lambda: relax.op.add(a, b),
        "divide": lambda: relax.op.divide(a, b),
        "sqrt": lambda: relax.op.sqrt(b),
    }[op]
    bb = relax.BlockBuilder()
    with bb.function("main", []):
        bb.emit_func_output(bb.emit(build()))
    mod = bb.get()
    value = _result(fold_weights(mod))
    assert isinstance(value, tvm.ir.expr.Constant), f"{op} not folded: {value}"
    with tvm.target.Target("llvm"):
        expected = _result(relax.transform.FoldConstant()(mod))
    np.testing.assert_array_equal(value.value.numpy(), expected.value.numpy())
    assert value.value.numpy().dtype == expected.value.numpy().dtype


def _result(mod):
    """The expression `main` returns, through the binding of its output variable."""
    body = mod["main"].body
    bound = {b.var: b.value for block in body.blocks for b in block.bindings}
    result = body.body
    while result in bound:
        result = bound[result]
    return result
