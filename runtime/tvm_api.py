"""The TVM runtime calls we depend on, in one place: apache-tvm 0.27 names them differently from older releases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError


def _tvm():
    import tvm  # lazy: `tvmdeploy.runtime` must import on machines without TVM (e.g. for preprocessing only)
    import tvm.runtime.vm  # noqa: F401  (registers the VM wrapper; needs only libtvm_runtime)

    return tvm


def configure_threads(threads: int | None) -> None:
    """Fix the TVM thread pool size; must run before the first parallel kernel.

    TVM reads these variables when its pool starts. Pinning threads to cores made the whole model
    about 2x slower on this project's VMs (TVM_NOTES item 5), so binding is off unless the user set it.
    `threads` 0 or None means every core this process may use: TVM's own default takes half of them where it
    guesses the cores are hyper-threaded pairs, and ran one thread of two on an AMD EPYC VM (2x slower).
    """
    if threads:
        os.environ["TVM_NUM_THREADS"] = str(threads)
    else:
        os.environ.setdefault("TVM_NUM_THREADS", str(usable_cores()))
    os.environ.setdefault("TVM_BIND_THREADS", "0")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), or all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


_loaded_runtimes: dict[str, object] = {}


def load_device_runtime(device: str) -> None:
    """Load TVM's CUDA runtime library, which `import tvm` skips in runtime-only mode.

    With TVM_USE_RUNTIME_LIB=1, apache-tvm 0.27 loads only libtvm_runtime.so; the CUDA device API
    and the CUDA module loader live in libtvm_runtime_cuda.so, next to it. Without this a CUDA
    artifact fails with "a loader of that name is not registered".
    """
    if device != "cuda" or device in _loaded_runtimes:
        return
    _tvm()
    import tvm_ffi
    from tvm.base import _LOADED_LIBS
    from tvm_ffi.libinfo import load_lib_ctypes

    if tvm_ffi.get_global_func("ffi.Module.load_from_bytes.cuda", allow_missing=True) is None:
        runtime_dir = Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent
        try:
            _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(
                package="tvm", target_name="tvm_runtime_cuda", extra_lib_paths=[runtime_dir], mode="RTLD_LOCAL"
            )
        except (OSError, RuntimeError) as exc:
            # Usually libcuda.so.1 (the NVIDIA driver) or libcudart.so.13 is missing.
            raise TvmDeployError(f"cannot load TVM's CUDA runtime (libtvm_runtime_cuda.so): {exc}") from None
    _loaded_runtimes[device] = True


def tvm_version() -> str:
    return _tvm().__version__


def device(kind: str, index: int = 0, session: Any = None):
    """A TVM device of `kind` ("cpu"/"cuda"), local or on an RPC session."""
    if session is not None:
        return session.cuda(index) if kind == "cuda" else session.cpu(index)
    tvm = _tvm()
    load_device_runtime(kind)
    return tvm.cuda(index) if kind == "cuda" else tvm.cpu(index)


def device_exists(dev) -> bool:
    return bool(dev.exist)


def load_library(path: Path):
    return _tvm().runtime.load_module(str(path))


def virtual_machine(library, dev):
    return _tvm().runtime.vm.VirtualMachine(library, dev)


def to_device(array: np.ndarray, dev):
    return _tvm().runtime.tensor(np.ascontiguousarray(array), dev)


def to_numpy(value) -> np.ndarray:
    """The VM returns a Tensor for one output and an Array for several; we take the first (the logits)."""
    if hasattr(value, "numpy"):
        return value.numpy()
    return to_numpy(value[0])
