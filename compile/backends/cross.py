"""Export a compiled executable as a shared library for the profile's architecture (cross compiler when needed)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.targets import TargetProfile

# e_machine values of the ELF header (System V ABI), named as `platform.machine()` names them.
_ELF_MACHINES = {
    0x03: "i386",
    0x08: "mips",
    0x14: "ppc",
    0x15: "ppc64",
    0x16: "s390x",
    0x28: "arm",
    0x3E: "x86_64",
    0xB7: "aarch64",
    0xF3: "riscv",
}


def cross_compiler_command(profile: TargetProfile) -> str | None:
    """The cross compiler's resolved path when the profile needs one; a TvmDeployError when it is not installed."""
    if not profile.needs_cross_compiler:
        return None
    cross = profile.cross_compiler
    assert cross is not None  # needs_cross_compiler implies it
    found = shutil.which(cross.command)
    if found is None:
        raise TvmDeployError(
            f"profile '{profile.name}' needs the cross compiler '{cross.command}', which is not installed; "
            f"install it with: apt-get install {cross.package}"
        )
    return found


def fcompile_for(profile: TargetProfile) -> Any:
    """The `fcompile` for `export_library`: None (TVM's host compiler) or a cross compiler."""
    command = cross_compiler_command(profile)
    if command is None:
        return None
    try:  # lazy: only builds need the compiler side of TVM; 0.27 moved `cc` from tvm.contrib to tvm.support
        from tvm.support import cc
    except ImportError:
        from tvm.contrib import cc
    return cc.cross_compiler(command)


def export_library(executable: Any, path: Path, profile: TargetProfile) -> Path:
    """Write `executable` (a compiled Relax VM executable or runtime module) as a `.so` for `profile`'s machine."""
    path = Path(path)
    fcompile = fcompile_for(profile)  # checked before the (slow) export starts
    if fcompile is None:
        executable.export_library(str(path))
    else:
        executable.export_library(str(path), fcompile=fcompile)
    if profile.device == "cpu":
        machine = elf_machine(path)
        if machine != profile.arch:
            # Would otherwise surface on the board as an opaque dlopen failure.
            raise TvmDeployError(f"{path} was built for {machine}, but profile '{profile.name}' is for {profile.arch}")
    return path


def elf_machine(path: Path) -> str:
    """The CPU architecture an ELF file is for (e.g. "aarch64", "x86_64"), read from its header."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError as exc:
        raise TvmDeployError(f"cannot read {path}: {exc.strerror}") from None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise TvmDeployError(f"{path} is not an ELF file")
    # EI_DATA (byte 5): 1 little endian, 2 big endian; e_machine is the u16 at offset 18.
    order = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack_from(order + "H", header, 18)
    return _ELF_MACHINES.get(machine, f"unknown(0x{machine:x})")
