"""Per-kernel time of a local artifact (stem, depthwise, pointwise, head) via the Relax VM's instrument hook."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tvmdeploy.compile.schedules import BLOCK_CLASS, BLOCK_PREFIX
from tvmdeploy.runtime.errors import TvmDeployError

# Report order of the kernel classes; "vm" is the VM's own work between kernels (allocation, shape checks).
CLASSES = ("stem", "depthwise", "pointwise", BLOCK_CLASS, "head", "other", "vm")


@dataclass
class KernelTime:
    """One fused kernel (a PrimFunc), summed over its call sites in one inference."""

    name: str
    op_class: str
    kind: str
    calls: int
    median_us: float  # sum over call sites of each site's median time

    def to_dict(self) -> dict:
        return {"name": self.name, "class": self.op_class, "kind": self.kind, "calls": self.calls, "median_us": self.median_us}


@dataclass
class Breakdown:
    kernels: list[KernelTime]
    end_to_end_ms: float  # median of uninstrumented runs, for scale
    repeats: int
    notes: list[str] = field(default_factory=list)

    def by_class(self) -> dict[str, float]:
        """Microseconds per class, in CLASSES order, classes without kernels left out."""
        totals = {c: 0.0 for c in CLASSES}
        for k in self.kernels:
            totals[k.op_class] += k.median_us
        return {c: t for c, t in totals.items() if t > 0}

    def to_dict(self) -> dict:
        return {
            "end_to_end_ms": self.end_to_end_ms,
            "repeats": self.repeats,
            "by_class_us": self.by_class(),
            "kernels": [k.to_dict() for k in self.kernels],
            "notes": self.notes,
        }


def _conv_geometry(shapes: Sequence[tuple[int, ...]], nhwc: bool) -> tuple[int, int, int, int, int] | None:
    """(C_in, C_out, H_in, H_out, weight elements) of a fused conv call from its argument shapes."""
    four_d = [s for s in shapes if len(s) == 4]
    if len(shapes) < 3 or len(shapes[0]) != 4 or len(shapes[-1]) != 4 or len(four_d) < 2:
        return None
    data, out, weight = shapes[0], shapes[-1], shapes[1]
    c_in, c_out = (data[3], out[3]) if nhwc else (data[1], out[1])
    h_in, h_out = (data[1], out[1]) if nhwc else (data[2], out[2])
    return c_in, c_out, h_in, h_out, math.prod(weight)


def classify_call(name: str, shapes: Sequence[tuple[int, ...]], *, first_conv: bool, nhwc: bool) -> tuple[str, str]:
    """(class, detail) of one kernel call, from its name and argument shapes (data first, output last).

    Uses only the weight's element count, not its shape: a tuned build may have repacked the
    weight into a blocked layout (MetaSchedule RewriteLayout), which keeps the count.
    """
    lowered = name.lower()
    if name.startswith("vm.builtin.") or name.startswith("vm."):
        return "vm", name
    if lowered.startswith(BLOCK_PREFIX):
        return BLOCK_CLASS, _block_kind(shapes, nhwc)
    if "conv2d" in lowered:
        geometry = _conv_geometry(shapes, nhwc)
        if geometry is None:
            return "other", "conv2d"
        c_in, c_out, h_in, h_out, weight = geometry
        stride = f" s{round(h_in / h_out)}" if h_out and h_in != h_out else ""
        where = f" @{h_out}x{h_out}"
        if first_conv:
            k = math.isqrt(max(1, weight // max(1, c_out * c_in)))
            return "stem", f"stem {k}x{k}{stride} {c_in}->{c_out}{where}"
        # An int8 1x1 conv may compute whole groups of 8 output channels and cut them back (integer_ops).
        if weight in (c_in * c_out, c_in * -(-c_out // 8) * 8):
            direction = "expand" if c_out > c_in else "project"
            return "pointwise", f"pointwise-{direction} {c_in}->{c_out}{where}"
        if c_in == c_out and weight % c_out == 0 and math.isqrt(weight // c_out) ** 2 == weight // c_out:
            k = math.isqrt(weight // c_out)
            return "depthwise", f"depthwise {k}x{k}{stride} c{c_in}{where}"
        k = math.isqrt(max(1, weight // max(1, c_out * c_in)))
        return "other", f"conv {k}x{k}{stride} {c_in}->{c_out}{where}"
    if any(word in lowered for word in ("matmul", "dense", "mean", "pool", "softmax")):
        return "head", "classifier" if ("matmul" in lowered or "dense" in lowered) else "global pool"
    return "other", name.rstrip("0123456789_").removeprefix("fused_") or name


def _block_kind(shapes: Sequence[tuple[int, ...]], nhwc: bool) -> str:
    """Detail of a merged block call: data, expansion weight and bias, depthwise weight and bias,
    [projection weight and bias, [residual]], output."""
    geometry = _conv_geometry(shapes, nhwc)
    if geometry is None:
        return BLOCK_CLASS
    c_in, c_out, h_in, h_out, expansion_weight = geometry
    stride = f" s{round(h_in / h_out)}" if h_out and h_in != h_out else ""
    if len(shapes) >= 8:  # with the projection
        return f"expand {c_in}->{expansion_weight // c_in}, depthwise{stride}, project ->{c_out} @{h_out}x{h_out}"
    return f"expand {c_in}->{c_out}, depthwise{stride} @{h_out}x{h_out}"


def _conv_layout_is_nhwc(calls: Sequence[tuple[str, tuple]]) -> bool:
    """Whether convs run in NHWC (CPU profiles) or NCHW: the image input has 3 channels on that axis."""
    for name, shapes in calls:
        if "conv2d" in name and shapes and len(shapes[0]) == 4:
            return shapes[0][3] in (1, 3, 4) and shapes[0][1] not in (1, 3, 4)
    return True


def kernel_breakdown(module, x: np.ndarray, *, repeats: int = 20, warmup: int = 3) -> Breakdown:
    """Time every VM call of `module.vm["main"](x)` `repeats` times; medians per call site, summed per kernel.

    Each kernel is timed on the host clock between the VM's before/after instrument callbacks,
    which adds about a microsecond per call: fine for kernels of tens of microseconds and up.
    """
    vm = getattr(module, "vm", None)
    if vm is None or not hasattr(vm, "set_instrument"):
        raise TvmDeployError("the per-kernel breakdown needs a local artifact (the VM hook cannot run over RPC)")
    if repeats < 1:
        raise TvmDeployError("breakdown repeats must be >= 1")
    sync = _device_sync(module)
    for _ in range(max(0, warmup)):
        module.run(x)
    end_to_end = []
    for _ in range(repeats):
        start = time.perf_counter()
        module.run(x)
        end_to_end.append((time.perf_counter() - start) * 1e3)

    runs: list[list[tuple[str, tuple, float]]] = []
    current: list[tuple[str, tuple, float]] = []
    started = [0.0]

    def instrument(func, name, before_run, ret_value, *args):  # noqa: ARG001 - the VM's fixed signature
        if before_run:
            started[0] = time.perf_counter()
        else:
            sync()
            elapsed = time.perf_counter() - started[0]
            shapes = tuple(tuple(int(d) for d in a.shape) for a in args if hasattr(a, "shape"))
            current.append((str(name), shapes, elapsed * 1e6))
        return 0  # VMInstrumentReturnKind.NO_OP: run the call normally

    vm.set_instrument(instrument)
    try:
        for _ in range(repeats):
            current = []
            module.run(x)
            runs.append(current)
    finally:
        vm.set_instrument(None)
    return _summarise(runs, float(np.median(end_to_end)), repeats)


def _device_sync(module):
    device = getattr(module, "device", None)
    if device is not None and getattr(module.manifest, "device", "cpu") != "cpu":
        return device.sync  # GPU kernels are asynchronous: time them to completion
    return lambda: None


def _summarise(runs: list[list[tuple[str, tuple, float]]], end_to_end_ms: float, repeats: int) -> Breakdown:
    sites = runs[0]
    if any(len(r) != len(sites) for r in runs):
        raise TvmDeployError("the VM made a different number of calls in repeated runs; cannot align kernel timings")
    nhwc = _conv_layout_is_nhwc([(n, s) for n, s, _ in sites])
    per_site = np.median(np.array([[t for _, _, t in r] for r in runs]), axis=0)
    kernels: dict[str, KernelTime] = {}
    seen_conv = False
    for (name, shapes, _), us in zip(sites, per_site):
        op_class, kind = classify_call(name, shapes, first_conv="conv2d" in name and not seen_conv, nhwc=nhwc)
        seen_conv = seen_conv or "conv2d" in name
        key = "vm builtins" if op_class == "vm" else name
        if key not in kernels:
            kernels[key] = KernelTime(key, op_class, "allocation, shape checks" if op_class == "vm" else kind, 0, 0.0)
        kernels[key].calls += 1
        kernels[key].median_us += float(us)
    ordered = sorted(kernels.values(), key=lambda k: (CLASSES.index(k.op_class), -k.median_us))
    return Breakdown(ordered, end_to_end_ms, repeats)


def format_breakdown(b: Breakdown, top: int = 15) -> str:
    """Markdown: time per class, then the `top` slowest kernels."""
    total_us = sum(k.median_us for k in b.kernels) or 1.0
    lines = [
        f"end-to-end median {b.end_to_end_ms:.3f} ms; kernels sum to {total_us / 1e3:.3f} ms under instrumentation "
        f"(median of {b.repeats} runs per call site)",
        "",
        "| class | kernels | calls | time ms | share |",
        "|---|--:|--:|--:|--:|",
    ]
    for op_class, us in b.by_class().items():
        members = [k for k in b.kernels if k.op_class == op_class]
        lines.append(f"| {op_class} | {len(members)} | {sum(k.calls for k in members)} | {us / 1e3:.3f} | {us / total_us * 100:5.1f}% |")
    slowest = sorted((k for k in b.kernels if k.op_class != "vm"), key=lambda k: -k.median_us)[:top]
    lines += [
        "",
        f"slowest {len(slowest)} kernels:",
        "",
        "| kernel | class | what | calls | time ms | share |",
        "|---|---|---|--:|--:|--:|",
    ]
    for k in slowest:
        lines.append(f"| {k.name} | {k.op_class} | {k.kind} | {k.calls} | {k.median_us / 1e3:.3f} | {k.median_us / total_us * 100:5.1f}% |")
    return "\n".join(lines)
