"""Pack the runtime-only bundle: TVM runtime libraries and Python wrapper, tvmdeploy.runtime, artifacts."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.util
import io
import json
import os
import platform as _platform
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tvmdeploy.runtime.artifact import LIBRARY_FILE, MANIFEST_FILE, read_manifest
from tvmdeploy.runtime.errors import TvmDeployError, arg

# Bundle platform -> (CPU architecture, pip --platform tag of the manylinux wheels).
PLATFORMS: dict[str, tuple[str, str]] = {
    "linux-x86_64": ("x86_64", "manylinux_2_28_x86_64"),
    "linux-aarch64": ("aarch64", "manylinux_2_28_aarch64"),
}
TVM_DIST, FFI_DIST, ORT_DIST = "apache-tvm", "apache-tvm-ffi", "onnxruntime"
# Pinned in pyproject.toml / requirements.lock; used when the package metadata cannot be read.
_FALLBACK_VERSIONS = {TVM_DIST: "0.27.0.post1", FFI_DIST: "0.1.14.post1", ORT_DIST: "1.32.0"}
# ONNX Runtime's inference needs its capi/ and __init__; its Python tools (quantization, transformers, training
# helpers) are not imported by `import onnxruntime`.
_ORT_EXCLUDED = ("onnxruntime/tools/*", "onnxruntime/transformers/*", "onnxruntime/quantization/*", "onnxruntime/datasets/*")
# Where find_wheel keeps the platform wheels it downloads (the emulated board's root keeps its own, board/root.py).
WHEEL_CACHE = Path(os.environ.get("TVMDEPLOY_WHEEL_CACHE", Path.home() / ".cache" / "tvmdeploy" / "wheels"))
DEFAULT_BOARD_PYTHON = "3.11"
SITE = "site"  # folder inside the bundle that goes on sys.path

# Folders of the two TVM packages the runtime never imports (traced with TVM_USE_RUNTIME_LIB=1 running
# an artifact): the compiler's Python (relax, s_tir, topi), C++ sources and headers, web, tests.
# backend/*/ holds compiler-side codegen helpers; only backend/*.py is imported at `import tvm`.
_EXCLUDED = (
    "tvm/relax/*",
    "tvm/s_tir/*",
    "tvm/topi/*",
    "tvm/testing/*",
    "tvm/web/*",
    "tvm/3rdparty/*",
    "tvm/src/*",
    "tvm/include/*",
    "tvm/cmake/*",
    "tvm/lib64/*",
    "tvm/backend/*/*",
    "tvm_ffi/3rdparty/*",
    "tvm_ffi/src/*",
    "tvm_ffi/include/*",
    "tvm_ffi/cython/*",
    "tvm_ffi/share/*",
    "tvm_ffi/cmake/*",
    "tvm_ffi/stub/*",
    "*/__pycache__/*",
    "*.pyc",
    "*.a",
    "*.h",
    "*.cc",
    "*.pyx",
    "*.pxi",
)
# Of the shared libraries only these: the 260 MB libtvm_compiler.so is what the bundle exists to avoid.
# core.*.so is tvm_ffi's Cython extension, one per Python version; libtvm_ffi_testing.so is a NEEDED of it.
_KEPT_LIBRARIES = (
    "tvm/lib/libtvm_runtime.so",
    "tvm/lib/libtvm_runtime_*.so",
    "tvm_ffi/lib/libtvm_ffi.so",
    "tvm_ffi/lib/libtvm_ffi_testing.so",
    "tvm_ffi/core.*.so",
)

# The start of both launchers: the bundle's site/ first on sys.path, TVM's runtime-only mode.
_BOOTSTRAP = """import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "site"))
os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
os.environ.setdefault("TVM_FFI_DISABLE_TORCH_C_DLPACK", "1")  # no torch-extension JIT at import
"""

_LAUNCHER = (
    '''"""Run from the unpacked bundle: python3 classify.py ARTIFACT IMAGE [...]; needs only numpy and Pillow."""
'''
    + _BOOTSTRAP
    + """from tvmdeploy.runtime.bundle_main import main  # noqa: E402

sys.exit(main())
"""
)

_SERVE = (
    '''"""Start this board's TVM RPC server from the unpacked bundle (tvmdeploy docs/rpc_and_board.md, "A real board").

    python3 serve.py --tracker HOST:PORT --key KEY [--host 127.0.0.1 | --listen-any] [--port 9090]

It registers with the tracker, runs whatever a tvmdeploy host sends (artifacts, ONNX Runtime when the bundle
carries it), and needs only numpy besides the bundle. The server runs any code it is sent: it listens on
127.0.0.1 unless --listen-any.
"""
'''
    + _BOOTSTRAP
    + """from tvmdeploy.runtime.rpc.board_server import main  # noqa: E402

argv = sys.argv[1:]
extra = os.path.join(here, "site", "tvm", "lib", "libtvm_runtime_extra.so")  # what MetaSchedule's measurements call
if "--load-library" not in argv and os.path.exists(extra):
    argv += ["--load-library", extra]
sys.exit(main(argv))
"""
)

_ENV_SH = """# source me: puts the bundle's Python packages on PYTHONPATH and selects TVM's runtime-only mode
_here="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export PYTHONPATH="$_here/site${PYTHONPATH:+:$PYTHONPATH}"
export TVM_USE_RUNTIME_LIB=1
export TVM_FFI_DISABLE_TORCH_C_DLPACK=1  # else tvm_ffi JIT-builds a torch extension at import when torch is present
"""


@dataclass
class BundleResult:
    path: Path
    size_bytes: int
    unpacked_bytes: int
    files: int
    platform: str
    python_versions: list[str]
    artifacts: list[str] = field(default_factory=list)
    cudart: str | None = None
    onnxruntime: str | None = None


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return _FALLBACK_VERSIONS[dist]


def _python_tag(version: str) -> str:
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise TvmDeployError(f"python version must look like 3.12, got '{version}'")
    return f"cp{major}{minor}"


def keep_member(name: str) -> bool:
    """Whether a file of the tvm / tvm_ffi packages (path relative to site-packages) goes into the bundle."""
    if any(fnmatch.fnmatch(name, pattern) for pattern in _EXCLUDED):
        return False
    if name.endswith(".so") or ".so." in name:
        return any(fnmatch.fnmatch(name, pattern) for pattern in _KEPT_LIBRARIES)
    return True


# A source yields (path relative to site-packages, function returning the bytes).
Member = tuple[str, Callable[[], bytes]]


def _installed_members(package: str) -> Iterator[Member]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TvmDeployError(f"package '{package}' is not installed; cannot bundle its runtime")
    root = Path(list(spec.submodule_search_locations)[0])
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield f"{package}/{path.relative_to(root).as_posix()}", path.read_bytes


def _wheel_members(wheel: Path, packages: Sequence[str]) -> Iterator[Member]:
    archive = zipfile.ZipFile(wheel)
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        if not info.is_dir() and info.filename.split("/", 1)[0] in packages:
            yield info.filename, (lambda n=info.filename: archive.read(n))


def pip_download(requirement: str, pip_platform: str, python_version: str, dest: Path) -> subprocess.CompletedProcess:
    """`pip download` of one binary wheel, without its dependencies, for another platform / Python into `dest`."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--platform", pip_platform, "--python-version", python_version, "--dest", str(dest), requirement]
    return subprocess.run(command, capture_output=True, text=True)


def find_wheel(dist: str, platform: str, python_version: str, cache: Path = WHEEL_CACHE, *, download: bool = True) -> Path:
    """The wheel of `dist` (pinned version) for `platform`, from the shared cache, downloading it once if absent."""
    arch, pip_platform = PLATFORMS[platform]
    version = dist_version(dist)
    stem = dist.replace("-", "_")
    # apache-tvm is py3-none (one wheel for every Python); apache-tvm-ffi is built per CPython version.
    tag = "py3-none" if dist == TVM_DIST else f"{_python_tag(python_version)}-{_python_tag(python_version)}"
    pattern = f"{stem}-{version}-{tag}-*{arch}*.whl"
    found = sorted(cache.glob(pattern))
    if not found and download:
        cache.mkdir(parents=True, exist_ok=True)
        done = pip_download(f"{dist}=={version}", pip_platform, python_version, cache)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise TvmDeployError(f"cannot download {dist}=={version} for {platform} / Python {python_version}: {last}")
        found = sorted(cache.glob(pattern))
    if not found:
        raise TvmDeployError(
            f"no {dist}=={version} wheel for {platform} / Python {python_version} in {cache} "
            f"(put it there with: pip download --no-deps --only-binary=:all: --platform {pip_platform} "
            f"--python-version {python_version} --dest {cache} {dist}=={version})"
        )
    return found[-1]


def _package_members(
    platform: str,
    python_versions: Sequence[str],
    cache: Path,
    download: bool,
    packages: Sequence[tuple[str, str]],
    per_python: tuple[str, str, str],
) -> Iterator[Member]:
    """Files of `packages` ((distribution, import name) pairs): the installed packages when they fit the platform,
    else the platform's wheels for the first Python version. Only one file of them depends on the Python version
    (`per_python`: its distribution, import name and path pattern), so each further version adds just that file
    from its own wheel."""
    arch = PLATFORMS[platform][0]
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if arch == _platform.machine() and here in python_versions:
        for _, package in packages:
            yield from _installed_members(package)
        others = [v for v in python_versions if v != here]
    else:
        for dist, package in packages:
            yield from _wheel_members(find_wheel(dist, platform, python_versions[0], cache, download=download), [package])
        others = list(python_versions[1:])
    dist, package, pattern = per_python
    for version in others:
        wheel = find_wheel(dist, platform, version, cache, download=download)
        yield from ((name, read) for name, read in _wheel_members(wheel, [package]) if fnmatch.fnmatch(name, pattern))


def _tvm_members(platform: str, python_versions: Sequence[str], cache: Path, download: bool) -> Iterator[Member]:
    """tvm + tvm_ffi files. Only tvm_ffi's Cython extension depends on the Python version; its libtvm_ffi.so is
    byte-identical across versions."""
    packages = [(TVM_DIST, "tvm"), (FFI_DIST, "tvm_ffi")]
    yield from _package_members(platform, python_versions, cache, download, packages, (FFI_DIST, "tvm_ffi", "tvm_ffi/core.*.so"))


def _pure_python_dependency(module: str) -> Member:
    """A single-file pure-Python dependency of tvm_ffi (typing_extensions), taken from this environment."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise TvmDeployError(f"'{module}' (needed by tvm_ffi) is not installed as a single .py file here")
    path = Path(spec.origin)
    return path.name, path.read_bytes


def _ort_members(platform: str, python_versions: Sequence[str], cache: Path, download: bool) -> Iterator[Member]:
    """onnxruntime's inference files for the device (not its Python tools); its Python extension is per version."""
    extension = (ORT_DIST, "onnxruntime", "onnxruntime/capi/*pybind11_state.cpython-*.so")
    for name, read in _package_members(platform, python_versions, cache, download, [(ORT_DIST, "onnxruntime")], extension):
        if not any(fnmatch.fnmatch(name, p) for p in (*_ORT_EXCLUDED, "*/__pycache__/*", "*.pyc")):
            yield name, read


def runtime_members() -> Iterator[Member]:
    """Our `tvmdeploy.runtime` package (loader, pre/post-processing, labels), without bytecode."""
    spec = importlib.util.find_spec("tvmdeploy.runtime")
    root = Path(list(spec.submodule_search_locations)[0])
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.endswith(".pyc"):
            yield f"tvmdeploy/runtime/{rel}", path.read_bytes


def find_cudart() -> Path | None:
    """libcudart.so.N of the CUDA toolkit here: libtvm_runtime_cuda.so needs it and PyTorch's CUDA 12 one won't do."""
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    roots = [Path(nvcc).resolve().parent.parent, Path("/usr/local/cuda")]
    for root in roots:
        found = sorted((root / "lib64").glob("libcudart.so.[0-9]*"))
        found = [p for p in found if p.name.count(".") == 2]  # the soname file, libcudart.so.13
        if found:
            return found[-1]
    return None


def _artifact_members(artifact: Path, platform: str) -> Iterator[Member]:
    manifest = read_manifest(artifact)  # raises a clear error for a non-artifact folder
    arch = PLATFORMS[platform][0]
    if manifest.arch != arch:
        raise TvmDeployError(f"artifact {artifact} is for {manifest.arch} ({manifest.profile}), not for {platform}")
    for name in (LIBRARY_FILE, MANIFEST_FILE):
        path = artifact / name
        if not path.is_file():
            raise TvmDeployError(f"artifact {artifact} has no {name}")
        yield f"artifacts/{artifact.name}/{name}", path.read_bytes


def _add(tar: tarfile.TarFile, name: str, data: bytes, executable: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755 if executable else 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def make_bundle(
    platform: str,
    output: Path | None = None,
    *,
    artifacts: Iterable[Path] = (),
    python_versions: Sequence[str] | None = None,
    cudart: str = "auto",
    wheel_cache: Path = WHEEL_CACHE,
    download: bool = True,
    with_ort: bool = False,
) -> BundleResult:
    """Write the runtime-only bundle for `platform` as a .tar.gz and return what went into it.

    `with_ort` adds the device's ONNX Runtime (its wheel for the platform, inference files only): with it, a board
    started by the bundle's serve.py times ONNX Runtime beside the artifact (`tvmdeploy bench` over RPC).
    `cudart`: "auto" adds the CUDA toolkit's libcudart when bundling for x86-64 and one is found,
    "yes" requires it, "no" leaves it out.
    """
    if platform not in PLATFORMS:
        raise TvmDeployError(f"unknown platform '{platform}'; choose one of {', '.join(PLATFORMS)}")
    if cudart not in ("auto", "yes", "no"):
        raise TvmDeployError(f"cudart must be auto, yes or no, got '{cudart}'")
    arch = PLATFORMS[platform][0]
    if not python_versions:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        python_versions = [here] if arch == _platform.machine() else [DEFAULT_BOARD_PYTHON]
    python_versions = list(dict.fromkeys(python_versions))
    for version in python_versions:
        _python_tag(version)
    artifacts = [Path(a) for a in artifacts]
    names = [a.resolve().name for a in artifacts]
    if len(set(names)) != len(names):
        raise TvmDeployError(f"two artifacts share a folder name ({', '.join(names)}); rename one")
    top = f"tvmdeploy-runtime-{platform}"
    output = Path(output) if output else Path.cwd() / f"{top}.tar.gz"

    cudart_path = None
    if cudart != "no" and arch == "x86_64":
        cudart_path = find_cudart()
        if cudart_path is None and cudart == "yes":
            raise TvmDeployError(f"no libcudart.so.N found (CUDA toolkit); install it or use {arg('cudart')} no", param="cudart")
    elif cudart == "yes":
        raise TvmDeployError(f"bundling libcudart is only supported for linux-x86_64, not {platform}")

    members: list[Member] = [
        (f"{SITE}/{name}", read) for name, read in _tvm_members(platform, python_versions, Path(wheel_cache), download) if keep_member(name)
    ]
    dep_name, dep_read = _pure_python_dependency("typing_extensions")
    members.append((f"{SITE}/{dep_name}", dep_read))
    members += [(f"{SITE}/{name}", read) for name, read in runtime_members()]
    if with_ort:
        members += [(f"{SITE}/{name}", read) for name, read in _ort_members(platform, python_versions, Path(wheel_cache), download)]
    if cudart_path is not None:
        # Next to libtvm_runtime_cuda.so, whose RUNPATH is $ORIGIN.
        members.append((f"{SITE}/tvm/lib/{cudart_path.name}", cudart_path.read_bytes))
    for artifact in artifacts:
        members += list(_artifact_members(artifact.resolve(), platform))
    if not any(name.endswith("/libtvm_runtime.so") for name, _ in members):
        raise TvmDeployError("libtvm_runtime.so was not found in the TVM package; the bundle would not run")

    info = {
        "platform": platform,
        "python_versions": python_versions,
        "tvm": dist_version(TVM_DIST),
        "tvm_ffi": dist_version(FFI_DIST),
        "needs": ["python3 (" + ", ".join(python_versions) + ")", "numpy", "Pillow"],
        "onnxruntime": dist_version(ORT_DIST) if with_ort else None,
        "cudart": cudart_path.name if cudart_path else None,
        "artifacts": [f"artifacts/{n}" for n in names],
        "run": "python3 classify.py ARTIFACT IMAGE [IMAGE ...]",
        "serve": "python3 serve.py --tracker HOST:PORT --key KEY",
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".part")
    unpacked = 0
    with tarfile.open(partial, "w:gz", compresslevel=9) as tar:
        for name, read in members:
            data = read()
            unpacked += len(data)
            _add(tar, f"{top}/{name}", data, executable=name.endswith(".so"))
        _add(tar, f"{top}/classify.py", _LAUNCHER.encode())
        _add(tar, f"{top}/serve.py", _SERVE.encode())
        _add(tar, f"{top}/env.sh", _ENV_SH.encode())
        _add(tar, f"{top}/BUNDLE.json", (json.dumps(info, indent=2) + "\n").encode())
    partial.replace(output)
    return BundleResult(
        path=output,
        size_bytes=output.stat().st_size,
        unpacked_bytes=unpacked,
        files=len(members) + 4,
        platform=platform,
        python_versions=python_versions,
        artifacts=names,
        cudart=cudart_path.name if cudart_path else None,
        onnxruntime=info["onnxruntime"],
    )
