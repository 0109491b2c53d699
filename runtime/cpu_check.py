"""Refuse, with a clear error, to load a library whose CPU features (e.g. AVX-512) this machine lacks;
describe this machine's CPU (what a tuning log records about the CPU it was tuned on)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError

# Module-level so tests (and odd systems) can point it at another file.
CPUINFO_PATH = Path("/proc/cpuinfo")
CACHE_PATH = Path("/sys/devices/system/cpu/cpu0/cache")
# x86 kernels call the feature list "flags", ARM kernels "Features".
_FLAG_KEYS = ("flags", "Features")


def parse_cpuinfo(text: str) -> set[str]:
    """The feature flags of the first CPU listed in /proc/cpuinfo text (all cores of a host share them)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in _FLAG_KEYS:
            return set(value.split())
    return set()


def host_cpu_flags(cpuinfo: Path | None = None) -> set[str] | None:
    """This machine's CPU flags, or None when they cannot be read (no /proc/cpuinfo, e.g. macOS)."""
    path = CPUINFO_PATH if cpuinfo is None else Path(cpuinfo)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = parse_cpuinfo(text)
    return flags or None


def missing_flags(required_flags: Iterable[str], available: Iterable[str]) -> list[str]:
    """The required flags absent from `available`, in the order they were required."""
    have = set(available)
    return [flag for flag in dict.fromkeys(required_flags) if flag not in have]


def check_cpu_supports(required_flags: Iterable[str], *, available: Iterable[str] | None = None) -> None:
    """Raise TvmDeployError naming the CPU flags the library needs and this CPU lacks.

    Called before the library is loaded: executing an AVX-512 instruction on a CPU without it
    kills the process with SIGILL, with no Python traceback at all. When the flags cannot be read
    (no /proc/cpuinfo) we cannot tell, so we let the load go ahead rather than block every
    non-Linux user.
    """
    required = [str(flag) for flag in required_flags]
    if not required:
        return
    have = host_cpu_flags() if available is None else set(available)
    if have is None:
        return
    missing = missing_flags(required, have)
    if missing:
        raise TvmDeployError(
            f"this CPU lacks the instruction set extension(s) the library was compiled for: {', '.join(missing)} "
            f"(needs {', '.join(required)}); build the artifact for a profile this CPU supports, e.g. 'host'"
        )


def _first_cpu_fields(text: str) -> dict[str, str]:
    """'key: value' lines of the first processor block of /proc/cpuinfo text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _size_bytes(text: str) -> int | None:
    """'48K' / '1024K' / '32M' (sysfs cache sizes) -> bytes."""
    text = text.strip().upper()
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    return int(digits) * scale if digits.isdigit() else None


def cache_sizes(cache_dir: Path | None = None) -> dict[str, int | None]:
    """L1 data, L2 and L3 sizes in bytes of CPU 0 (sysfs `cache/index*/{level,type,size}`); None if unknown."""
    root = CACHE_PATH if cache_dir is None else Path(cache_dir)
    sizes: dict[str, int | None] = {"l1d": None, "l2": None, "l3": None}
    try:
        indices = sorted(root.glob("index*"))
    except OSError:
        return sizes
    for index in indices:
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = _size_bytes((index / "size").read_text())
        except OSError:
            continue
        name = {"1": "l1d" if kind == "Data" else None, "2": "l2", "3": "l3"}.get(level)
        if name and kind != "Instruction":
            sizes[name] = size
    return sizes


def host_cpu_info(mcpu: str | None = None, *, cpuinfo: Path | None = None, cache_dir: Path | None = None) -> dict:
    """This machine's CPU as plain data: vendor, model name, family/model numbers, LLVM mcpu, caches, cores.

    `mcpu` is LLVM's name for this CPU (`tvm.target.codegen.llvm_get_system_cpu()`): the runtime cannot
    ask the compiler, so the caller passes it in (compile/tuning/log_choice.cpu_record does). Fields that cannot
    be read are None. On Arm, /proc/cpuinfo names no vendor or model: the implementer and part codes
    stand in for them.
    """
    path = CPUINFO_PATH if cpuinfo is None else Path(cpuinfo)
    try:
        fields = _first_cpu_fields(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        fields = {}
    return {
        "vendor": fields.get("vendor_id") or fields.get("CPU implementer"),
        "model_name": fields.get("model name") or fields.get("CPU part"),
        "family": fields.get("cpu family") or fields.get("CPU architecture"),
        "model": fields.get("model") or fields.get("CPU variant"),
        "mcpu": mcpu,
        "cores": os.cpu_count(),
        **{f"{name}_bytes": size for name, size in cache_sizes(cache_dir).items()},
    }
