"""An artifact uploaded to a remote device and run there in a Relax VM, timed by the device's own clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tvmdeploy.runtime import tvm_api
from tvmdeploy.runtime.artifact import read_manifest, verify_library
from tvmdeploy.runtime.loader import check_input, run_in_batches
from tvmdeploy.runtime.rpc.session import RemoteSession


class RemoteModule:
    """An artifact uploaded to a remote device and loaded in a Relax VM there (implements runtime.module.ArtifactModule)."""

    def __init__(self, session: RemoteSession, artifact_dir: Path):
        self.session = session
        self.artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(self.artifact_dir)
        library = verify_library(self.artifact_dir, self.manifest)  # never ship a .so the manifest does not vouch for
        remote_name = f"tvmdeploy-{self.manifest.library_sha256[:16]}.so"
        sess = session.tvm

        def _load() -> tuple[Any, Any]:
            sess.upload(str(library), target=remote_name)
            remote_lib = sess.load_module(remote_name)
            device = tvm_api.device(self.manifest.device, 0, session=sess)
            return device, tvm_api.virtual_machine(remote_lib, device)

        self.device, self.vm = session.call(f"uploading and loading {library.name}", _load)

    @property
    def emulated(self) -> bool:
        """True on a board under an emulator: show its timings only with that caveat."""
        return self.session.is_emulated

    @property
    def description(self) -> str:
        """Where it runs, for run/bench output, e.g. "remote cpu at 127.0.0.1:9090 via key 'k' at tracker ..."."""
        info = self.session.info()
        where = f"remote {self.manifest.device} at {self.session.server}"
        if self.session.endpoint.via_tracker:
            where += f", {self.session.endpoint}"
        if info.get("emulated"):
            where += f"; EMULATED {info.get('arch', '')} board ({info.get('emulator') or 'emulator'}): timings are not the real CPU's"
        return where

    def _set_input(self, x: np.ndarray) -> None:
        # set_input + invoke_stateful is the VM's RPC-safe calling convention (tensors stay on the device).
        self.vm.set_input("main", tvm_api.to_device(x, self.device))

    def close(self) -> None:
        self.vm = self.device = None
        self.session.close()

    def __enter__(self) -> RemoteModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits for one batch of exactly the artifact's input shape, computed on the device."""
        x = check_input(self.manifest, x)

        def _run() -> np.ndarray:
            self._set_input(x)
            self.vm.invoke_stateful("main")
            return tvm_api.to_numpy(self.vm.get_outputs("main"))

        return self.session.call("running the model", _run)

    def run_images(self, images: np.ndarray) -> np.ndarray:
        return run_in_batches(self.run, self.manifest, images)

    def time(self, x: np.ndarray, *, number: int = 1, repeat: int = 50) -> list[float]:
        """Seconds per call, `repeat` samples of `number` calls each, timed by the device's own clock."""
        x = check_input(self.manifest, x)

        def _time() -> list[float]:
            self._set_input(x)
            timer = self.vm.time_evaluator("invoke_stateful", self.device, number=number, repeat=repeat)
            return [float(t) for t in timer("main").results]

        return self.session.call("timing the model", _time)
