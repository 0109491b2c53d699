"""ONNX Runtime on the remote device itself: the model file uploaded there, run and timed by the board's own ORT."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tvmdeploy.runtime import tvm_api
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc.board_functions import ORT_RUN_FUNCTION, ORT_TIME_FUNCTION
from tvmdeploy.runtime.rpc.session import RemoteSession

BIG_CORES = 1  # TVM's threading::ThreadGroup::AffinityMode kBig: the fastest cores first (all, where they are alike)


def set_device_threads(session: RemoteSession, threads: int) -> None:
    """Size TVM's thread pool on the device (`runtime.config_threadpool` there) to `threads` workers, for the
    remote module's runs from now on in this session."""

    def _configure() -> None:
        session.tvm.get_function("runtime.config_threadpool")(BIG_CORES, threads)

    session.call(f"setting the device's TVM thread pool to {threads} thread(s)", _configure, timeout_s=min(session.call_timeout_s, 60.0))


def device_threads(session: RemoteSession) -> int:
    """The size of TVM's thread pool on the device (`runtime.NumThreads` there), which a remote module runs on:
    ONNX Runtime there gets as many. Falls back to the board's CPU count."""

    def _ask() -> int:
        return int(session.tvm.get_function("runtime.NumThreads")())

    try:
        threads = session.call("asking the device for its TVM thread count", _ask, timeout_s=min(session.call_timeout_s, 60.0))
    except TvmDeployError:
        threads = 0
    return threads or int(session.info().get("cpus") or 1)


class DeviceOrt:
    """ONNX Runtime on the device of `session`, on `onnx_path` (uploaded there), with `threads` intra-op threads.

    Raises TvmDeployError in one line when the device cannot: a server that is not tvmdeploy's,
    a board without ONNX Runtime, an ONNX file its ONNX Runtime refuses (e.g. an opset newer than it knows).
    """

    def __init__(self, session: RemoteSession, onnx_path: Path, threads: int = 0):
        info = session.info()
        if not info:
            raise TvmDeployError(
                f"the RPC server {session.server} is not a tvmdeploy one (`tvmdeploy board up`, `tvmdeploy rpc server`, or "
                "serve.py of the runtime bundle): it offers no ONNX Runtime"
            )
        if not info.get("onnxruntime"):
            raise TvmDeployError(f"ONNX Runtime is not on the device: {info.get('onnxruntime_missing') or 'not installed'}")
        self.session = session
        self.version = str(info["onnxruntime"])
        self.threads = threads
        data = Path(onnx_path).read_bytes()
        self.remote_name = f"tvmdeploy-{hashlib.sha256(data).hexdigest()[:16]}.onnx"
        sess = session.tvm

        def _prepare():
            sess.upload(bytearray(data), target=self.remote_name)
            return sess.get_function(ORT_RUN_FUNCTION), sess.get_function(ORT_TIME_FUNCTION), sess.cpu(0)

        self._run, self._time, self._device = session.call(f"uploading {Path(onnx_path).name} for ONNX Runtime", _prepare)

    def run(self, x: np.ndarray) -> np.ndarray:
        """ONNX Runtime's logits for `x`, computed on the device (the first call also loads the model there)."""
        return self.session.call(
            "running ONNX Runtime",
            lambda: tvm_api.to_numpy(self._run(self.remote_name, tvm_api.to_device(x, self._device), self.threads)),
        )

    def time(self, x: np.ndarray, *, warmup: int = 0, runs: int = 10) -> list[float]:
        """Seconds per ONNX Runtime call, `runs` samples after `warmup` calls, timed by the device's own clock."""
        return self.session.call(
            "timing ONNX Runtime",
            lambda: [
                float(s)
                for s in json.loads(str(self._time(self.remote_name, tvm_api.to_device(x, self._device), self.threads, warmup, runs)))
            ],
        )
