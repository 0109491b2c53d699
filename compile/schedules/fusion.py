"""Merge each pointwise expansion and the depthwise conv that reads it into one kernel (CPU default schedules)."""

from __future__ import annotations

import logging

import tvm
from tvm import relax, s_tir, tirx

from tvmdeploy.compile.schedules import BLOCK_PREFIX
from tvmdeploy.compile.schedules.cpu import _reductions

log = logging.getLogger(__name__)

# Merge only where the expansion's output is at least this large. Below it the tensor stays in L2 between the
# two kernels anyway, and the merged kernel's bands (fewer, with recomputed halo rows) lose: on x1.0 the
# 14x14x384 pair ran 221-234 us merged against 190 us apart, the 112x112x96 pair 493 us against 952 us.
MERGE_MIN_BYTES = 1 << 20

_CALL_TIR = tvm.ir.Op.get("relax.call_tir")


def _reduction_extents(func: tirx.PrimFunc) -> list[int] | None:
    """Extents of the reduction axes of the kernel's only reduction block, or None if it has not exactly one."""
    sch = s_tir.Schedule(func)
    reductions = _reductions(sch)
    if len(reductions) != 1:
        return None
    block = sch.get(reductions[0])
    return [int(iv.dom.extent) for iv in block.iter_vars if iv.iter_type == tirx.IterVar.CommReduce]


def is_pointwise(func: tirx.PrimFunc) -> bool:
    """A 1x1 convolution over several input channels (reduction axes kh=1, kw=1, C_in>1)."""
    axes = _reduction_extents(func)
    return axes is not None and len(axes) == 3 and axes[0] == axes[1] == 1 and axes[2] > 1


def is_depthwise(func: tirx.PrimFunc) -> bool:
    """A KxK convolution with one input channel per output channel (reduction axes kh>1, kw>1, 1)."""
    axes = _reduction_extents(func)
    return axes is not None and len(axes) == 3 and axes[0] > 1 and axes[1] > 1 and axes[2] == 1


def _nbytes(ty) -> int:
    count = 1
    for dim in ty.shape:
        count *= int(dim)
    return count * tvm.runtime.DataType(ty.dtype).bits // 8


def _use_counts(func: relax.Function) -> dict:
    counts: dict = {}

    def visit(expr):
        if isinstance(expr, relax.Var):
            counts[expr] = counts.get(expr, 0) + 1

    relax.analysis.post_order_visit(func.body, visit)
    return counts


def _unscheduled(mod: tvm.IRModule, gvar: tvm.ir.GlobalVar) -> bool:
    attrs = mod[gvar].attrs
    return not (attrs is not None and "tirx.is_scheduled" in attrs and bool(attrs["tirx.is_scheduled"]))


def _mergeable_pairs(mod: tvm.IRModule, min_bytes: int) -> list[tuple[relax.VarBinding, relax.VarBinding]]:
    """(expansion, depthwise) bindings of `main`: the depthwise reads the expansion's output first, and only it."""
    main = mod["main"]
    uses = _use_counts(main)
    producers: dict = {}
    pairs = []
    for block in main.body.blocks:
        for binding in block.bindings:
            call = binding.value
            if not (isinstance(call, relax.Call) and call.op == _CALL_TIR):
                continue
            producers[binding.var] = binding
            first = call.args[1].fields[0] if call.args[1].fields else None
            expansion = producers.get(first)
            if expansion is None or uses.get(first, 0) != 1 or _nbytes(first.ty) < min_bytes:
                continue
            pw, dw = expansion.value.args[0], call.args[0]
            if _unscheduled(mod, pw) and _unscheduled(mod, dw) and is_pointwise(mod[pw]) and is_depthwise(mod[dw]):
                pairs.append((expansion, binding))
    return pairs


def merge_expand_depthwise(mod: tvm.IRModule, min_bytes: int | None = None) -> tvm.IRModule:
    """Merge every unscheduled pointwise-expansion kernel into the depthwise kernel that alone consumes it.

    Works on a `prepare`d module (fused TIR kernels called from `main`): each pair becomes a primitive
    Relax function of two `call_tir`s, which Relax's FuseTIR turns into one PrimFunc with the expanded
    tensor as an internal buffer; the block schedule (schedules/cpu_block.py) then computes it band by
    band in cache instead of writing it out to memory and reading it back. Kernels a tuning record
    already scheduled are left alone, so tuning logs (made on the unmerged kernels) keep applying.
    """
    pairs = _mergeable_pairs(mod, MERGE_MIN_BYTES if min_bytes is None else min_bytes)
    if not pairs:
        return mod
    builder = relax.BlockBuilder(mod)
    merged: dict = {}
    functions: dict = {}  # (expansion kernel, depthwise kernel) -> the merged function, shared by repeated blocks
    for expansion, depthwise in pairs:
        outer = list(expansion.value.args[1].fields) + list(depthwise.value.args[1].fields)[1:]
        key = (expansion.value.args[0].name_hint, depthwise.value.args[0].name_hint)
        if key in functions:
            merged[depthwise.var] = relax.Call(functions[key], outer)
            continue
        params = [relax.Var(f"arg{i}", arg.ty) for i, arg in enumerate(outer)]
        cut = len(expansion.value.args[1].fields)
        with builder.function(f"{BLOCK_PREFIX}{len(functions)}", params, {"Primitive": True}, private=True):
            with builder.dataflow():
                expanded = builder.emit(relax.call_tir(expansion.value.args[0], params[:cut], expansion.value.ty))
                out = builder.emit_output(
                    relax.call_tir(depthwise.value.args[0], [expanded, *params[cut:]], depthwise.value.ty)
                )
            gvar = builder.emit_func_output(out)
        functions[key] = gvar
        merged[depthwise.var] = relax.Call(gvar, outer)
    dropped = {expansion.var for expansion, _ in pairs}
    result = builder.get()
    main = mod["main"]
    blocks = []
    for block in main.body.blocks:
        bindings = [
            relax.VarBinding(b.var, merged[b.var]) if b.var in merged else b
            for b in block.bindings
            if b.var not in dropped
        ]
        blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock) else relax.BindingBlock(bindings))
    result["main"] = relax.Function(main.params, relax.SeqExpr(blocks, main.body.body), main.ret_ty, main.is_pure, main.attrs)
    log.debug("merged %d expansion+depthwise call(s) into %d kernel(s)", len(pairs), len(functions))
    result = relax.transform.FuseTIR()(result)
    result = relax.transform.DeadCodeElimination()(result)
    # FuseTIR drops the attribute naming the weight arguments; the block schedule repacks weights by it.
    return relax.transform.AttachAttrLayoutFreeBuffers()(result)
