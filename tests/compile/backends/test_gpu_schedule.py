"""CUDA builds: dlight default schedules, a real sm_90 binary built without a GPU, and (on a GPU) parity."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvmdeploy.runtime.errors import TvmDeployError

EM_CUDA = 190  # ELF e_machine of NVIDIA cubins
FATBIN_MAGIC = bytes.fromhex("50ed55ba")  # 0xBA55ED50, little endian


def _prepared(onnx_path: Path, profile_name: str):
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import make_target, prepare
    from tvmdeploy.targets import load_profile

    profile = load_profile(profile_name)
    mod, _ = import_onnx(onnx_path)
    return prepare(mod, profile), make_target(profile)


def test_every_kernel_gets_a_default_schedule(tiny_onnx) -> None:
    from tvmdeploy.compile.backends.gpu_schedule import apply_default_gpu_schedules, unscheduled_kernels

    mod, target = _prepared(tiny_onnx(), "cuda-sm90")
    assert unscheduled_kernels(mod), "prepare() should leave the fused kernels unscheduled"
    scheduled = apply_default_gpu_schedules(mod, target)
    assert unscheduled_kernels(scheduled) == []


def test_kernels_already_scheduled_are_kept(tiny_onnx) -> None:
    import tvm

    from tvmdeploy.compile.backends.gpu_schedule import apply_default_gpu_schedules

    mod, target = _prepared(tiny_onnx(), "cuda-sm90")
    # Stand-in for a kernel MetaScheduleApplyDatabase scheduled from a tuning log.
    gvar, func = next((g, f) for g, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc))
    marked = func.with_attr("tirx.is_scheduled", True)
    mod[gvar] = marked
    scheduled = apply_default_gpu_schedules(mod, target)
    tvm.ir.assert_structural_equal(scheduled[gvar.name_hint], marked)


def test_cpu_target_is_refused(tiny_onnx) -> None:
    from tvmdeploy.compile.backends.gpu_schedule import apply_default_gpu_schedules

    mod, target = _prepared(tiny_onnx(), "x86-avx2")
    with pytest.raises(TvmDeployError, match="need a CUDA target"):
        apply_default_gpu_schedules(mod, target)


@pytest.mark.parametrize("profile_name", ["cuda-sm80", "cuda-sm90"])
def test_cuda_profiles_are_valid_tvm_targets(profile_name: str) -> None:
    import tvm

    from tvmdeploy.targets import load_profile

    profile = load_profile(profile_name)
    target = tvm.target.Target(profile.target)
    assert target.kind.name == "cuda" and target.host.kind.name == "llvm"
    assert str(target.attrs["arch"]) == "sm_" + profile_name.removeprefix("cuda-sm")


def _cubin_machines(blob: bytes) -> list[int]:
    """e_machine of every ELF image embedded in `blob` (the host .so itself and any cubins)."""
    machines, start = [], 0
    while (start := blob.find(b"\x7fELF", start)) != -1:
        machines.append(int.from_bytes(blob[start + 18 : start + 20], "little"))
        start += 4
    return machines


def _has_nvcc() -> bool:
    from tvmdeploy.compile.backends.cuda_toolchain import find_nvcc

    return find_nvcc() is not None


@pytest.mark.skipif(not _has_nvcc(), reason="compiling CUDA needs nvcc (CUDA toolkit)")
def test_mobilenetv2_compiles_to_an_sm90_binary_without_a_gpu(exported_onnx, tmp_path: Path) -> None:
    """Compile-only (runs in CI): the library must hold a compiled cubin, not CUDA source to JIT on the device."""
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    result = build_artifact(exported_onnx("ppcls_mobilenetv2_x0_25"), load_profile("cuda-sm90"), tmp_path / "cuda")
    blob = (tmp_path / "cuda" / "model.so").read_bytes()
    assert FATBIN_MAGIC in blob
    assert EM_CUDA in _cubin_machines(blob)
    assert b"__global__" not in blob, "the CUDA module was stored as source: libtvm_runtime_cuda was not loaded"
    assert result.manifest.device == "cuda" and result.manifest.target["arch"] == "sm_90"
    if result.parity is None:
        assert "no CUDA device" in result.parity_skipped_reason or "disabled" in result.parity_skipped_reason


def _gpu_profile() -> str | None:
    try:
        import tvm
    except ImportError:
        return None
    dev = tvm.cuda(0)
    if not dev.exist:
        return None
    return {"8.0": "cuda-sm80", "9.0": "cuda-sm90"}.get(dev.compute_version)


@pytest.mark.gpu
def test_mobilenetv2_on_the_gpu_matches_onnx_runtime(exported_onnx, tmp_path: Path) -> None:
    profile_name = _gpu_profile()
    if profile_name is None:
        pytest.skip("needs an NVIDIA GPU of compute capability 8.0 or 9.0 (none here)")
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    result = build_artifact(exported_onnx("ppcls_mobilenetv2_x0_25"), load_profile(profile_name), tmp_path / "gpu")
    assert result.parity is not None and result.parity.passed, result.parity_skipped_reason
