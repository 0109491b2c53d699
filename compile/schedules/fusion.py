"""Merge each pointwise expansion and the depthwise conv that reads it into one kernel (CPU default schedules)."""

from __future__ import annotations

import logging

import tvm
from tvm import relax, s_tir, tirx

from tvmdeploy.compile.schedules import BLOCK_PREFIX, is_scheduled
from tvmdeploy.compile.schedules.apply import schedule_with_rules
from tvmdeploy.compile.schedules.cpu import _reductions, _work
from tvmdeploy.compile.schedules.cpu_block import ExpandDepthwiseBlock

log = logging.getLogger(__name__)

# Merge only where the expansion's output is at least this large: smaller ones stay in L2 between kernels
# anyway. Intel Xeon, x1.0 end to end: 0.876x ORT merging from 512 KiB (its 28x28x192 blocks too) vs 0.922x
# from 1 MiB; the block rule also refuses blocks whose bands would recompute too much (cpu_block.MAX_RECOMPUTE).
MERGE_MIN_BYTES = 1 << 19

# Whether a block also takes the 1x1 projection that alone reads the depthwise output (the whole inverted
# residual, residual add included): the depthwise rows then stay in cache too.
MERGE_PROJECTION = True

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


def _accumulates_in_float(func: tirx.PrimFunc) -> bool:
    """Whether the kernel's reduction accumulates in float (an integer one runs on dot-product instructions,
    which the merged block's schedule does not use: an int8 expand conv stays a kernel of its own)."""
    sch = s_tir.Schedule(func)
    return all(str(sch.get(rv).writes[0].source.dtype).startswith("float") for rv in _reductions(sch))


def is_depthwise(func: tirx.PrimFunc) -> bool:
    """A KxK convolution with one input channel per output channel (reduction axes kh>1, kw>1, 1)."""
    axes = _reduction_extents(func)
    return axes is not None and len(axes) == 3 and axes[0] > 1 and axes[1] > 1 and axes[2] == 1


def _nbytes(ty) -> int:
    return _work(ty.shape) * tvm.runtime.DataType(ty.dtype).bits // 8


def _use_counts(func: relax.Function) -> dict:
    counts: dict = {}

    def visit(expr):
        if isinstance(expr, relax.Var):
            counts[expr] = counts.get(expr, 0) + 1

    relax.analysis.post_order_visit(func.body, visit)
    return counts


def _chains(mod: tvm.IRModule, min_bytes: int) -> list[list[relax.VarBinding]]:
    """[expansion, depthwise(, projection)] bindings of `main`: each stage reads the previous one's output as
    its first argument and is its only reader; the projection joins when MERGE_PROJECTION allows."""
    main = mod["main"]
    uses = _use_counts(main)
    # Only kernels with one tensor output chain: a Split's call returns a tuple (MixNet's channel groups).
    calls = [
        b
        for block in main.body.blocks
        for b in block.bindings
        if isinstance(b.value, relax.Call) and b.value.op == _CALL_TIR and b.value.args[1].fields and isinstance(b.var.ty, relax.TensorType)
    ]
    reader = {}  # var -> the call reading it as its first argument
    for binding in calls:
        reader.setdefault(binding.value.args[1].fields[0], binding)

    def kernel(binding):
        gvar = binding.value.args[0]
        return None if is_scheduled(mod[gvar]) else mod[gvar]

    def feeds(binding, test) -> relax.VarBinding | None:
        nxt = reader.get(binding.var)
        func = kernel(nxt) if nxt is not None and uses.get(binding.var, 0) == 1 else None
        return nxt if func is not None and test(func) else None

    chains, taken = [], set()
    for binding in calls:
        first = kernel(binding) if binding.var not in taken else None
        if first is None or _nbytes(binding.var.ty) < min_bytes or not is_pointwise(first) or not _accumulates_in_float(first):
            continue
        depthwise = feeds(binding, is_depthwise)
        if depthwise is None:
            continue
        projection = feeds(depthwise, lambda f: is_pointwise(f) and _accumulates_in_float(f)) if MERGE_PROJECTION else None
        chains.append([binding, depthwise] + ([projection] if projection is not None else []))
        taken.update(b.var for b in chains[-1])
    return chains


def merge_expand_depthwise(mod: tvm.IRModule, min_bytes: int | None = None) -> tvm.IRModule:
    """Merge every unscheduled pointwise-expansion kernel with the depthwise kernel that alone consumes it
    (and the projection that alone reads that, see MERGE_PROJECTION) into one kernel.

    Works on a `prepare`d module (fused TIR kernels called from `main`): each chain becomes a primitive
    Relax function of its `call_tir`s, which Relax's FuseTIR turns into one PrimFunc with the intermediate
    tensors as internal buffers; the block schedule (schedules/cpu_block.py) then computes them band by
    band in cache instead of writing them out to memory and reading them back. The build merges before tuning
    records apply (pipeline.compile_relax), so a log's records for the merged kernels go unused: on the Intel
    Xeon the merged x1.0 with the Zen 5 log ran 0.95x ORT against 1.13x with all its records. Kernels
    already scheduled are never merged.
    """
    chains = _chains(mod, MERGE_MIN_BYTES if min_bytes is None else min_bytes)
    if not chains:
        return mod
    merged, kernels = _merge(mod, chains)
    target = tvm.target.Target.current(allow_none=True)
    if target is None:
        return merged
    # A chain the block schedule cannot take (an unusual epilogue...), or whose schedule would not lower,
    # stays apart: merged, no rule would schedule it and it would run TVM's raw lowering, ~40x slower.
    rules = [ExpandDepthwiseBlock()]
    refused = {key for key, name in kernels.items() if schedule_with_rules(merged[name], target, rules).schedule is None}
    if not refused:
        return merged
    log.info("%d merged block kind(s) left apart: the block schedule does not take them", len(refused))
    kept = [chain for chain in chains if _key(chain) not in refused]
    return _merge(mod, kept)[0] if kept else mod


def _key(chain: list[relax.VarBinding]) -> tuple[str, ...]:
    return tuple(b.value.args[0].name_hint for b in chain)


def _merge(mod: tvm.IRModule, chains: list[list[relax.VarBinding]]) -> tuple[tvm.IRModule, dict]:
    """The module with every chain merged, and each chain kind's merged PrimFunc name."""
    builder = relax.BlockBuilder(mod)
    replaced: dict = {}  # the chain's last var -> the call of its merged function
    functions: dict = {}  # the chain's kernels -> its merged function, shared by repeated blocks
    for chain in chains:
        arguments = [list(b.value.args[1].fields) for b in chain]
        outer = arguments[0] + [arg for args in arguments[1:] for arg in args[1:]]
        key = _key(chain)
        if key not in functions:
            params = [relax.Var(f"arg{i}", arg.ty) for i, arg in enumerate(outer)]
            with builder.function(f"{BLOCK_PREFIX}{len(functions)}", params, {"Primitive": True}, private=True):
                with builder.dataflow():
                    value, rest = None, params
                    for stage, (binding, args) in enumerate(zip(chain, arguments)):
                        taken = len(args) if stage == 0 else len(args) - 1
                        inputs = rest[:taken] if stage == 0 else [value, *rest[:taken]]
                        rest = rest[taken:]
                        call = relax.call_tir(binding.value.args[0], inputs, binding.value.ty)
                        value = builder.emit_output(call) if stage == len(chain) - 1 else builder.emit(call)
                functions[key] = builder.emit_func_output(value)
        replaced[chain[-1].var] = relax.Call(functions[key], outer)
    dropped = {b.var for chain in chains for b in chain[:-1]}
    result = builder.get()
    main = mod["main"]
    blocks = []
    for block in main.body.blocks:
        bindings = [relax.VarBinding(b.var, replaced[b.var]) if b.var in replaced else b for b in block.bindings if b.var not in dropped]
        blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock) else relax.BindingBlock(bindings))
    result["main"] = relax.Function(main.params, relax.SeqExpr(blocks, main.body.body), main.ret_ty, main.is_pure, main.attrs)
    log.debug("merged %d expansion+depthwise block(s) into %d kernel(s)", len(chains), len(functions))
    result = relax.transform.FuseTIR()(result)
    result = relax.transform.DeadCodeElimination()(result)
    # FuseTIR drops the attribute naming the weight arguments; the block schedule repacks weights by it.
    result = relax.transform.AttachAttrLayoutFreeBuffers()(result)
    # FuseTIR keeps the bound vars: the chain's last var now calls its merged PrimFunc.
    calls = _kernel_calls(result)
    return result, {_key(chain): calls[chain[-1].var] for chain in chains}


def _kernel_calls(mod: tvm.IRModule) -> dict:
    """Each var of `main` bound to a `call_tir` -> the name of the TIR kernel it calls."""
    return {
        b.var: b.value.args[0].name_hint
        for block in mod["main"].body.blocks
        for b in block.bindings
        if isinstance(b.value, relax.Call) and b.value.op == _CALL_TIR
    }


def called_kernels(mod: tvm.IRModule) -> set[str]:
    """Names of the TIR kernels `main` calls."""
    return set(_kernel_calls(mod).values())
