"""Default GPU schedules (TVM's dlight rules) for the kernels no MetaSchedule database covers."""

from __future__ import annotations

import tvm
from tvm import relax

from tvmdeploy.compile.schedules import is_scheduled
from tvmdeploy.runtime.errors import TvmDeployError


def default_gpu_rules() -> list:
    """dlight rules, most specific first: the first rule that accepts a kernel schedules it.

    MobileNetV2 after fusion: the 1x1 (pointwise) convolutions and the classifier dense are
    recognised by Matmul/GEMV, the global average pool by (General)Reduction, and the 3x3
    depthwise and stem convolutions by no specialised rule in 0.27, so Fallback gives them a
    plain one-thread-per-output-element schedule. Without Fallback those kernels would have no
    thread binding at all and the CUDA build would fail ("did you forget to bind?").
    """
    from tvm.s_tir import dlight as dl  # lazy: dlight pulls in the scheduling stack

    return [
        dl.gpu.Matmul(),
        dl.gpu.GEMV(),
        dl.gpu.Reduction(),
        dl.gpu.GeneralReduction(),
        dl.gpu.Fallback(),
    ]


def apply_default_gpu_schedules(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Lower a Relax module to fused TIR kernels and give every still-unscheduled kernel a dlight schedule.

    Kernels already scheduled (e.g. by `MetaScheduleApplyDatabase` from a tuning log) keep their
    schedule: dlight skips functions marked as scheduled. The lowering passes are idempotent, so
    calling this on a module that the zero pipeline already legalized and fused is fine.
    """
    if target.kind.name != "cuda":
        raise TvmDeployError(f"default GPU schedules need a CUDA target, got '{target.kind.name}'")
    from tvm.s_tir import dlight as dl

    with target:
        return tvm.transform.Sequential(
            [
                relax.transform.LegalizeOps(),
                relax.transform.AnnotateTIROpPattern(),
                relax.transform.FoldConstant(),
                relax.transform.FuseOps(),
                relax.transform.FuseTIR(),
                dl.ApplyDefaultSchedule(*default_gpu_rules()),
            ]
        )(mod)


def unscheduled_kernels(mod: tvm.IRModule) -> list[str]:
    """Names of the TIR kernels in `mod` that carry no schedule (a CUDA build of them would fail)."""
    return sorted(gvar.name_hint for gvar, func in mod.functions_items() if isinstance(func, tvm.tirx.PrimFunc) and not is_scheduled(func))


def compile_cuda(mod: tvm.IRModule, target: tvm.target.Target) -> tuple[tvm.runtime.Executable, tvm.IRModule]:
    """Schedule what is still unscheduled with dlight and compile to a Relax executable with a CUDA fatbin.

    Returns the executable and the scheduled module (for the per-kernel schedule report).
    """
    from tvmdeploy.compile.backends.cuda_toolchain import ensure_cuda_codegen

    ensure_cuda_codegen()
    mod = apply_default_gpu_schedules(mod, target)
    missing = unscheduled_kernels(mod)
    if missing:
        raise TvmDeployError(f"no GPU schedule for kernel(s) {', '.join(missing)}; the CUDA build would fail")
    # In target scope: TVM's nvcc callback reads the GPU architecture (sm_90) from Target.current().
    with target:
        return tvm.compile(mod, target=target), mod
