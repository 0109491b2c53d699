"""Fold the weight-side reshapes, transposes and scalar checks with numpy before Relax's FoldConstant sees them."""

from __future__ import annotations

import logging

import numpy as np
import tvm
from tvm import relax

from tvmdeploy.compile.bindings import bound_value

log = logging.getLogger(__name__)

# Relax's FoldConstant evaluates each constant expression by compiling it with LLVM and running it: every
# conv's weight reshape and layout transpose cost one compile, 9 of the 20 s a MobileNetV2 build took on
# 2 cores. These are pure data movement, or one IEEE operation per element (bit-identical in numpy), so
# numpy computes them instead; what it does not know stays for FoldConstant.
_UNARY = {"relax.isnan": np.isnan, "relax.sqrt": np.sqrt, "relax.negative": np.negative}
_BINARY = {
    "relax.add": np.add,
    "relax.subtract": np.subtract,
    "relax.multiply": np.multiply,
    "relax.divide": np.divide,
    "relax.maximum": np.maximum,
    "relax.minimum": np.minimum,
}


def _int_list(value) -> list[int] | None:
    return None if value is None else [int(v) for v in value]


def _evaluate(call: relax.Call, args: list[np.ndarray]) -> np.ndarray | None:
    name = call.op.name
    if name in _UNARY and len(args) == 1:
        return _UNARY[name](args[0])
    if name in _BINARY and len(args) == 2:
        if args[0].dtype != args[1].dtype:
            return None  # Relax requires equal dtypes; numpy would promote
        return _BINARY[name](args[0], args[1])
    if name == "relax.where" and len(args) == 3:
        return np.where(args[0], args[1], args[2])
    if name == "relax.permute_dims" and len(args) == 1:
        axes = _int_list(call.attrs.axes)
        return np.transpose(args[0], axes)
    if name == "relax.reshape" and len(args) == 1 and isinstance(call.args[1], relax.ShapeExpr):
        return args[0].reshape([int(d) for d in call.args[1].values])
    if name == "relax.expand_dims" and len(args) == 1:
        result = args[0]
        for axis in sorted(a % (result.ndim + len(call.attrs.axis)) for a in _int_list(call.attrs.axis)):
            result = np.expand_dims(result, axis)
        return result
    if name == "relax.astype" and len(args) == 1:
        return args[0].astype(str(call.attrs.dtype))
    return None


@relax.expr_functor.mutator
class _NumpyFolder(relax.PyExprMutator):
    def _constant(self, expr):
        value = bound_value(self, expr)
        return value if isinstance(value, tvm.ir.expr.Constant) else None

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op):
            return call
        tensors = [a for a in call.args if not isinstance(a, relax.ShapeExpr)]
        constants = [self._constant(a) for a in tensors]
        if not tensors or any(c is None for c in constants):
            return call
        ty = call.ty
        if not isinstance(ty, relax.TensorType) or ty.shape is None:
            return call
        try:
            result = _evaluate(call, [c.value.numpy() for c in constants])
        except (ValueError, TypeError, AttributeError) as exc:  # an attribute form we do not read: FoldConstant's
            log.debug("not folded with numpy: %s: %s", call.op.name, exc)
            return call
        if result is None:
            return call
        result = np.asarray(result)
        if str(result.dtype) != str(ty.dtype) or list(result.shape) != [int(d) for d in ty.shape.values]:
            return call  # not what Relax says the op yields: leave it to FoldConstant
        return relax.const(result, str(ty.dtype))


@tvm.transform.module_pass(opt_level=0, name="FoldWeightsWithNumpy")
def fold_weights(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Fold constant reshapes, transposes and elementwise ops of `main`-style Relax functions with numpy."""
    for gvar, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gvar] = _NumpyFolder().visit_expr(func)
    return mod
