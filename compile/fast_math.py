"""float32 exp and sigmoid legalized into vectorisable arithmetic (SiLU and squeeze-and-excitation gates)."""

from __future__ import annotations

import tvm
from tvm import tirx

# LLVM has no vector exp without a vector math library: `llvm.exp.v16f32` became sixteen calls to libm's
# expf per vector. EfficientNet-B0's SiLU kernels then spent most of their time there (x86, 4x ONNX Runtime).
# The rewrite: x = n ln2 + r (Cody-Waite, |r| <= ln2 / 2), exp(r) by its Taylor series to r^7 (truncation
# below 2^-24 relative on that interval), 2^n written into the float's exponent bits.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # ln 2 in two parts: n * _LN2_HI is exact for the n that occur (|n| <= 127)
_LN2_LO = 1.428606765330187e-06
# exp(x) of a float32 is 0 below about -87.3 (subnormals aside) and overflows above 88.7: clamp first so that
# 2^n stays a normal float; the clamped ends give 1.2e-38 and 2.2e38.
_X_MIN, _X_MAX = -87.3, 88.3
_TAYLOR = [1.0 / f for f in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0)]  # r^7 .. r^0


def fast_exp(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """exp(x) for a float32 expression, in arithmetic LLVM vectorises (relative error about 1e-7)."""
    f32 = "float32"

    def c(value: float) -> tirx.PrimExpr:
        return tirx.const(value, f32)

    xv = tirx.Var("x", f32)
    nv = tirx.Var("n", f32)
    rv = tirx.Var("r", f32)
    poly = c(_TAYLOR[0])
    for coeff in _TAYLOR[1:]:
        poly = poly * rv + c(coeff)
    exponent = tirx.shift_left(tirx.Cast("int32", nv) + tirx.const(127, "int32"), tirx.const(23, "int32"))
    scaled = poly * tirx.reinterpret(f32, exponent)
    body = tirx.Let(rv, xv - nv * c(_LN2_HI) - nv * c(_LN2_LO), scaled)
    body = tirx.Let(nv, tirx.floor(xv * c(_LOG2E) + c(0.5)), body)
    return tirx.Let(xv, tirx.max(tirx.min(x, c(_X_MAX)), c(_X_MIN)), body)


def _elementwise(op_name: str, name: str, scalar):
    """A LegalizeOps rule: a float32 op as one elementwise TE kernel computing `scalar` per element; other
    dtypes keep TVM's own legalization."""
    from tvm import te

    default = tvm.ir.Op.get(op_name).get_attr("FLegalize")

    def legalize(bb, call):
        if call.args[0].ty.dtype != "float32":
            return default(bb, call)
        return bb.call_te(
            lambda x: te.compute(x.shape, lambda *i: scalar(x(*i)), name=name), call.args[0], primfunc_name_hint=f"tir_{name}"
        )

    return legalize


def _sigmoid(x: tirx.PrimExpr) -> tirx.PrimExpr:
    one = tirx.const(1.0, "float32")
    return one / (one + fast_exp(-x))


def legalize_map() -> dict:
    """LegalizeOps overrides: float32 exp and sigmoid (SiLU, squeeze-and-excitation gates) through fast_exp."""
    return {"relax.exp": _elementwise("relax.exp", "exp", fast_exp), "relax.sigmoid": _elementwise("relax.sigmoid", "sigmoid", _sigmoid)}
