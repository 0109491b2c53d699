"""Target profiles: TOML data files validated into frozen dataclasses."""

from __future__ import annotations

import json
import os
import platform
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tvmdeploy.runtime.cpu_check import host_cpu_flags, missing_flags
from tvmdeploy.runtime.errors import TvmDeployError

DEVICES = ("cpu", "cuda")
ARCHES = ("x86_64", "aarch64")
_PROFILE_KEYS = {
    "name",
    "description",
    "device",
    "arch",
    "threads",
    "rpc_key",
    "tuning_trials",
    "cpu_flags",
    "target",
    "cross_compiler",
}


@dataclass(frozen=True)
class CrossCompiler:
    """A C++ cross compiler used as `fcompile` when exporting the shared library."""

    command: str
    package: str  # the Debian package that provides `command`, named in the missing-compiler error


@dataclass(frozen=True)
class TargetProfile:
    """Everything the build, tuner and runtime need to know about one kind of hardware."""

    name: str
    description: str
    device: str  # "cpu" or "cuda"
    arch: str  # CPU architecture of the machine that runs the library
    target_json: str  # exact TVM target as canonical JSON (a dict is unhashable, so frozen needs a str)
    threads: int = 0  # 0: all cores of the running machine
    rpc_key: str | None = None
    tuning_trials: int = 2000
    cpu_flags: tuple[str, ...] = ()  # /proc/cpuinfo flags the library needs on the running CPU
    cross_compiler: CrossCompiler | None = None
    source: str = field(default="", compare=False)  # file the profile came from

    @property
    def target(self) -> dict[str, Any]:
        """The TVM target as a JSON dict (TVM 0.27 takes dicts, not `-mcpu=` strings)."""
        return json.loads(self.target_json)

    @property
    def needs_cross_compiler(self) -> bool:
        return self.cross_compiler is not None and self.arch != platform.machine()

    @property
    def runs_on_this_machine(self) -> bool:
        """True when a library built for this profile can execute here, as far as we can tell cheaply."""
        if self.device != "cpu" or self.arch != platform.machine():
            return False
        return not missing_flags(self.cpu_flags, host_cpu_flags() or set())


def _require(data: dict, key: str, kind: type, where: str):
    if key not in data:
        raise TvmDeployError(f"profile {where}: missing required field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TvmDeployError(f"profile {where}: field '{key}' must be {kind.__name__}, got {value!r}")
    return value


def _detect_host(data: dict) -> dict:
    """Fill the `host` profile with this machine's architecture, LLVM CPU name and core count."""
    data = dict(data)
    target = dict(data["target"])
    data["arch"] = platform.machine()
    if target.get("mcpu") == "native":
        from tvm.target import codegen  # lazy: only the `host` profile needs LLVM's CPU detection

        target["mcpu"] = codegen.llvm_get_system_cpu()
        if data["arch"] == "aarch64":
            target.setdefault("mtriple", "aarch64-linux-gnu")
    if not target.get("num-cores"):
        target["num-cores"] = os.cpu_count() or 1
    data["target"] = target
    return data


def profile_from_dict(data: dict, where: str = "<dict>") -> TargetProfile:
    """Validate raw profile data (as loaded from TOML) into a TargetProfile."""
    unknown = set(data) - _PROFILE_KEYS
    if unknown:
        raise TvmDeployError(f"profile {where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = _require(data, "name", str, where)
    if data.get("arch") == "native":
        data = _detect_host(data)
    device = _require(data, "device", str, where)
    if device not in DEVICES:
        raise TvmDeployError(f"profile {where}: device must be one of {', '.join(DEVICES)}, got '{device}'")
    arch = _require(data, "arch", str, where)
    if arch not in ARCHES:
        raise TvmDeployError(f"profile {where}: arch must be one of {', '.join(ARCHES)}, got '{arch}'")
    target = _require(data, "target", dict, where)
    kind = target.get("kind")
    if kind not in ("llvm", "cuda"):
        raise TvmDeployError(f"profile {where}: target.kind must be 'llvm' or 'cuda', got {kind!r}")
    if (kind == "cuda") != (device == "cuda"):
        raise TvmDeployError(f"profile {where}: target.kind '{kind}' does not match device '{device}'")
    if kind == "cuda" and "host" not in target:
        raise TvmDeployError(f"profile {where}: a CUDA target needs a 'host' target")
    threads = data.get("threads", 0)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise TvmDeployError(f"profile {where}: threads must be an integer >= 0, got {threads!r}")
    trials = data.get("tuning_trials", 2000)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise TvmDeployError(f"profile {where}: tuning_trials must be a positive integer, got {trials!r}")
    cross = data.get("cross_compiler")
    cross_compiler = None
    if cross is not None:
        if not isinstance(cross, dict) or set(cross) != {"command", "package"}:
            raise TvmDeployError(f"profile {where}: cross_compiler needs exactly 'command' and 'package'")
        cross_compiler = CrossCompiler(command=str(cross["command"]), package=str(cross["package"]))
    flags = data.get("cpu_flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise TvmDeployError(f"profile {where}: cpu_flags must be a list of strings")
    return TargetProfile(
        name=name,
        description=str(data.get("description", "")),
        device=device,
        arch=arch,
        target_json=json.dumps(target, sort_keys=True),
        threads=threads,
        rpc_key=data.get("rpc_key"),
        tuning_trials=trials,
        cpu_flags=tuple(flags),
        cross_compiler=cross_compiler,
        source=where,
    )


def _profile_files() -> dict[str, Path]:
    folder = resources.files("tvmdeploy.targets") / "profiles"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".toml")}


def profile_names() -> list[str]:
    return sorted(_profile_files())


def load_profile_file(path: Path) -> TargetProfile:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise TvmDeployError(f"profile file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TvmDeployError(f"profile {path}: invalid TOML: {exc}") from None
    return profile_from_dict(data, where=str(path))


def load_profile(name_or_path: str) -> TargetProfile:
    """A shipped profile by name, or a user's own TOML file by path."""
    files = _profile_files()
    if name_or_path in files:
        return load_profile_file(files[name_or_path])
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        return load_profile_file(Path(name_or_path))
    raise TvmDeployError(f"unknown profile '{name_or_path}'; known profiles: {', '.join(sorted(files))}")


def all_profiles() -> list[TargetProfile]:
    return [load_profile(name) for name in profile_names()]
