"""Default CPU schedule of a merged inverted-residual kernel: its intermediate tensors computed band by band in cache."""

from __future__ import annotations

from tvm import s_tir, tirx

from tvmdeploy.compile.schedules.cpu import (
    _UNROLL_REDUCTION,
    ReductionRule,
    _is_reduction,
    _pack_weights,
    _try,
    _vectorize_innermost,
    choose_tile,
    fold_epilogue,
)

# The rows one band holds (expanded, and depthwise when a projection follows): at most this many bytes, about
# a core's L2 (2 MiB on the Intel Xeon measured, 1 MiB on Zen 4/5, 512 KiB on Zen 3), so each stage writes
# them and the next reads them in cache.
BAND_MAX_BYTES = 1 << 20
# Bands the output is cut into, at least (for the threads to share; even counts split evenly over two).
_MIN_BANDS = 4
# A band recomputes the expanded rows it shares with the next (the window's halo). A block whose band
# would compute more than this many expanded rows per row it needs stays apart (schedules.fusion leaves
# a block this rule refuses unmerged): x2.0's 14x14x768 blocks, one output row per band, three expanded
# rows each, ran 1.14x ORT against 0.99x unmerged (Intel Xeon).
MAX_RECOMPUTE = 1.3


def choose_band(out_rows: int, stride: int, kernel: int, row_bytes: int, out_row_bytes: int = 0) -> int:
    """Output rows per band: the most that fit BAND_MAX_BYTES with at least _MIN_BANDS bands, even counts first.

    A band of b output rows needs (b - 1) * stride + kernel expanded rows of `row_bytes` (and, when the
    block ends in a projection, b depthwise rows of `out_row_bytes`); the kernel - stride expanded rows it
    shares with the next band are computed by both, so taller bands recompute less.
    """
    options = []
    for rows in range(1, out_rows + 1):
        if out_rows % rows:
            continue
        bands = out_rows // rows
        fits = ((rows - 1) * stride + kernel) * row_bytes + rows * out_row_bytes <= BAND_MAX_BYTES
        if rows == 1 or (fits and bands >= _MIN_BANDS):
            options.append((bands % 2 == 0, rows))
    return max(options)[1]


def _depth(sch: s_tir.Schedule, loop) -> int:
    """How many loops enclose a block placed directly under `loop`, counting `loop` itself."""
    depth, sref = 0, sch.get_sref(loop)
    while sref is not None and isinstance(sref.stmt, tirx.For):
        depth, sref = depth + 1, sref.parent
    return depth


class ExpandDepthwiseBlock(ReductionRule):
    """A kernel made by schedules.fusion: a 1x1 expansion (+ bias, ReLU6) feeding a depthwise conv, and maybe
    the 1x1 projection (+ bias, residual) reading that.

    The last stage's output rows are cut into bands (in parallel); in each band the expansion computes just
    the rows the band's depthwise windows read (halo included) into a band-sized buffer that stays in cache,
    the depthwise consumes them (into a second band buffer when a projection follows), and the last stage
    writes the band's output. Every stage uses the register tiles RegisterBlockedReduction gives a lone kernel.
    """

    REDUCTIONS = (2, 3)

    def _schedule(self, sch: s_tir.Schedule, func: tirx.PrimFunc, reductions: list, unit):
        blocks = [sch.get(rv) for rv in reductions]
        # Every stage's iteration space is n, h, w, c, kh, kw, input channels per output channel.
        extents = [[int(iv.dom.extent) for iv in block.iter_vars] for block in blocks]
        if any(len(e) != 7 for e in extents) or extents[0][3] != extents[1][3]:
            return None
        expansion, depthwise = extents[0], extents[1]
        item = blocks[0].writes[0].source.dtype.bits // 8
        stride, kernel = max(1, round(expansion[1] / depthwise[1])), depthwise[4]
        band = choose_band(
            depthwise[1],
            stride,
            kernel,
            expansion[2] * expansion[3] * item,
            depthwise[2] * depthwise[3] * item if len(reductions) == 3 else 0,
        )
        if ((band - 1) * stride + kernel) / (band * stride) > MAX_RECOMPUTE:
            return None
        tiles = [choose_tile(e[2], e[3], unit) for e in extents]

        for rv in sch.get_producers(reductions[0]):  # the expansion's trivial padding copy
            if not _is_reduction(sch.get(rv)):
                _try(sch.compute_inline, rv)
        for reduction in reductions[1:]:  # later stages: only their padding, never the previous stage's epilogue
            for rv in sch.get_producers(reduction):
                if "pad" in sch.get(rv).name_hint:
                    sch.compute_inline(rv)
        for reduction, block, tile in zip(reductions, blocks, tiles):
            _pack_weights(sch, reduction, func, block.iter_vars[3].var, tile.cols)
        # Each stage's epilogue folds into its register write-back (a residual add too), up to the next stage.
        writes = [fold_epilogue(sch, r)[0] for r in reductions]

        # The last stage's rows are cut into bands (in parallel); each earlier stage computes, inside a band,
        # just the rows the next one reads, into band-sized buffers, consumer first (compute_at's order).
        n, h, *_ = sch.get_loops(reductions[-1])
        band_outer, _ = sch.split(h, [None, band])
        bands = sch.fuse(n, band_outer)
        placed = [self._tile(sch, reductions[-1], writes[-1], tiles[-1], outer=2)]
        for reduction, write, tile in reversed(list(zip(reductions[:-1], writes[:-1], tiles[:-1]))):
            sch.compute_at(write, bands, preserve_unit_loops=True)
            sch.compute_at(reduction, bands, preserve_unit_loops=True)
            placed.append(self._tile(sch, reduction, write, tile, outer=3))
        if self.parallel:
            sch.parallel(bands)
        for reduction, write, tile, channel_outer, reduce in placed:
            for loop in reduce:
                if 1 < int(sch.get(loop).extent) <= _UNROLL_REDUCTION:
                    sch.unroll(loop)
            init = sch.decompose_reduction(reduction, reduce[0])
            for block in (write, init):
                _vectorize_innermost(sch, block, first=_depth(sch, channel_outer), lanes=tile.vector)
        return sch

    @staticmethod
    def _tile(sch: s_tir.Schedule, reduction, write, tile, outer: int):
        """Register-tile one stage below its first `outer` loops: column tiles > channel tiles > reduction >
        rows x registers x lanes, as RegisterBlockedReduction does for a lone kernel."""
        w, c, *reduce = sch.get_loops(reduction)[outer:]
        w_outer, w_inner = sch.split(w, [None, tile.rows])
        c_outer, c_inner = sch.split(c, [None, tile.cols])
        c_registers, c_lanes = sch.split(c_inner, [None, tile.vector])
        sch.reorder(w_outer, c_outer, *reduce, w_inner, c_registers, c_lanes)
        sch.reverse_compute_at(write, c_outer, preserve_unit_loops=True)
        sch.unroll(w_inner)
        sch.unroll(c_registers)
        sch.vectorize(c_lanes)
        return reduction, write, tile, c_outer, reduce
