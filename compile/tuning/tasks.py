"""Classify MetaSchedule tasks (stem/depthwise/pointwise/dense/other), count FLOPs, derive the model key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tvmdeploy.runtime.errors import TvmDeployError, arg

# Task classes; "pointwise" covers both expand and project 1x1 convs (the `--ops` name), the finer
# kind (`pointwise-expand` / `pointwise-project`) is kept for the report.
OP_CLASSES = ("stem", "depthwise", "pointwise", "dense", "other")
DEFAULT_OPS = ("depthwise", "pointwise")


@dataclass
class TaskInfo:
    """One tuning task: the extracted MetaSchedule task plus what the report and the scheduler need."""

    index: int
    name: str
    op_class: str  # one of OP_CLASSES
    kind: str  # finer label for the report, e.g. "pointwise-expand 96->24"
    weight: int  # how many times the network calls this kernel
    flops: float  # per call
    shash: str  # structural hash of the task's TIR (weights are never part of it)
    task: Any  # the ms.ExtractedTask
    merged: bool = False  # the default build merges it into a block (pipeline.merge_blocks): no record applies

    @property
    def total_flops(self) -> float:
        return self.flops * self.weight


def _conv_shapes(func) -> tuple[list[int], list[int]] | None:
    """(data, weight) shapes of a fused conv PrimFunc: its first two parameters, as the call passes them."""
    shapes = []
    for param in func.params[:2]:
        shape = getattr(param.ty, "shape", None)  # TVM 0.27: a parameter's type is its buffer type
        if shape is None:
            return None
        shapes.append([int(d) for d in shape])
    if len(shapes) != 2 or not all(len(s) == 4 for s in shapes):
        return None
    return shapes[0], shapes[1]


def classify(name: str, func) -> tuple[str, str]:
    """(op class, detailed kind) of a fused TIR function; layouts are NHWC data / OHWI weight on CPU."""
    if "conv2d" not in name:
        return ("dense", "dense") if "matmul" in name or "dense" in name else ("other", name.split("_")[0])
    shapes = _conv_shapes(func)
    if shapes is None:
        return "other", "conv2d?"
    data, weight = shapes
    # CPU profiles lower convs as NHWC data / OHWI weight (kh == kw sit in the middle); others NCHW/OIHW.
    if weight[1] == weight[2]:
        channels_in, channels_out, kh, in_per_group = data[3], weight[0], weight[1], weight[3]
    else:
        channels_in, channels_out, kh, in_per_group = data[1], weight[0], weight[2], weight[1]
    if in_per_group == 1 and channels_in > 1:
        return "depthwise", f"depthwise {kh}x{kh} c{channels_in}"
    if channels_in <= 4 and kh > 1:  # a 1x1 conv of 4 channels (x0.25's) is a pointwise one
        return "stem", f"stem {kh}x{kh} {channels_in}->{channels_out}"
    if kh == 1:
        direction = "expand" if channels_out > channels_in else "project"
        return "pointwise", f"pointwise-{direction} {channels_in}->{channels_out}"
    return "other", f"conv {kh}x{kh} {channels_in}->{channels_out}"


def describe_tasks(extracted: list) -> list[TaskInfo]:
    import tvm_ffi
    from tvm.s_tir.analysis import estimate_tir_flops

    infos = []
    for index, task in enumerate(extracted):
        mod = task.dispatched[0]
        func = next(iter(mod.functions.values()))
        op_class, kind = classify(task.task_name, func)
        try:
            flops = float(estimate_tir_flops(mod))
        except Exception:  # some elementwise kernels are not analysable; they are negligible anyway
            flops = 0.0
        infos.append(
            TaskInfo(
                index=index,
                name=task.task_name,
                op_class=op_class,
                kind=kind,
                weight=int(task.weight),
                flops=flops,
                shash=f"{tvm_ffi.structural_hash(mod) & 0xFFFFFFFFFFFFFFFF:016x}",
                task=task,
            )
        )
    return infos


def parse_ops(text: str | None) -> tuple[str, ...]:
    """`--ops` value -> op classes to tune."""
    if not text:
        return DEFAULT_OPS
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if "all" in chosen:
        return OP_CLASSES
    unknown = [part for part in chosen if part not in OP_CLASSES]
    if unknown:
        raise TvmDeployError(f"{arg('ops')}: unknown class(es) {', '.join(unknown)}; choose from {', '.join(OP_CLASSES)}, all", param="ops")
    return tuple(chosen)


def model_key(infos: list[TaskInfo]) -> str:
    """Folder name for a model's logs: a hash of its sorted convolution and dense workloads.

    The hash covers only the TIR of those tasks (shapes, layouts, fused epilogues), never weight
    values, so a random-weight export and the real checkpoint of one architecture share a key. Glue
    kernels (input transpose, pooling, flatten) are left out: exporters spell the classifier head
    differently (mean vs GlobalAveragePool+Flatten) for the same backbone.
    """
    core = sorted(i.shash for i in infos if i.op_class != "other") or sorted(i.shash for i in infos)
    digest = hashlib.sha256("\n".join(core).encode()).hexdigest()[:12]
    return f"tasks-{digest}"
