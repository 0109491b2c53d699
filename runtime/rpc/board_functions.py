"""The functions a tvmdeploy board server offers over RPC: what the board is, and ONNX Runtime on the board itself.

Both sides import this module: the board registers the functions (`register`, in its RPC server process,
before sessions fork), the host calls them by these names (runtime/rpc/device_ort.py). Only the standard
library at import; numpy and onnxruntime load inside the calls, and a board without ONNX Runtime says so in
its info instead of failing.
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

BOARD_INFO_FUNCTION = "tvmdeploy.board.info"
ORT_RUN_FUNCTION = "tvmdeploy.board.ort_run"
ORT_TIME_FUNCTION = "tvmdeploy.board.ort_time"
_WORKPATH_FUNCTION = "tvm.rpc.server.workpath"  # TVM's server: where a session's uploads are

# One ONNX Runtime session per (model file, threads) in this RPC session process: creating one costs a
# model load and graph optimisation (seconds under an emulator), every timing block reuses it.
_sessions: dict[tuple[str, int], Any] = {}


def onnxruntime_status() -> tuple[str | None, str]:
    """(ONNX Runtime's version, "") when this Python can import it, else (None, why not)."""
    try:
        import onnxruntime
    except ImportError as exc:
        return None, f"onnxruntime is not installed ({exc})"
    except Exception as exc:  # a wheel for another CPU or glibc fails with OSError/RuntimeError at import
        return None, f"onnxruntime does not load here: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return str(onnxruntime.__version__), ""


def board_info(*, key: str, emulator: str = "", import_tvm_s: float = 0.0) -> dict[str, Any]:
    """What the host learns about the board (BOARD_INFO_FUNCTION): CPU architecture, emulation, versions."""
    import tvm

    ort_version, ort_missing = onnxruntime_status()
    return {
        "arch": platform.machine(),
        "emulated": bool(emulator),
        "emulator": emulator,
        "cpus": os.cpu_count() or 1,
        "python": platform.python_version(),
        "tvm": tvm.__version__,
        "tvm_path": str(getattr(tvm, "__file__", "") or ""),
        "onnxruntime": ort_version,
        "onnxruntime_missing": ort_missing,
        "key": key,
        "import_tvm_s": round(import_tvm_s, 1),
    }


def _workpath(name: str) -> str:
    import tvm

    return str(tvm.get_global_func(_WORKPATH_FUNCTION)(name))


def _session(model_file: str, threads: int) -> Any:
    from tvmdeploy.runtime.ort_session import ort_session

    cache_key = (model_file, threads)
    if cache_key not in _sessions:
        _sessions[cache_key] = ort_session(_workpath(model_file), threads)
    return _sessions[cache_key]


def _feed(session: Any, x: Any) -> dict[str, Any]:
    from tvmdeploy.runtime import tvm_api

    return {session.get_inputs()[0].name: tvm_api.to_numpy(x)}


def ort_run(model_file: str, x: Any, threads: int) -> Any:
    """ONNX Runtime's first output for input tensor `x` on the uploaded `model_file`, as a tensor."""
    from tvmdeploy.runtime import tvm_api

    session = _session(model_file, int(threads))
    return tvm_api.to_device(session.run(None, _feed(session, x))[0], tvm_api.device("cpu"))


def ort_time(model_file: str, x: Any, threads: int, warmup: int, runs: int) -> str:
    """Seconds per ONNX Runtime call on this board (its own clock), `runs` samples after `warmup` calls, as JSON."""
    session = _session(model_file, int(threads))
    feed = _feed(session, x)
    for _ in range(int(warmup)):
        session.run(None, feed)
    samples = []
    for _ in range(int(runs)):
        started = time.perf_counter()
        session.run(None, feed)
        samples.append(time.perf_counter() - started)
    return json.dumps(samples)


def register_here(key: str = "") -> None:
    """Register the board functions with this process's own info: how `tvmdeploy rpc server` (TVM's rpc.Server,
    whose `server_init_callback` this is) offers them too."""
    register(board_info(key=key))


def register(info: dict[str, Any]) -> None:
    """Register the board's functions in this process (the RPC server's; its sessions inherit them)."""
    import tvm_ffi

    tvm_ffi.register_global_func(BOARD_INFO_FUNCTION, lambda: json.dumps(info), override=True)
    tvm_ffi.register_global_func(ORT_RUN_FUNCTION, ort_run, override=True)
    tvm_ffi.register_global_func(ORT_TIME_FUNCTION, ort_time, override=True)
