"""An artifact opened where it runs, behind one interface: `ArtifactModule` (local or remote) and `Model`.

`ArtifactModule` is the protocol that `loader.LocalModule` and `rpc.RemoteModule` both implement;
`open_module` picks one from an optional `RpcEndpoint`. `Model` is what the public
`tvmdeploy.load` returns: any number of images in, logits, labelled top-k or latency statistics out.
Board-safe: numpy, Pillow and our runtime only (TVM is imported when a module is opened).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from tvmdeploy.runtime.artifact import Manifest
from tvmdeploy.runtime.errors import TvmDeployError

if TYPE_CHECKING:
    from PIL import Image

    from tvmdeploy.runtime.classify import Classified
    from tvmdeploy.runtime.postprocess import Prediction
    from tvmdeploy.runtime.rpc import RpcEndpoint
    from tvmdeploy.runtime.timing import LatencyStats

logger = logging.getLogger(__name__)

DEFAULT_RPC_TIMEOUT_S = 60.0
DEFAULT_RPC_CALL_TIMEOUT_S = 600.0  # one remote call: an emulated board needs seconds per image


@runtime_checkable
class ArtifactModule(Protocol):
    """A loaded artifact, on this machine (`LocalModule`) or on a remote device (`RemoteModule`)."""

    artifact_dir: Path
    manifest: Manifest

    @property
    def description(self) -> str:
        """Where it runs, for output (e.g. "local cpu", "remote cpu at HOST:PORT ...")."""
        ...

    @property
    def emulated(self) -> bool:
        """True on a board under an emulator: its timings are not the real CPU's."""
        ...

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits for one batch of exactly the artifact's input shape."""
        ...

    def run_images(self, images: np.ndarray) -> np.ndarray:
        """Logits for any number of images (the last artifact batch padded)."""
        ...

    def time(self, x: np.ndarray, *, number: int = 1, repeat: int = 50) -> list[float]:
        """Seconds per call, `repeat` samples of `number` calls each, timed on the device."""
        ...

    def close(self) -> None: ...


def open_module(
    artifact_dir: str | os.PathLike[str],
    endpoint: RpcEndpoint | None = None,
    *,
    threads: int | None = None,
    timeout_s: float = DEFAULT_RPC_TIMEOUT_S,
    call_timeout_s: float = DEFAULT_RPC_CALL_TIMEOUT_S,
) -> ArtifactModule:
    """The artifact loaded here (`endpoint` None; `threads` defaults to the profile's) or on the endpoint's device
    (waiting at most `timeout_s` for it, and `call_timeout_s` for each remote call; the device keeps its own
    thread setting)."""
    if endpoint is None:
        from tvmdeploy.runtime.loader import LocalModule

        return LocalModule(Path(artifact_dir), threads=threads)
    from tvmdeploy.runtime.rpc import RemoteModule, connect

    session = connect(endpoint, timeout_s=timeout_s, call_timeout_s=call_timeout_s)
    return RemoteModule(session, Path(artifact_dir))


def _is_image(item: object) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a runtime dependency
        return False
    return isinstance(item, Image.Image)


class Model:
    """A loaded artifact for Python callers: `classify`, `run`, `time`, `manifest`; a context manager."""

    def __init__(self, module: ArtifactModule):
        self.module = module
        self.manifest: Manifest = module.manifest
        self.artifact_dir: Path = module.artifact_dir

    @property
    def description(self) -> str:
        return self.module.description

    @property
    def emulated(self) -> bool:
        return self.module.emulated

    def __repr__(self) -> str:
        return f"<tvmdeploy.Model {self.manifest.model_name} for {self.manifest.profile} ({self.description})>"

    def run(self, images: np.ndarray) -> np.ndarray:
        """Logits [N, classes] for preprocessed images [N, ...] (any N; the artifact's batch is filled in for you)."""
        return self.module.run_images(np.asarray(images))

    def classify_stream(self, images: Iterable[str | os.PathLike[str] | Image.Image], topk: int = 5) -> Iterator[Classified]:
        """One `Classified` per input, in order, decoding at most one artifact batch ahead; an unreadable
        file is reported in its item (`.error`) and the others are still classified."""
        from tvmdeploy.runtime.classify import classify_files

        if topk < 1:
            raise TvmDeployError(f"topk must be >= 1, got {topk}")
        manifest = self.manifest
        return classify_files(
            self.module.run_images,
            list(images),
            manifest.preprocess_config(),
            batch_size=manifest.batch,
            k=topk,
            labels=manifest.class_labels().names,
        )

    def classify(
        self, images: str | os.PathLike[str] | Image.Image | Sequence[str | os.PathLike[str] | Image.Image], topk: int = 5
    ) -> list[list[Prediction]]:
        """Per image (file paths or PIL images; one or a sequence), its top-k `Prediction(index, label, probability)`.

        Preprocessing is the manifest's (resize, center crop, mean/std, layout). An unreadable image
        raises one TvmDeployError listing every such input; use `classify_stream` to keep the others.
        """
        from tvmdeploy.runtime.classify import describe_failure

        one = isinstance(images, (str, os.PathLike)) or _is_image(images)
        inputs: list = [images] if one else list(images)  # type: ignore[arg-type]  # a sequence when not one
        items = list(self.classify_stream(inputs, topk))
        failed = [describe_failure(item) for item in items if not item.ok]
        if failed:
            raise TvmDeployError(f"{len(failed)} of {len(items)} image(s) could not be read: " + "; ".join(failed))
        return [item.top or [] for item in items]

    def time(
        self,
        x: np.ndarray | None = None,
        *,
        number: int = 1,
        repeat: int = 50,
    ) -> LatencyStats:
        """Latency statistics (ms per call of one artifact batch) from `repeat` samples of `number` calls each,
        timed by TVM on the device. `x`: one batch of the input shape (default: a fixed random one)."""
        from tvmdeploy.runtime.timing import LatencyStats

        if number < 1 or repeat < 1:
            raise TvmDeployError(f"number and repeat must be >= 1, got {number} and {repeat}")
        if x is None:
            spec = self.manifest.input
            x = np.random.default_rng(0).standard_normal(spec.shape).astype(spec.dtype)
        seconds = self.module.time(x, number=number, repeat=repeat)
        return LatencyStats.from_samples([s * 1e3 for s in seconds])

    def close(self) -> None:
        self.module.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
