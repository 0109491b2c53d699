"""Default CPU schedules (dlight-style rules): register-blocked vectorised reductions and parallel injective kernels."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tvm import s_tir, tirx
from tvm.s_tir.dlight.base import ScheduleRule

from tvmdeploy.compile.schedules.cpu_vector import VectorUnit, vector_unit
from tvmdeploy.compile.schedules.dot_product import TILE_BYTES, TILE_SCOPE, dot_intrinsic

log = logging.getLogger(__name__)

# The block annotation that makes a weight copy a build-time step: MetaSchedule's RewriteLayout uses it,
# Relax's SplitLayoutRewritePreproc moves such blocks out of the kernel and FoldConstant runs them once.
LAYOUT_REWRITE_PREPROC = "meta_schedule.layout_rewrite_preproc"
# Reduction loops at most this long are unrolled (3x3 / 5x5 / 7x7 windows, the stem's 3 input channels).
_UNROLL_REDUCTION = 7
# A last axis at most this long, not whole vectors, is unrolled in an injective kernel's row loop.
_UNROLL_ROW = 64
# Injective kernels smaller than this run on one thread: a parallel launch costs more than it saves.
_PARALLEL_MIN_ELEMENTS = 4096
# A model whose reduction kernels are estimated to take less than this on one core on average runs every
# kernel on one thread. Waking the pool's other threads and joining them costs tens of microseconds on a VM
# (an interrupt into an idle vCPU each time), which kernels this short cannot win back. The choice is per
# model, not per kernel: a serial kernel lets the workers fall asleep and the next parallel one pays a
# deeper wake, so mixing lost to all-parallel on x1.0 (Intel Xeon, 2 threads, `sleep` policy: x0.25 all
# serial 0.58-0.61x ORT vs 0.88x all parallel; x0.5 1.03-1.06x either way; x1.0 1.19x parallel vs 1.26x mixed).
_PARALLEL_MIN_MEAN_US = 40.0
# The estimate is deliberately crude: a multiply-add rate and a memory rate typical of one x86 core here.
_MACS_PER_US = 40e3
_BYTES_PER_US = 40e3
_ACCUMULATOR_BYTES = 4  # float32 and int32


@dataclass(frozen=True)
class Tile:
    rows: int  # output rows (the dimension before the channels) held in registers at once
    cols: int  # output channels per register tile: `cols // vector` registers of `vector` lanes each
    vector: int  # lanes per register the tile uses (the target's width, or a half/quarter of it)


# Registers per tile row: 3 lets 48- and 24-channel layers (x2.0's, x1.0's) use whole tiles of 16 / 8 lanes.
_ROW_REGISTERS = (4, 3, 2, 1)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def choose_tile(rows: int, cols: int, unit: VectorUnit) -> Tile:
    """The register tile (rows x cols accumulators) with the most FMAs per load that fits the registers (and
    stays under TILE_BYTES, so that TVM keeps it on the stack, where LLVM turns it into registers).

    Columns must divide the channel count (a partial vector would need a predicate that blocks
    vectorisation); rows need not divide the row count (a predicate on the row loop is cheap), but a
    divisor is preferred because the last, partial tile wastes lanes. A tile row is a few whole
    vectors, each vectorised on its own: LLVM split one 48- or 24-wide vector into shuffles that ran
    20-30x slower (576->96 pointwise: 1.39 ms with 48 columns, 45 us with 32).
    """
    lanes = unit.lanes
    widths = [lanes] if cols % lanes == 0 else [v for v in (lanes // 2, lanes // 4) if v >= 1]
    # One row (a classifier's matrix-vector product): every register is an independent FMA chain, and one
    # 8-lane chain (1000 classes) waited on its own latency (x2.0's 2560->1000: 669 us vs ORT 520).
    counts = _ROW_REGISTERS if rows > 1 else range(unit.registers // 2, 0, -1)
    options = [(r * v, v) for v in widths for r in counts if cols % (r * v) == 0]
    if not options:
        width = max(d for d in _divisors(cols) if d <= lanes)
        options = [(width, width)]
    best, best_score = Tile(1, *options[0]), -1.0
    for col, vector in options:
        registers = col // vector
        for row in range(1, min(rows, 8) + 1):
            if not unit.fits(row, registers) or row * col * _ACCUMULATOR_BYTES >= TILE_BYTES:
                continue
            waste = rows / (-(-rows // row) * row)  # share of the last tile's rows that are real
            # Useful vector FMAs per cycle-ish: FMA instructions (row x registers, two ports) or loads
            # (a broadcast per row and a weight vector per register, ~three ports) bound a reduction
            # step; ties go to the tile with fewer loads per FMA.
            fmas, loads = row * registers, row + registers
            useful = row * col / lanes
            score = useful / max(fmas, loads / 1.5) * waste**2 + 1e-3 * fmas / loads
            if score > best_score + 1e-9:
                best, best_score = Tile(row, col, vector), score
    return best


def _work(extents) -> int:
    total = 1
    for extent in extents:
        total *= int(extent)
    return total


def _nbytes(buffer: tirx.Buffer) -> int:
    return _work(buffer.shape) * buffer.dtype.bits // 8


def _layout_free(func: tirx.PrimFunc) -> list[tirx.Buffer]:
    """The kernel's weights: the arguments Relax marked layout-free (constants the build may repack)."""
    return [func.params[int(i)] for i in (func.attrs.get("layout_free_buffers", []) or [])]


def _serial_us(func: tirx.PrimFunc, extents: list[int]) -> float:
    """Crude one-core time of a reduction kernel: its multiply-adds plus the bytes of its arguments."""
    nbytes = sum(_nbytes(buf) for buf in func.params)
    return _work(extents) / _MACS_PER_US + nbytes / _BYTES_PER_US


def _block(sch: s_tir.Schedule, rv) -> tirx.SBlock:
    return sch.get(rv)


def _is_reduction(block: tirx.SBlock) -> bool:
    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in block.iter_vars)


def _reductions(sch: s_tir.Schedule) -> list:
    """The reduction blocks directly under the kernel's root block."""
    return [rv for rv in sch.get_child_blocks(sch.get_sblock("root")) if _is_reduction(_block(sch, rv))]


def fold_epilogue(sch: s_tir.Schedule, reduction) -> tuple:
    """(write-back, tail): accumulate `reduction` in registers and fold its elementwise epilogue (bias, ReLU6,
    hard-swish, SiLU, residual add) into the write-back of those registers; the tail holds the blocks that do
    not fold. The walk stops at the next reduction (the next stage of a merged block).

    An epilogue may be a small graph rather than a chain: hard-swish and SiLU read the biased value twice,
    x * relu6(x + 3) / 6 and x * sigmoid(x). Its inner blocks are first inlined forward into the blocks that
    read them, so that one block remains to reverse-inline into the write-back. A block is reverse-inlined only
    where it alone reads its producer: TVM accepts the other case and the build then fails in FlattenBuffer
    (a buffer used before its definition).
    """
    _inline_side_inputs(sch)
    write_back = sch.cache_write(reduction, 0, TILE_SCOPE)
    names = [sch.get(rv).name_hint for rv in _epilogue(sch, write_back)]
    for name in names:
        rv = sch.get_sblock(name)
        consumers = sch.get_consumers(rv)
        size = _output_elements(sch.get(rv))
        # Never into a broadcast (SE's x * gate, gate per channel): the gate would be recomputed per pixel.
        if consumers and all(not _is_reduction(sch.get(c)) and _output_elements(sch.get(c)) == size for c in consumers):
            _try(sch.compute_inline, rv)
    tail = []
    for name in names:
        rv = _existing(sch, name)
        if rv is None:
            continue  # inlined forward above
        producers = sch.get_producers(rv)
        alone = len(producers) == 1 and len(sch.get_consumers(producers[0])) == 1
        # Never a slice (an integer conv padded to whole vectors, cut back): TVM accepts that reverse inline and
        # the kernel then writes the padded channels past the end of each output row.
        whole = alone and _output_elements(sch.get(rv)) == _output_elements(sch.get(producers[0]))
        if not (whole and _try(sch.reverse_compute_inline, rv)):
            tail.append(rv)
    return write_back, tail


def _inline_side_inputs(sch: s_tir.Schedule) -> None:
    """Inline the elementwise blocks that read only the kernel's inputs into the epilogue blocks that use them.

    An integer residual add rescales its second input (cast, minus zero point, times scale) in blocks of its
    own; left as they are, the epilogue has blocks that no reduction feeds and it does not fold.
    """
    fed = set()
    for rv in _reductions(sch):
        fed.update(sch.get(b).name_hint for b in _epilogue(sch, rv))
    changed = True
    while changed:  # from the epilogue backwards: a block's consumer must be in the epilogue before it inlines
        changed = False
        for rv in sch.get_child_blocks(sch.get_sblock("root")):
            block = sch.get(rv)
            if _is_reduction(block) or block.name_hint in fed:
                continue
            consumers = sch.get_consumers(rv)
            size = _output_elements(block)
            if (
                consumers
                and all(sch.get(c).name_hint in fed and _output_elements(sch.get(c)) == size for c in consumers)
                and _try(sch.compute_inline, rv)
            ):
                changed = True
                break


def _output_elements(block: tirx.SBlock) -> int:
    """The points a block writes: the product of its spatial axes."""
    return _work(iv.dom.extent for iv in block.iter_vars if iv.iter_type == tirx.IterVar.DataPar)


def _epilogue(sch: s_tir.Schedule, start) -> list:
    """The spatial blocks reachable from `start` through its consumers without crossing a reduction, producers first."""
    order, seen, pending = [], set(), list(sch.get_consumers(start))
    while pending:
        rv = pending.pop(0)
        block = sch.get(rv)
        if block.name_hint in seen or _is_reduction(block):
            continue
        seen.add(block.name_hint)
        order.append(rv)
        pending.extend(sch.get_consumers(rv))
    return _producers_first(sch, order)


def _producers_first(sch: s_tir.Schedule, blocks: list) -> list:
    """`blocks` sorted so that each comes after the blocks among them it reads (they are few: a plain sort)."""
    names = {sch.get(rv).name_hint: rv for rv in blocks}
    reads = {name: {sch.get(p).name_hint for p in sch.get_producers(rv)} & set(names) for name, rv in names.items()}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and reads[n] <= set(ordered)]
        ordered.extend(ready or [n for n in names if n not in ordered])  # a cycle cannot happen; never loop forever
    return [names[n] for n in ordered]


def _existing(sch: s_tir.Schedule, name: str):
    try:
        return sch.get_sblock(name)
    except Exception:  # noqa: BLE001 - inlined away
        return None


def _try(action, *args) -> bool:
    try:
        action(*args)
        return True
    except Exception:  # a primitive that does not apply to this block: the rule takes another path
        return False


def _inline_producers(sch: s_tir.Schedule, main) -> None:
    """Inline every spatial block before the reduction (padding, input layout changes) into it."""
    changed = True
    while changed:
        changed = False
        for rv in sch.get_producers(main):
            block = _block(sch, rv)
            if not _is_reduction(block) and _try(sch.compute_inline, rv):
                changed = True
                break


def _pack_weights(sch: s_tir.Schedule, main, func: tirx.PrimFunc, channel_var: tirx.Var, cols: int) -> None:
    """Repack each weight the vector loop reads with a stride so that a tile's channels are contiguous.

    [K, kh, kw, C] -> [K/cols, kh, kw, C, cols]: a layout-rewrite block the build folds into the
    constant once (no cost per inference), exactly as MetaSchedule's RewriteLayout does.
    """

    def layout(buffer, dims_of):
        dims = dims_of(channel_var)
        if len(buffer.shape) < 2 or len(dims) != 1 or int(buffer.shape[dims[0]]) % cols:
            return None
        return _channel_tiles_last(dims[0], cols)

    _repack_weights(sch, main, func, layout)


def _repack_weights(sch: s_tir.Schedule, main, func: tirx.PrimFunc, layout) -> None:
    """Give each weight the reduction reads the layout `layout(buffer, dims_of)` returns (an index map, or None
    to leave it), where dims_of(var) lists the buffer's dimensions that `var` indexes, as a build-time copy."""
    weights = _layout_free(func)
    for index, region in enumerate(_block(sch, main).reads):
        buffer = region.source  # TVM 0.27: a region's buffer is the parameter itself for arguments
        if not any(buffer.same_as(w) for w in weights):
            continue
        starts = [r.min for r in region.region]
        index_map = layout(buffer, lambda var: [d for d, v in enumerate(starts) if isinstance(v, tirx.Var) and v.same_as(var)])
        if index_map is None:
            continue
        copy = sch.cache_read(main, index, "global")
        sch.transform_layout(copy, ("write", 0), index_map)
        sch.annotate(copy, LAYOUT_REWRITE_PREPROC, True)


def _channel_tiles_last(dim: int, cols: int):
    """Index map moving dimension `dim` into tiles of `cols`: (.., k, ..) -> (k // cols, .., k % cols)."""

    def index_map(*idx):
        rest = [idx[j] for j in range(len(idx)) if j != dim]
        return (idx[dim] // cols, *rest, idx[dim] % cols)

    return index_map


class ReductionRule(ScheduleRule):
    """A CPU rule for kernels with a given number of reduction blocks under the root (REDUCTIONS)."""

    REDUCTIONS: tuple[int, ...] = ()

    def __init__(self, parallel: bool = True) -> None:
        super().__init__()
        self.parallel = parallel

    def apply(self, func: tirx.PrimFunc, target, _tunable: bool):
        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        sch = s_tir.Schedule(func)
        reductions = _reductions(sch)
        if len(reductions) not in self.REDUCTIONS:
            return None
        # An exception here is a rule that failed on this kernel: schedules.apply records it and tries the next.
        return self._schedule(sch, func, reductions, vector_unit(target))

    def _schedule(self, sch: s_tir.Schedule, func: tirx.PrimFunc, reductions: list, unit: VectorUnit):
        raise NotImplementedError


class RegisterBlockedReduction(ReductionRule):
    """One reduction kernel with a channels-last output: pointwise/stem/grouped/depthwise conv, dense, pooling.

    The output's last dimension (channels) is tiled by a multiple of the vector width and vectorised,
    the one before it (width, or batch for dense) by a few rows kept in registers; the reduction
    (kh, kw, input channels) runs inside the tile, accumulating in registers; the bias/activation/
    residual epilogue is computed from the registers as the tile is written back; the tiles run in
    parallel (unless `parallel=False`); weights are repacked at build time so each tile reads them contiguously.
    """

    REDUCTIONS = (1,)

    def _schedule(self, sch: s_tir.Schedule, func: tirx.PrimFunc, reductions: list, unit: VectorUnit):
        (main,) = reductions
        block = _block(sch, main)
        loops = sch.get_loops(main)
        if len(loops) != len(block.iter_vars) or len(block.writes) != 1:
            return None
        spatial = [i for i, iv in enumerate(block.iter_vars) if iv.iter_type == tirx.IterVar.DataPar]
        reduce = [i for i, iv in enumerate(block.iter_vars) if iv.iter_type == tirx.IterVar.CommReduce]
        if not spatial or spatial != list(range(len(spatial))):
            return None  # reduction loops interleaved with spatial ones: not a shape these rules know
        extents = [int(iv.dom.extent) for iv in block.iter_vars]
        channel = spatial[-1]
        row = spatial[-2] if len(spatial) >= 2 else None
        tile = choose_tile(extents[row] if row is not None else 1, extents[channel], unit)

        _inline_producers(sch, main)
        dot = _dot_reduction(sch, main, func, reduce, tile, unit)
        if dot is None:
            _pack_weights(sch, main, func, block.iter_vars[channel].var, tile.cols)
        else:
            _pack_dot_weights(sch, main, func, block.iter_vars[channel].var, block.iter_vars[dot].var, tile, unit.dot.depth)
        write_back, tail = fold_epilogue(sch, main)

        weights_first = _weights_outweigh_data(func, block)
        loops = sch.get_loops(main)
        channel_outer, channel_inner = sch.split(loops[channel], [None, tile.cols])
        if row is not None:
            row_outer, row_inner = sch.split(loops[row], [None, tile.rows])
            outer = [loops[i] for i in spatial[:-2]] + [row_outer]
        else:
            row_inner, outer = None, []
        reduction_loops = [loops[i] for i in reduce]
        depth = []
        if dot is not None:
            # The dot product's 4 bytes go innermost, below the lanes, where the intrinsic replaces both loops.
            position = reduce.index(dot)
            reduction_loops[position], dot_inner = sch.split(reduction_loops[position], [None, unit.dot.depth])
            depth = [dot_inner]
        inner = [row_inner] if row_inner is not None else []
        # Tile order: the larger operand is read once. Spatial tiles outside the channel tiles keep a tile's
        # input rows hot and sweep the whole weight per row tile; channel tiles outside keep a weight panel
        # hot and sweep the input per panel. Late 7x7/14x14 layers have megabytes of weights over a few
        # hundred KB of activations: sweeping those weights once per row tile ran 2x slower than ORT
        # (x2.0's 1920->640 pointwise: 2.06 ms vs 1.07 ms, Intel Xeon).
        tiles = [channel_outer, *outer] if weights_first else [*outer, channel_outer]
        channel_registers, channel_lanes = sch.split(channel_inner, [None, tile.vector])
        sch.reorder(*tiles, *reduction_loops, *inner, channel_registers, channel_lanes, *depth)
        sch.reverse_compute_at(write_back, tiles[-1], preserve_unit_loops=True)
        # A tail block larger than the kernel's output broadcasts it (squeeze-and-excitation: the gate computed
        # here scales a whole feature map): it runs after the tiles as a loop nest of its own. Inside a tile it
        # was unrolled over the whole map (300k lines of assembly, minutes of LLVM per kernel).
        size = _output_elements(block)
        broadcasts = [rv for rv in tail if _output_elements(sch.get(rv)) > size]
        tail = [rv for rv in tail if rv not in broadcasts]
        for block_rv in tail:
            _try(sch.reverse_compute_at, block_rv, tiles[-1], True)

        fused = sch.fuse(*tiles)
        if self.parallel:
            sch.parallel(fused)
        for loop, iv_index in zip(reduction_loops, reduce):
            if 1 < extents[iv_index] <= _UNROLL_REDUCTION and iv_index != dot:
                sch.unroll(loop)
        if row_inner is not None:
            sch.unroll(row_inner)
        sch.unroll(channel_registers)
        if dot is None:
            sch.vectorize(channel_lanes)
        for block_rv in [write_back, *tail]:
            _vectorize_innermost(sch, block_rv, first=1, lanes=tile.vector)
        for block_rv in broadcasts:
            _schedule_injective(sch, block_rv, sch.get_loops(block_rv), unit.lanes, self.parallel)
        if reduction_loops:
            init = sch.decompose_reduction(main, reduction_loops[0])
            _vectorize_innermost(sch, init, first=1, lanes=tile.vector)
        if dot is not None:
            sch.tensorize(channel_lanes, dot_intrinsic(unit.dot, tile.vector))
        return sch


def _dot_reduction(sch: s_tir.Schedule, main, func: tirx.PrimFunc, reduce: list[int], tile: Tile, unit: VectorUnit) -> int | None:
    """The reduction axis the target's 8-bit dot-product instruction can take (the input channels: contiguous in
    the 8-bit data of the type it takes, a multiple of the instruction's depth), or None to keep the plain vector
    loop."""
    if unit.dot is None or tile.vector not in unit.dot.lanes or not reduce:
        return None
    block = _block(sch, main)
    if str(block.writes[0].source.dtype) != "int32":
        return None
    axis = reduce[-1]
    var = block.iter_vars[axis].var
    if int(block.iter_vars[axis].dom.extent) % unit.dot.depth:
        return None
    weights = _layout_free(func)
    kinds = set()
    for region in block.reads:
        starts = [r.min for r in region.region]
        is_weight = any(region.source.same_as(w) for w in weights)
        # The data's 4 bytes must be contiguous (its last axis); the weight is repacked, any axis will do.
        indexed = starts[-1:] if not is_weight else starts
        if any(isinstance(v, tirx.Var) and v.same_as(var) for v in indexed):
            kinds.add(("weight" if is_weight else "data", str(region.source.dtype)))
    return axis if kinds == {("data", unit.dot.data), ("weight", "int8")} else None


def _pack_dot_weights(
    sch: s_tir.Schedule, main, func: tirx.PrimFunc, channel_var: tirx.Var, depth_var: tirx.Var, tile: Tile, group: int
) -> None:
    """Repack the int8 weight for the dot-product tile: [K, .., C] -> [K/cols, .., C/g, (cols/lanes,) lanes, g]
    (g: the instruction's depth), so that each instruction reads its lanes x g bytes at once and a tile's step
    reads one contiguous run."""

    def layout(_buffer, dims_of):
        channel, depth = dims_of(channel_var), dims_of(depth_var)
        return _dot_tiles(channel[0], depth[0], tile, group) if len(channel) == 1 and len(depth) == 1 else None

    _repack_weights(sch, main, func, layout)


def _dot_tiles(channel: int, depth: int, tile: Tile, group: int):
    def index_map(*idx):
        k, c = idx[channel], idx[depth]
        rest = [idx[j] for j in range(len(idx)) if j not in (channel, depth)]
        # A tile of one register has no register axis: an axis that is always 0 fails TVM's layout transform.
        registers = [k % tile.cols // tile.vector] if tile.cols > tile.vector else []
        return (k // tile.cols, *rest, c // group, *registers, k % tile.vector, c % group)

    return index_map


def _weights_outweigh_data(func: tirx.PrimFunc, block: tirx.SBlock) -> bool:
    """Whether the kernel's weights (its layout-free arguments) hold more bytes than the other arguments it reads."""
    weights = _layout_free(func)
    weight_bytes = data_bytes = 0
    for region in block.reads:
        if any(region.source.same_as(w) for w in weights):
            weight_bytes += _nbytes(region.source)
        else:
            data_bytes += _nbytes(region.source)
    return weight_bytes > data_bytes


def _vectorize_innermost(sch: s_tir.Schedule, block_rv, first: int, lanes: int) -> None:
    """Vectorise a tile block's innermost loop in vectors of `lanes` and unroll the others below the parallel loop."""
    loops = sch.get_loops(block_rv)[first:]
    if not loops:
        return
    *others, last = loops
    extent = sch.get(last).extent
    if isinstance(extent, tirx.IntImm) and int(extent) > lanes and int(extent) % lanes == 0:
        outer, last = sch.split(last, [None, lanes])
        others.append(outer)
    _try(sch.vectorize, last)
    for loop in others:
        _try(sch.unroll, loop)


class ParallelInjective(ScheduleRule):
    """Kernels without a reduction (layout transposes, reshapes, elementwise): every intermediate inlined, the
    loops fused, vectorised along an axis that is contiguous in memory, and parallel (unless `parallel=False`)."""

    def __init__(self, parallel: bool = True) -> None:
        super().__init__()
        self.parallel = parallel

    def apply(self, func: tirx.PrimFunc, target, _tunable: bool):
        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        sch = s_tir.Schedule(func)
        if _reductions(sch):
            return None
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
        lanes = vector_unit(target).lanes
        for rv in blocks[:-1]:
            _try(sch.compute_inline, rv)
        for rv in sch.get_child_blocks(sch.get_sblock("root")):
            loops = sch.get_loops(rv)
            if loops:
                _schedule_injective(sch, rv, loops, lanes, self.parallel)
        return sch


def _schedule_injective(sch: s_tir.Schedule, rv, loops: list, lanes: int, parallel: bool) -> None:
    block = _block(sch, rv)
    extents = [int(iv.dom.extent) for iv in block.iter_vars]
    total = _work(extents)
    axis = _read_contiguous_axis(block, extents, lanes) if len(loops) == len(extents) else None
    if axis is None and len(loops) > 1 and extents[-1] % lanes and not _same_index_reads(block):
        # A concat or pad along a last axis that is not whole vectors (x0.75's 18 channels + 2): one flat vector
        # loop gave each lane a division and modulo of its index into a gather (105 us for 63 KB); a loop per
        # row of the last axis, unrolled, copies it at scalar speed with no index arithmetic.
        *outer, last = loops
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        if extents[-1] <= _UNROLL_ROW:
            sch.unroll(last)
    elif axis is None:
        # Output-contiguous: one flat loop, vectorised in whole vectors (elementwise ops, reshapes).
        fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
        if total % lanes == 0:
            fused, vector = sch.split(fused, [None, lanes])
            sch.vectorize(vector)
    else:
        # A transpose whose output's last axis is too short for a vector (NCHW -> NHWC with 3 channels):
        # vectorise the axis the input is contiguous in instead. Fusing everything into one flat loop made
        # every lane divide and take the modulo of its index into a gather: 10x slower (200 vs 19 us).
        vector_outer, vector = sch.split(loops[axis], [None, lanes])
        others = [loop for i, loop in enumerate(loops) if i != axis]
        *outer, last = others
        sch.reorder(*outer, vector_outer, last, vector)
        sch.vectorize(vector)
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0] if outer else vector_outer
    if parallel and total >= _PARALLEL_MIN_ELEMENTS:
        sch.parallel(fused)


def _same_index_reads(block: tirx.SBlock) -> bool:
    """Whether every read indexes its buffer exactly as the block writes its output (elementwise, same shape)."""
    written = [r.min for r in block.writes[0].region]
    return all(len(r.region) == len(written) and all(a.same_as(b) for a, b in zip((x.min for x in r.region), written)) for r in block.reads)


def _read_contiguous_axis(block: tirx.SBlock, extents: list[int], lanes: int) -> int | None:
    """The block axis to vectorise instead of the output's last one, or None to keep the output's.

    Only when the output's last axis is shorter than a vector and a read indexes its own last
    (contiguous) dimension by a single other axis whose extent is a whole number of vectors.
    """
    if extents[-1] >= lanes:
        return None
    axis_of = {iv.var: i for i, iv in enumerate(block.iter_vars)}
    for region in block.reads:
        index = region.region[-1].min if region.region else None
        axis = axis_of.get(index) if isinstance(index, tirx.Var) else None
        if axis is not None and axis != len(extents) - 1 and extents[axis] % lanes == 0:
            return axis
    return None


def default_cpu_rules(parallel: bool = True) -> list[ScheduleRule]:
    """Our CPU rules, most specific first (the first rule that accepts a kernel schedules it)."""
    from tvmdeploy.compile.schedules.cpu_block import ExpandDepthwiseBlock  # it builds on this module

    return [ExpandDepthwiseBlock(parallel), RegisterBlockedReduction(parallel), ParallelInjective(parallel)]


def worth_parallel(mod) -> bool:
    """Whether a model's kernels are long enough on average for a thread pool to pay (see _PARALLEL_MIN_MEAN_US)."""
    estimates = []
    for _, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        try:
            sch = s_tir.Schedule(func)
            reductions = _reductions(sch)
            if len(reductions) == 1:
                estimates.append(_serial_us(func, [int(iv.dom.extent) for iv in _block(sch, reductions[0]).iter_vars]))
        except Exception as exc:  # noqa: BLE001 - a kernel it cannot read (symbolic shapes...) is left out
            log.debug("no time estimate for a kernel: %s", exc)
    return not estimates or sum(estimates) / len(estimates) >= _PARALLEL_MIN_MEAN_US


def schedule_kernel(func: tirx.PrimFunc, target, parallel: bool = True) -> s_tir.Schedule | None:
    """The default schedule of one kernel (the first rule that succeeds on it), or None to keep TVM's lowering."""
    from tvmdeploy.compile.schedules.apply import schedule_with_rules

    return schedule_with_rules(func, target, default_cpu_rules(parallel), check_lowering=False).schedule
