"""Make TVM emit real CUDA binaries (fatbin) on a build host that has nvcc but no GPU driver.

TVM 0.27 creates CUDA modules through `ffi.Module.create.cuda`, registered by
`libtvm_runtime_cuda.so`, which links against the driver's `libcuda.so.1`. On a host without a
driver that library fails to load, and `tvm.compile` silently falls back to a module holding only
CUDA C source, which the GPU machine would then have to compile at load time (it cannot: it has
neither nvcc nor TVM's compiler). NVIDIA's answer for such hosts is a link stub of libcuda; the
toolkit here ships none, so we build a tiny one whose functions all return "no device".
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError

_CREATE_CUDA = "ffi.Module.create.cuda"
_CUDA_ERROR_NO_DEVICE = 100
# The driver entry points libtvm_runtime_cuda.so 0.27 imports; used when `nm` is unavailable.
_KNOWN_DRIVER_SYMBOLS = (
    "cuDeviceGetName",
    "cuFuncSetAttribute",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuLaunchKernelEx",
    "cuModuleGetFunction",
    "cuModuleLoadData",
    "cuModuleUnload",
    "cuTensorMapEncodeTiled",
)
_STUB_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tvmdeploy" / "cuda-stub"
_loaded: list[ctypes.CDLL] = []  # keep the handles alive for the life of the process


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package ("cuda") is absent
        return False


def find_nvcc() -> Path | None:
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    default = Path("/usr/local/cuda/bin/nvcc")
    return default if default.exists() else None


def select_cuda_compiler() -> str:
    """Choose how TVM compiles the generated CUDA C: NVRTC if `cuda-bindings` is installed, else nvcc.

    TVM 0.27 defaults to NVRTC, which needs the `cuda-bindings` package; this project's build hosts
    have nvcc (CUDA 13) instead. A TVM_CUDA_COMPILE_MODE the user set is kept.
    """
    mode = os.environ.get("TVM_CUDA_COMPILE_MODE")
    if mode is None:
        mode = "nvrtc" if _has_module("cuda.bindings") else "nvcc"
        os.environ["TVM_CUDA_COMPILE_MODE"] = mode
    if mode == "nvcc" and find_nvcc() is None:
        raise TvmDeployError("building for a CUDA profile needs nvcc (the CUDA toolkit) on PATH, or cuda-bindings for NVRTC")
    return mode


def _cuda_lib_dir() -> Path:
    nvcc = find_nvcc()
    if nvcc is None:
        raise TvmDeployError("building for a CUDA profile needs nvcc (the CUDA toolkit) on PATH")
    # /usr/local/bin/nvcc is often a wrapper script; the toolkit is where the real binary lives.
    for root in (nvcc.resolve().parent.parent, Path("/usr/local/cuda")):
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib"):
            if any((root / sub).glob("libcudart.so.*")):
                return root / sub
    raise TvmDeployError(f"no libcudart.so.* found next to {nvcc}; is the CUDA toolkit complete?")


def _driver_symbols(runtime_cuda: Path) -> list[str]:
    try:
        out = subprocess.run(["nm", "-D", "--undefined-only", str(runtime_cuda)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return list(_KNOWN_DRIVER_SYMBOLS)
    names = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    return sorted(n for n in names if n.startswith("cu") and n[2:3].isupper()) or list(_KNOWN_DRIVER_SYMBOLS)


def build_driver_stub(symbols: list[str], cache_dir: Path = _STUB_CACHE) -> Path:
    """A `libcuda.so.1` exporting `symbols`, each returning CUDA_ERROR_NO_DEVICE; cached by content."""
    source = "".join(f"int {name}(void) {{ return {_CUDA_ERROR_NO_DEVICE}; }}\n" for name in symbols)
    folder = cache_dir / hashlib.sha256(source.encode()).hexdigest()[:16]
    stub = folder / "libcuda.so.1"
    if stub.exists():
        return stub
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise TvmDeployError("building for CUDA without a GPU driver needs a C compiler (cc) to make a libcuda stub")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stub.c").write_text(source)
    tmp = folder / f"libcuda.so.1.{os.getpid()}"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O0", "-Wl,-soname,libcuda.so.1", "-o", str(tmp), str(folder / "stub.c")],
        check=True,
        capture_output=True,
    )
    tmp.replace(stub)  # atomic: concurrent builds never see half a library
    return stub


def ensure_cuda_codegen() -> str:
    """Make `tvm.compile` produce CUDA binaries here; returns "driver" or "stub" (how it was made possible)."""
    import tvm  # noqa: F401  (loads libtvm_runtime and tries libtvm_runtime_cuda itself)
    import tvm_ffi
    from tvm.base import _LOADED_LIBS
    from tvm_ffi.libinfo import load_lib_ctypes

    select_cuda_compiler()
    if tvm_ffi.get_global_func(_CREATE_CUDA, allow_missing=True) is not None:
        return "stub" if _loaded else "driver"
    runtime_dir = Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent
    runtime_cuda = runtime_dir / "libtvm_runtime_cuda.so"
    if not runtime_cuda.exists():
        raise TvmDeployError(f"this TVM build has no CUDA runtime ({runtime_cuda} is missing); install a CUDA-enabled apache-tvm")
    cudart = sorted(_cuda_lib_dir().glob("libcudart.so.*"))[-1]
    # RTLD_GLOBAL + matching sonames: the loader resolves libtvm_runtime_cuda's NEEDED entries to these.
    _loaded.append(ctypes.CDLL(str(cudart), mode=ctypes.RTLD_GLOBAL))
    _loaded.append(ctypes.CDLL(str(build_driver_stub(_driver_symbols(runtime_cuda))), mode=ctypes.RTLD_GLOBAL))
    _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(
        package="tvm", target_name="tvm_runtime_cuda", extra_lib_paths=[runtime_dir], mode="RTLD_LOCAL"
    )
    if tvm_ffi.get_global_func(_CREATE_CUDA, allow_missing=True) is None:
        raise TvmDeployError("loaded libtvm_runtime_cuda.so but it registered no CUDA module factory")
    return "stub"
