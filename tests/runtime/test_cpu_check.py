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


def _cache_dir(root: Path, entries: list[tuple[str, str, str]]) -> Path:
    for number, (level, kind, size) in enumerate(entries):
        index = root / f"index{number}"
        index.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (index / name).write_text(value + "\n")
    return root


def test_host_cpu_info_x86(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        "model name\t: AMD EPYC\nflags\t\t: avx2\n\nprocessor\t: 1\nvendor_id\t: Other\n"
    )
    caches = _cache_dir(
        tmp_path / "cache", [("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "1024K"), ("3", "Unified", "32M")]
    )
    info = cpu_check.host_cpu_info("znver5", cpuinfo=cpuinfo, cache_dir=caches)
    assert info == {
        "vendor": "AuthenticAMD",
        "model_name": "AMD EPYC",
        "family": "26",
        "model": "2",
        "mcpu": "znver5",
        "cores": info["cores"],
        "l1d_bytes": 48 * 1024,
        "l2_bytes": 1024**2,
        "l3_bytes": 32 * 1024**2,
    }
    assert isinstance(info["cores"], int) and info["cores"] >= 1


def test_host_cpu_info_arm_and_unreadable(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ARM_CPUINFO + "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n")
    info = cpu_check.host_cpu_info(cpuinfo=cpuinfo, cache_dir=tmp_path / "none")
    assert (info["vendor"], info["model_name"], info["family"], info["mcpu"]) == ("0x41", "0xd08", "8", None)
    assert (info["l1d_bytes"], info["l2_bytes"], info["l3_bytes"]) == (None, None, None)
    missing = cpu_check.host_cpu_info(cpuinfo=tmp_path / "absent", cache_dir=tmp_path / "none")
    assert missing["vendor"] is None and missing["model_name"] is None
