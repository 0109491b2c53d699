"""Move per-channel elementwise ops (batch norm, activations) above a Concat into its branches, where they fuse."""

from __future__ import annotations

import logging

import numpy as np
import tvm
from tvm import relax

from tvmdeploy.compile.bindings import bound_value

log = logging.getLogger(__name__)

# MixNet's mixed convolutions concatenate their channel groups and then apply batch norm and the activation: with
# the Concat in between, FuseOps cannot put them into the convolutions' epilogues, and they ran as separate
# concat+BN+activation kernels, half of MixNet-S's time. Applied to each branch before the Concat they fuse
# into its convolution, and the Concat is left as plain data movement (or vanishes against the next Split).
_BINARY = {"relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum", "relax.minimum"}
_UNARY = {"relax.sigmoid", "relax.nn.relu", "relax.tanh", "relax.exp", "relax.negative", "relax.sqrt"}


def _sections(concat: relax.Call) -> list[int] | None:
    """Channel count of each input of a Concat along its axis, or None if a shape is not static."""
    sizes = []
    axis = int(concat.attrs.axis)
    for part in concat.args[0].fields:
        ty = part.ty
        if not isinstance(ty, relax.TensorType) or ty.shape is None:
            return None
        dims = [int(d) for d in ty.shape.values]
        sizes.append(dims[axis])
    return sizes


def _concat(mutator: relax.PyExprMutator, expr: relax.Expr) -> relax.Call | None:
    """The Concat (of a tuple, along one axis) that `expr` is bound to, or None."""
    value = bound_value(mutator, expr)
    if (
        isinstance(value, relax.Call)
        and value.op == tvm.ir.Op.get("relax.concat")
        and isinstance(value.args[0], relax.Tuple)
        and value.attrs.axis is not None
    ):
        return value
    return None


@relax.expr_functor.mutator
class _PushDown(relax.PyExprMutator):
    def _constant_parts(self, expr, axis: int, ndim: int, sizes: list[int]) -> list | None:
        value = bound_value(self, expr)
        if not isinstance(value, tvm.ir.expr.Constant):
            return None
        array = value.value.numpy()
        if array.ndim == 0:
            return [value] * len(sizes)
        if array.ndim != ndim:
            return None
        if array.shape[axis] == 1:
            return [value] * len(sizes)
        if array.shape[axis] != sum(sizes):
            return None
        bounds = np.cumsum([0, *sizes])
        return [
            relax.const(np.ascontiguousarray(np.take(array, range(lo, hi), axis=axis)), str(array.dtype))
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op):
            return call
        name = call.op.name
        if name in _UNARY and len(call.args) == 1 and not call.attrs:
            concat = _concat(self, call.args[0])
            if concat is not None:
                return self._rebuild(concat, [relax.Call(call.op, [x]) for x in concat.args[0].fields])
        if name not in _BINARY or len(call.args) != 2:
            return call
        for this, other in ((0, 1), (1, 0)):
            concat = _concat(self, call.args[this])
            if concat is None:
                continue
            sizes = _sections(concat)
            if sizes is None:
                return call
            axis, ndim = int(concat.attrs.axis), len(concat.ty.shape.values)
            axis %= ndim
            others = self._constant_parts(call.args[other], axis, ndim, sizes)
            if others is None:
                second = _concat(self, call.args[other])
                if second is None or int(second.attrs.axis) % ndim != axis or _sections(second) != sizes:
                    continue
                others = list(second.args[0].fields)
            pairs = [(x, y) if this == 0 else (y, x) for x, y in zip(concat.args[0].fields, others)]
            return self._rebuild(concat, [relax.Call(call.op, list(pair)) for pair in pairs])
        return call

    def _rebuild(self, concat: relax.Call, parts: list[relax.Call]) -> relax.Expr:
        """The Concat of `parts` (one op per branch, each bound to its own var), on the original's axis."""
        return relax.op.concat([self.builder_.emit(part) for part in parts], axis=int(concat.attrs.axis))


@relax.expr_functor.mutator
class _SplitOfConcat(relax.PyExprMutator):
    """split(concat(x0, x1, ...)) cut at the same channels -> (x0, x1, ...)."""

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.split"):
            return call
        value = _concat(self, call.args[0])
        if value is None:
            return call
        ndim = len(value.ty.shape.values)
        if int(value.attrs.axis) % ndim != int(call.attrs.axis) % ndim:
            return call
        sizes = _sections(value)
        cuts = call.attrs.indices_or_sections
        if sizes is None or isinstance(cuts, (int, tvm.tirx.IntImm)):
            return call
        if [int(c) for c in cuts] != [int(c) for c in np.cumsum(sizes)[:-1]]:
            return call
        return relax.Tuple(list(value.args[0].fields))


@tvm.transform.module_pass(opt_level=0, name="ConcatPushDown")
def concat_pushdown(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Per-channel elementwise ops after a Concat applied to its inputs instead; Split(Concat) undone."""
    for gvar, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            func = _PushDown().visit_expr(func)
            mod[gvar] = _SplitOfConcat().visit_expr(func)
    return relax.transform.DeadCodeElimination()(relax.transform.CanonicalizeBindings()(mod))
