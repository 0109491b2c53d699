"""Load a built artifact on this machine and run it: hash-checked library, Relax VM, fixed-batch inputs."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tvmdeploy.runtime import tvm_api
from tvmdeploy.runtime.artifact import Manifest, read_manifest, verify_library
from tvmdeploy.runtime.cpu_check import check_cpu_supports
from tvmdeploy.runtime.errors import TvmDeployError, arg


def check_input(manifest: Manifest, x: np.ndarray) -> np.ndarray:
    """The input as the library expects it, or a one-line error saying what it expected."""
    expected = tuple(manifest.input.shape)
    if tuple(x.shape) != expected:
        raise TvmDeployError(f"input shape {list(x.shape)} does not match the artifact's {list(expected)}")
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer):
        return np.ascontiguousarray(x, dtype=manifest.input.dtype)
    raise TvmDeployError(f"input dtype {x.dtype} is not numeric; expected {manifest.input.dtype}")


def run_padded(run_batch: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, batch: int, empty: np.ndarray) -> np.ndarray:
    """Outputs for any number of inputs through `run_batch`, which takes exactly `batch` of them (a model
    compiled for a fixed batch): the last chunk is padded with zeros and the padding's outputs dropped.
    `empty` is the result for no inputs (nothing is run then)."""
    outputs = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch]
        real = len(chunk)
        if real < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - real, *chunk.shape[1:]), dtype=chunk.dtype)])
        outputs.append(run_batch(chunk)[:real])
    return np.concatenate(outputs) if outputs else empty


def run_in_batches(run_one, manifest: Manifest, images: np.ndarray) -> np.ndarray:
    """Logits for any number of images through a library compiled for a fixed batch (the last batch is padded)."""
    per_image = tuple(manifest.input.shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != per_image:
        raise TvmDeployError(f"images shape {list(images.shape)} does not match the artifact's [N, {', '.join(map(str, per_image))}]")
    return run_padded(run_one, images, manifest.batch, np.zeros((0, *manifest.output.shape[1:]), np.float32))


class LocalModule:
    """An artifact loaded on this machine's CPU or GPU (implements runtime.module.ArtifactModule)."""

    def __init__(self, artifact_dir: Path, *, threads: int | None = None, device_index: int = 0):
        self.artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(self.artifact_dir)
        manifest = self.manifest
        here = platform.machine()
        if manifest.arch != here:
            raise TvmDeployError(
                f"artifact '{self.artifact_dir}' is built for {manifest.arch} ({manifest.profile}) and cannot run on this "
                f"{here} machine; run it on the device with {arg('rpc_tracker')}/{arg('rpc_key')} or {arg('rpc_server')} "
                "HOST:PORT"
            )
        if manifest.device == "cpu":
            # Before dlopen: a library with AVX-512 code on a CPU without it would die with SIGILL.
            check_cpu_supports(manifest.cpu_flags)
        self.threads = threads if threads is not None else manifest.threads
        tvm_api.configure_threads(self.threads)
        self.device = tvm_api.device(manifest.device, device_index)
        if not tvm_api.device_exists(self.device):
            raise TvmDeployError(f"artifact '{self.artifact_dir}' needs a {manifest.device} device, and none is present here")
        library = tvm_api.load_library(verify_library(self.artifact_dir, manifest))
        self.vm = tvm_api.virtual_machine(library, self.device)

    @property
    def description(self) -> str:
        """Where it runs, for run/bench output."""
        return f"local {self.manifest.device}"

    @property
    def emulated(self) -> bool:
        """False: this machine's own CPU or GPU (a remote module's may be an emulator)."""
        return False

    def close(self) -> None:
        """Nothing to release but the VM (the library stays loaded in this process)."""
        self.vm = None

    def __enter__(self) -> LocalModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits for one batch of exactly the artifact's input shape."""
        x = check_input(self.manifest, x)
        return tvm_api.to_numpy(self.vm["main"](tvm_api.to_device(x, self.device)))

    def run_images(self, images: np.ndarray) -> np.ndarray:
        return run_in_batches(self.run, self.manifest, images)

    def time(self, x: np.ndarray, *, number: int = 1, repeat: int = 50) -> list[float]:
        """Seconds per call, `repeat` samples of `number` calls each, timed by TVM on the device."""
        x = check_input(self.manifest, x)
        timer = self.vm.time_evaluator("main", self.device, number=number, repeat=repeat)
        return list(timer(tvm_api.to_device(x, self.device)).results)


def load_artifact(artifact_dir: Path, *, threads: int | None = None) -> LocalModule:
    return LocalModule(artifact_dir, threads=threads)
