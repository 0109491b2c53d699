"""Refuse, with a clear error, to load a library whose CPU features (e.g. AVX-512) this machine lacks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError

# Module-level so tests (and odd systems) can point it at another file.
CPUINFO_PATH = Path("/proc/cpuinfo")
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
