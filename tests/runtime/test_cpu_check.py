"""The CPU feature check that stands between an AVX-512 library and a SIGILL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvmdeploy.runtime import cpu_check
from tvmdeploy.runtime.cpu_check import check_cpu_supports, host_cpu_flags, missing_flags, parse_cpuinfo
from tvmdeploy.runtime.errors import TvmDeployError

AVX512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-4770 CPU
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
"""


def test_parse_x86_flags() -> None:
    flags = parse_cpuinfo(X86_CPUINFO)
    assert {"avx2", "fma", "sse4_2"} <= flags
    assert "avx512f" not in flags


def test_parse_arm_features() -> None:
    assert parse_cpuinfo(ARM_CPUINFO) == {"fp", "asimd", "evtstrm", "crc32", "cpuid"}


def test_missing_flags_keeps_required_order_and_drops_duplicates() -> None:
    assert missing_flags(["avx512f", "avx2", "avx512vl", "avx512f"], {"avx2"}) == ["avx512f", "avx512vl"]


def test_fake_cpu_without_avx512_is_refused_naming_the_flags() -> None:
    with pytest.raises(TvmDeployError) as info:
        check_cpu_supports(AVX512, available={"avx", "avx2", "fma"})
    message = str(info.value)
    assert "\n" not in message
    for flag in AVX512:
        assert flag in message


def test_only_the_missing_flags_are_named_as_missing() -> None:
    with pytest.raises(TvmDeployError, match=r"compiled for: avx512_vnni \(needs"):
        check_cpu_supports(AVX512 + ["avx512_vnni"], available=AVX512)


def test_supported_and_empty_requirements_pass() -> None:
    check_cpu_supports(AVX512, available=AVX512 + ["avx2"])
    check_cpu_supports([], available=set())


def test_reads_the_cpuinfo_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_CPUINFO)
    monkeypatch.setattr(cpu_check, "CPUINFO_PATH", fake)
    assert "avx2" in host_cpu_flags()
    with pytest.raises(TvmDeployError, match="avx512f"):
        check_cpu_supports(AVX512)
    check_cpu_supports(["avx2", "fma"])


def test_unreadable_cpuinfo_does_not_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without /proc/cpuinfo (macOS) nothing can be known; the load goes ahead.
    monkeypatch.setattr(cpu_check, "CPUINFO_PATH", tmp_path / "absent")
    assert host_cpu_flags() is None
    check_cpu_supports(AVX512)


def test_the_real_host_is_readable_on_linux() -> None:
    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc/cpuinfo on this system")
    assert host_cpu_flags()
