"""Default CPU schedule of a merged expansion+depthwise kernel: the expanded tensor computed band by band in cache."""

from __future__ import annotations

import logging

from tvm import s_tir, tirx
from tvm.s_tir.dlight.base import ScheduleRule

from tvmdeploy.compile.schedules.cpu import (
    _is_reduction,
    _pack_weights,
    _reductions,
    _try,
    _vectorize_innermost,
    choose_tile,
)
from tvmdeploy.compile.schedules.cpu_vector import vector_unit

log = logging.getLogger(__name__)

# The expanded rows one band holds: at most this many bytes (a share of a core's L2: 2 MiB on the Intel Xeon
# measured, 1 MiB on Zen 4/5, 512 KiB on Zen 3), so the expansion writes them and the depthwise reads them in cache.
BAND_MAX_BYTES = 1 << 20
# Bands the output is cut into, at least (for the threads to share; even counts split evenly over two).
_MIN_BANDS = 4


def choose_band(out_rows: int, stride: int, kernel: int, row_bytes: int) -> int:
    """Output rows per band: the most that fit BAND_MAX_BYTES with at least _MIN_BANDS bands, even counts first.

    A band of b output rows needs (b - 1) * stride + kernel expanded rows; the kernel - stride rows it shares
    with the next band are computed by both, so taller bands recompute less.
    """
    options = []
    for rows in range(1, out_rows + 1):
        if out_rows % rows:
            continue
        bands = out_rows // rows
        fits = ((rows - 1) * stride + kernel) * row_bytes <= BAND_MAX_BYTES
        if rows == 1 or (fits and bands >= _MIN_BANDS):
            options.append((bands % 2 == 0, rows))
    return max(options)[1]


def _depth(sch: s_tir.Schedule, loop) -> int:
    """How many loops enclose a block placed directly under `loop`, counting `loop` itself."""
    depth, sref = 0, sch.get_sref(loop)
    while sref is not None and isinstance(sref.stmt, tirx.For):
        depth, sref = depth + 1, sref.parent
    return depth


class ExpandDepthwiseBlock(ScheduleRule):
    """A kernel made by schedules.fusion: a 1x1 expansion (+ bias, ReLU6) whose output feeds a depthwise conv.

    The depthwise output is cut into bands of rows (in parallel); in each band the expansion computes just
    the rows the band's windows read (halo included) into a band-sized buffer that stays in cache, then the
    depthwise consumes them. Both halves use the same register tiles as RegisterBlockedReduction.
    """

    def __init__(self, parallel: bool = True) -> None:
        super().__init__()
        self.parallel = parallel

    def apply(self, func: tirx.PrimFunc, target, _tunable: bool):
        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        sch = s_tir.Schedule(func)
        reductions = _reductions(sch)
        if len(reductions) != 2:
            return None
        try:
            return self._schedule(sch, func, *reductions, vector_unit(target))
        except Exception as exc:  # noqa: BLE001 - not a kernel of this shape: the next rule (or TVM) takes it
            log.debug("no block schedule for %s: %s", func.attrs.get("global_symbol", "?"), exc)
            return None

    def _schedule(self, sch: s_tir.Schedule, func: tirx.PrimFunc, pointwise, depthwise, unit):
        pw_block, dw_block = sch.get(pointwise), sch.get(depthwise)
        pw_extents = [int(iv.dom.extent) for iv in pw_block.iter_vars]  # n, h, w, c, kh=1, kw=1, c_in
        dw_extents = [int(iv.dom.extent) for iv in dw_block.iter_vars]  # n, h, w, c, kh, kw, 1
        if len(pw_extents) != 7 or len(dw_extents) != 7 or pw_extents[3] != dw_extents[3]:
            return None
        rows_in, width_in, channels = pw_extents[1:4]
        rows_out, width_out, kernel = dw_extents[1], dw_extents[2], dw_extents[4]
        stride = max(1, round(rows_in / rows_out))
        pw_tile = choose_tile(width_in, channels, unit)
        dw_tile = choose_tile(width_out, channels, unit)
        band = choose_band(rows_out, stride, kernel, width_in * channels * pw_block.writes[0].source.dtype.bits // 8)

        for rv in sch.get_producers(pointwise):  # the expansion's trivial padding copy
            if not _is_reduction(sch.get(rv)):
                _try(sch.compute_inline, rv)
        for rv in sch.get_producers(depthwise):  # only the depthwise padding, not the expansion's epilogue
            if "pad" in sch.get(rv).name_hint:
                sch.compute_inline(rv)
        _pack_weights(sch, pointwise, func, pw_block.iter_vars[3].var, pw_tile.cols)
        _pack_weights(sch, depthwise, func, dw_block.iter_vars[3].var, dw_tile.cols)
        pw_write = self._write_back(sch, pointwise, stop=depthwise)
        dw_write = self._write_back(sch, depthwise, stop=None)

        # Depthwise: bands (parallel) > rows > column tiles > channel tiles > window > registers.
        n, h, w, c, *window = sch.get_loops(depthwise)
        band_outer, band_rows = sch.split(h, [None, band])
        w_outer, w_inner = sch.split(w, [None, dw_tile.rows])
        c_outer, c_inner = sch.split(c, [None, dw_tile.cols])
        c_registers, c_lanes = sch.split(c_inner, [None, dw_tile.vector])
        sch.reorder(n, band_outer, band_rows, w_outer, c_outer, *window, w_inner, c_registers, c_lanes)
        bands = sch.fuse(n, band_outer)
        sch.reverse_compute_at(dw_write, c_outer, preserve_unit_loops=True)

        # Expansion: only the rows this band reads, then the same register tiling as a lone pointwise kernel.
        sch.compute_at(pw_write, bands, preserve_unit_loops=True)
        sch.compute_at(pointwise, bands, preserve_unit_loops=True)
        _, pn, ph, pw_w, pw_c, *pw_reduce = sch.get_loops(pointwise)
        pw_w_outer, pw_w_inner = sch.split(pw_w, [None, pw_tile.rows])
        pw_c_outer, pw_c_inner = sch.split(pw_c, [None, pw_tile.cols])
        pw_registers, pw_lanes = sch.split(pw_c_inner, [None, pw_tile.vector])
        sch.reorder(pn, ph, pw_w_outer, pw_c_outer, *pw_reduce, pw_w_inner, pw_registers, pw_lanes)
        sch.reverse_compute_at(pw_write, pw_c_outer, preserve_unit_loops=True)

        if self.parallel:
            sch.parallel(bands)
        for loop in window[:2]:
            sch.unroll(loop)
        for rows_loop, registers, lanes in ((w_inner, c_registers, c_lanes), (pw_w_inner, pw_registers, pw_lanes)):
            sch.unroll(rows_loop)
            sch.unroll(registers)
            sch.vectorize(lanes)
        pw_init = sch.decompose_reduction(pointwise, pw_reduce[0])
        dw_init = sch.decompose_reduction(depthwise, window[0])
        for block, loop, tile in ((pw_write, pw_c_outer, pw_tile), (pw_init, pw_c_outer, pw_tile),
                                  (dw_write, c_outer, dw_tile), (dw_init, c_outer, dw_tile)):
            _vectorize_innermost(sch, block, first=_depth(sch, loop), lanes=tile.vector)
        return sch

    @staticmethod
    def _write_back(sch: s_tir.Schedule, reduction, stop):
        """Accumulate `reduction` in registers and fold its elementwise epilogue into the write-back, up to `stop`."""
        write_back = sch.cache_write(reduction, 0, "local")
        while True:
            consumers = sch.get_consumers(write_back)
            if len(consumers) != 1 or (stop is not None and sch.get(consumers[0]).same_as(sch.get(stop))):
                return write_back
            if _is_reduction(sch.get(consumers[0])) or not _try(sch.reverse_compute_inline, consumers[0]):
                return write_back
