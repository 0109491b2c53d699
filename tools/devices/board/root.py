"""The emulated aarch64 board's root: Debian's arm64 Python and libraries, the aarch64 wheels, our runtime package."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.devices.bundle import pip_download, runtime_members

BOARD_DIR_ENV = "TVMDEPLOY_BOARD_DIR"  # overrides where the board is built and its run state kept
DEFAULT_KEY = "qemu-aarch64"  # the key itself tells every tracker listing that timings are emulated
PYTHON = "python3.11"
# What the board needs from Debian: the interpreter with its stdlib, and the C++ runtime TVM links.
ROOT_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1")
# Package-manager tools some libraries pre-depend on; nothing on the board runs them.
SKIP_PACKAGES = frozenset({"dpkg", "install-info", "tar", "debconf", "perl-base", "perl", "base-files"})
# Board Python packages, pinned to the host's versions where the host has them.
WHEELS = (
    "apache-tvm",
    "apache-tvm-ffi",
    "numpy",
    "ml_dtypes",
    "psutil",
    "tornado",
    "cloudpickle",
    "pillow",
    "typing_extensions",
    "onnxruntime",  # the board's own ONNX Runtime, the peer `bench` and `compare` time there
)
# The compiler library (260 MB) is never loaded on the board (TVM_USE_RUNTIME_LIB=1): skip unpacking it.
SKIP_WHEEL_FILES = ("tvm/lib/libtvm_compiler.so",)
EXTRA_RUNTIME_LIB = "tvm/lib/libtvm_runtime_extra.so"  # random_fill_for_measure, needed by MetaSchedule runs
SERVER_MODULE = "tvmdeploy.runtime.rpc.board_server"  # run with -m from PACKAGE_DIR
PACKAGE_DIR = "pkg"  # our tvmdeploy.runtime, copied in on every use (it changes with the checkout, the root does not)
BUILD_STAMP = "board.json"  # written last: a root without it is incomplete and is rebuilt


@dataclass(frozen=True)
class Arch:
    name: str
    debian: str
    qemu: str
    wheel_platform: str


ARCHES = {"aarch64": Arch("aarch64", "arm64", "qemu-aarch64-static", "manylinux_2_28_aarch64")}


def board_dir(arch: str = "aarch64") -> Path:
    """Where the board root lives: $TVMDEPLOY_BOARD_DIR, else ~/.cache/tvmdeploy/board-<arch>."""
    override = os.environ.get(BOARD_DIR_ENV)
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tvmdeploy" / f"board-{arch}"


def _arch(arch: str) -> Arch:
    if arch not in ARCHES:
        raise TvmDeployError(f"no emulated board for arch '{arch}'; supported: {', '.join(ARCHES)}")
    return ARCHES[arch]


def _need_tool(command: str, package: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise TvmDeployError(
            f"'{command}' is not installed; install it with: apt-get install {package} (or run tools/install_system_deps.sh)"
        )
    return found


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise TvmDeployError(f"{' '.join(cmd[:3])} ... failed: {last[0]}")
    return result


def _progress(iterable, desc: str, total: int | None = None, show: bool = True):
    """A tqdm bar on stderr over `iterable` (or a manual one for None); the iterable itself when not shown."""
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="file", file=sys.stderr, leave=True)


# ---------------------------------------------------------------- root build


def _ensure_foreign_arch(arch: Arch) -> None:
    """Debian must know the board's architecture; adding it needs root (tools/install_system_deps.sh does it)."""
    _need_tool("apt-get", "apt")
    _need_tool("dpkg", "dpkg")
    foreign = _run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if arch.debian not in foreign:
        if os.geteuid() != 0:
            raise TvmDeployError(
                f"Debian architecture {arch.debian} is not enabled; run tools/install_system_deps.sh as root "
                f"(dpkg --add-architecture {arch.debian} && apt-get update)"
            )
        _run(["dpkg", "--add-architecture", arch.debian])
        _run(["apt-get", "update"])
    probe = subprocess.run(["apt-cache", "show", f"libc6:{arch.debian}"], capture_output=True)
    if probe.returncode != 0:
        if os.geteuid() != 0:
            raise TvmDeployError(f"no {arch.debian} package lists; run apt-get update as root (tools/install_system_deps.sh)")
        _run(["apt-get", "update"])


def _parse_apt_depends(text: str, arch: str) -> dict[str, list[str]]:
    """`apt-cache depends` output -> {package: [dependencies]}, first choice of each alternative group."""
    suffix = f":{arch}"
    deps: dict[str, list[str]] = {}
    current: str | None = None
    in_group = False  # the previous dependency line ended with "or" ('|'): this one is an alternative
    virtual_for: list[str] | None = None  # provider lines (4-space indent) resolve the previous virtual dep
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            current = line.strip().removesuffix(suffix)
            deps.setdefault(current, [])
            in_group, virtual_for = False, None
            continue
        if current is None:
            continue
        if line.startswith("    "):  # a provider of the virtual package just named
            if virtual_for is not None:
                virtual_for.append(line.strip())
                virtual_for = None  # the first provider is enough
            continue
        kind, _, target = line.strip().lstrip("|").partition(": ")
        first_choice = not in_group
        in_group = line.lstrip().startswith("|")
        virtual_for = None
        if kind not in ("Depends", "PreDepends") or not first_choice:
            continue
        if target.startswith("<"):
            virtual_for = deps[current]
        else:
            deps[current].append(target)
    for name, items in deps.items():
        deps[name] = [d.removesuffix(suffix) for d in items if d.endswith(suffix)]
    return deps


def resolve_packages(arch: Arch, roots: tuple[str, ...] = ROOT_PACKAGES) -> list[str]:
    """The root packages and everything they (pre-)depend on for the board's architecture."""
    seen: set[str] = set()
    todo = [r for r in roots]
    while todo:
        batch = [p for p in dict.fromkeys(todo) if p not in seen and p not in SKIP_PACKAGES]
        todo = []
        if not batch:
            break
        seen.update(batch)
        text = _run(
            [
                "apt-cache",
                "depends",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                *[f"{p}:{arch.debian}" for p in batch],
            ]
        ).stdout
        for deps in _parse_apt_depends(text, arch.debian).values():
            todo.extend(d for d in deps if d not in seen)
    return sorted(seen)


def _download_debs(arch: Arch, packages: list[str], folder: Path, show: bool, chunk: int = 7) -> list[Path]:
    """`apt-get download` in chunks: each call re-reads the package lists (~1.5 s), one per package is slow."""
    folder.mkdir(parents=True, exist_ok=True)
    bar = _progress(None, "board: apt-get download", total=len(packages), show=show)
    for start in range(0, len(packages), chunk):
        names = packages[start : start + chunk]
        _run(["apt-get", "download", *[f"{name}:{arch.debian}" for name in names]], cwd=folder)
        if bar is not None:
            bar.update(len(names))
    if bar is not None:
        bar.close()
    debs = []
    for name in packages:
        found = sorted(folder.glob(f"{name}_*_{arch.debian}.deb"))
        if len(found) != 1:
            raise TvmDeployError(f"apt-get download {name}:{arch.debian} left {len(found)} .deb files in {folder}")
        debs.append(found[0])
    return debs


def _wheel_pins(names: tuple[str, ...] = WHEELS) -> list[str]:
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _download_wheels(arch: Arch, folder: Path, show: bool, names: tuple[str, ...] = WHEELS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    python = PYTHON.removeprefix("python")
    for pin in _progress(_wheel_pins(names), "board: pip download", show=show):
        name = pin.split("==")[0]
        result = pip_download(pin, arch.wheel_platform, python, folder)
        if result.returncode != 0 and "==" in pin:
            # The host's exact version may have no aarch64 wheel; the newest one that has is next best.
            result = pip_download(name, arch.wheel_platform, python, folder)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise TvmDeployError(f"pip download of an {arch.name} wheel of {name} failed: {last}")
    return sorted(folder.glob("*.whl"))


def _unpack_wheels(wheels: list[Path], site: Path, show: bool) -> None:
    site.mkdir(parents=True, exist_ok=True)
    for wheel in _progress(wheels, "board: unzip wheels", show=show):
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if not member.endswith(SKIP_WHEEL_FILES):
                    archive.extract(member, site)


@dataclass(frozen=True)
class BoardRoot:
    """A built board: a Debian root for qemu's -L, and a site folder on its PYTHONPATH."""

    dir: Path
    arch: Arch

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def site(self) -> Path:
        return self.dir / "site"

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / PYTHON

    @property
    def package_dir(self) -> Path:
        return self.dir / PACKAGE_DIR

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def built(self) -> bool:
        return (self.dir / BUILD_STAMP).is_file() and self.python.is_file()

    def command(self, *args: str) -> list[str]:
        """argv that runs the board's Python under qemu-user with the board root as its library prefix."""
        return [_need_tool(self.arch.qemu, "qemu-user-static"), "-L", str(self.root), str(self.python), *args]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_", "VIRTUAL_ENV"))}
        env.update(
            PYTHONPATH=f"{self.package_dir}{os.pathsep}{self.site}",
            PYTHONNOUSERSITE="1",
            TVM_USE_RUNTIME_LIB="1",  # only libtvm_runtime: the compiler library is not on the board
            TVM_BIND_THREADS="0",
        )
        return env


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder at a time per board folder (tests and a user may ask at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_root(
    arch: str = "aarch64", *, rebuild: bool = False, progress: bool = True, in_use: Callable[[], bool] = lambda: False
) -> BoardRoot:
    """The board root, built on first use (Debian arm64 packages + aarch64 wheels) and cached; a root built before a
    wheel joined WHEELS gets just that wheel. `in_use()` says whether servers run from it (no rebuild then)."""
    board = BoardRoot(board_dir(arch), _arch(arch))
    _need_tool(board.arch.qemu, "qemu-user-static")
    with _locked(board.dir):
        if rebuild or not board.built:
            if in_use():
                raise TvmDeployError("board servers are running from this board root; stop them first (tvmdeploy board down)")
            _build(board, progress)
        else:
            _add_missing_wheels(board, progress)
        _install_package(board)
        _write_cpuinfo(board)
    return board


def _build(board: BoardRoot, progress: bool) -> None:
    started = time.time()
    (board.dir / BUILD_STAMP).unlink(missing_ok=True)
    # Downloads too: a folder holding two versions of a package would unpack both.
    for stale in (board.root, board.site, board.dir / "debs", board.dir / "wheels"):
        shutil.rmtree(stale, ignore_errors=True)
    _ensure_foreign_arch(board.arch)
    packages = resolve_packages(board.arch)
    debs = _download_debs(board.arch, packages, board.dir / "debs", progress)
    board.root.mkdir(parents=True, exist_ok=True)
    for deb in _progress(debs, "board: dpkg -x", show=progress):
        _run(["dpkg", "-x", str(deb), str(board.root)])
    wheels = _download_wheels(board.arch, board.dir / "wheels", progress)
    _unpack_wheels(wheels, board.site, progress)
    _precompile(board, progress)
    version = _run(board.command("-c", "import sys; print(sys.version.split()[0])"), env=board.env()).stdout.strip()
    stamp = {
        "arch": board.arch.name,
        "python": version,
        "debs": [d.name for d in debs],
        "wheels": [w.name for w in wheels],
        "build_s": round(time.time() - started, 1),
    }
    (board.dir / BUILD_STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")


def _distribution(name: str) -> str:
    """A distribution's name as wheel files spell it (PEP 427: runs of -_. become _, lower case); a wheel file's
    name gives its distribution."""
    return re.sub(r"[-_.]+", "_", name.split("-")[0] if name.endswith(".whl") else name).lower()


def _add_missing_wheels(board: BoardRoot, progress: bool) -> None:
    stamp_file = board.dir / BUILD_STAMP
    stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
    have = {_distribution(name) for name in stamp.get("wheels", [])}
    missing = tuple(name for name in WHEELS if _distribution(name) not in have)
    if not missing:
        return
    wheels = _download_wheels(board.arch, board.dir / "wheels", progress, missing)
    wanted = {_distribution(name) for name in missing}
    added = [w for w in wheels if _distribution(w.name) in wanted]
    _unpack_wheels(added, board.site, progress)
    _precompile(board, progress)
    stamp["wheels"] = sorted({*stamp.get("wheels", []), *(w.name for w in added)})
    stamp_file.write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")


def _precompile(board: BoardRoot, show: bool) -> None:
    """Byte-compile on the host: same bytecode (Python 3.11), and it spares the emulated first import minutes."""
    import compileall

    stdlib = board.root / "usr" / "lib" / PYTHON
    for folder in _progress([stdlib, board.site], "board: compile .pyc", show=show):
        compileall.compile_dir(str(folder), quiet=2, workers=0 if (os.cpu_count() or 1) > 1 else 1)


def _install_package(board: BoardRoot) -> None:
    """Our tvmdeploy.runtime (the board server and what it runs) into the root's package folder, as the bundle
    carries it; rewritten when the checkout changed it."""

    wanted = {name: read() for name, read in runtime_members()}
    files = [p for p in board.package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    present = {p.relative_to(board.package_dir).as_posix(): p for p in files}
    if set(present) == set(wanted) and all(present[name].read_bytes() == data for name, data in wanted.items()):
        return
    shutil.rmtree(board.package_dir, ignore_errors=True)
    for name, data in wanted.items():
        target = board.package_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _write_cpuinfo(board: BoardRoot) -> None:
    """An aarch64 /proc/cpuinfo in the root, which qemu-user's -L prefix serves to the board's programs.

    qemu-user before 8.1 passes the host's x86 /proc/cpuinfo through; ONNX Runtime's CPU detection (pytorch
    cpuinfo) finds no ARM processor in it and crashes at import. One entry per host CPU (the threads the board
    gets), described as a generic ARMv8-A core: instruction features come from qemu's auxv (HWCAP), not from here.
    """
    entry = (
        "processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
        "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n"
    )
    text = "\n".join(entry.format(n=n) for n in range(os.cpu_count() or 1)) + "\n"
    target = board.root / "proc" / "cpuinfo"
    if not target.is_file() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
