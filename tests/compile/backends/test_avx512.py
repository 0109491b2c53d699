"""AVX-512 profiles: the library really uses zmm registers, runs where the CPU has AVX-512, is refused elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tvmdeploy.runtime import cpu_check
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.targets import load_profile

AVX512_PROFILES = {
    "x86-avx512": "skylake-avx512",
    "x86-cascadelake": "cascadelake",
    "x86-icelake-server": "icelake-server",
    "x86-sapphirerapids": "sapphirerapids",
}
BASE_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
# MobileNetV2 x0.25 built for skylake-avx512 disassembles to ~4900 lines using zmm (~17000 using ymm).
MIN_ZMM_LINES = 500
NO_AVX512_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma\n"


@pytest.mark.parametrize("name,mcpu", sorted(AVX512_PROFILES.items()))
def test_avx512_profiles_name_the_cpu_and_its_flags(name: str, mcpu: str) -> None:
    import tvm

    profile = load_profile(name)
    assert profile.device == "cpu" and profile.arch == "x86_64"
    assert profile.target["mcpu"] == mcpu
    assert BASE_FLAGS <= set(profile.cpu_flags)
    assert str(tvm.target.Target(profile.target).attrs["mcpu"]) == mcpu


def zmm_lines(library: Path) -> int:
    """Lines of the disassembly that use a 512-bit zmm register."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True).stdout
    return sum("%zmm" in line for line in text.splitlines())


@pytest.fixture(scope="module")
def avx512_artifact(exported_onnx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tvmdeploy.compile.build import build_artifact

    out = tmp_path_factory.mktemp("avx512") / "mnv2_x0_25_avx512"
    # Verified separately below, only where the CPU has AVX-512.
    build_artifact(exported_onnx("ppcls_mobilenetv2_x0_25"), load_profile("x86-avx512"), out, verify=False)
    return out


def test_library_contains_avx512_instructions(avx512_artifact: Path) -> None:
    assert zmm_lines(avx512_artifact / "model.so") >= MIN_ZMM_LINES


def test_manifest_carries_the_cpu_flags(avx512_artifact: Path) -> None:
    from tvmdeploy.runtime.artifact import read_manifest

    assert BASE_FLAGS <= set(read_manifest(avx512_artifact).cpu_flags)


def test_cpu_without_avx512_gets_a_clear_error_not_sigill(avx512_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tvmdeploy.runtime.loader import load_artifact

    fake = tmp_path / "cpuinfo"
    fake.write_text(NO_AVX512_CPUINFO)
    monkeypatch.setattr(cpu_check, "CPUINFO_PATH", fake)
    with pytest.raises(TvmDeployError, match="avx512f") as info:
        load_artifact(avx512_artifact)
    assert "\n" not in str(info.value)


def test_runs_and_matches_onnx_runtime_where_the_cpu_has_avx512(avx512_artifact: Path) -> None:
    missing = cpu_check.missing_flags(load_profile("x86-avx512").cpu_flags, cpu_check.host_cpu_flags() or set())
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}: cannot run AVX-512 code here")
    from tvmdeploy.compile.measure.verify import check_parity
    from tvmdeploy.runtime.loader import load_artifact

    module = load_artifact(avx512_artifact)
    report = check_parity(module.run, avx512_artifact / "model.onnx", module.manifest.input.shape, threads=2)
    assert report.passed, report.summary()
