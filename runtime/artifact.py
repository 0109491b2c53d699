"""The artifact folder's manifest: schema, reading, writing, and hash checks before anything is loaded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.labels import Labels, load_labels

if TYPE_CHECKING:
    from tvmdeploy.runtime.preprocess import PreprocessConfig

MANIFEST_FILE = "manifest.json"
LIBRARY_FILE = "model.so"
ONNX_FILE = "model.onnx"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tuned_tasks(tuning: dict[str, Any] | None) -> str:
    """'24/24 tasks (10 merged into blocks)': how many of the tasks a record could apply to took one from the
    tuning log (a manifest's `tuning`, or any mapping with `tasks_from_database`, `tasks_total` and
    optionally `tasks_merged`: kernels the build merged into blocks, which no record applies to)."""
    tuning = tuning or {}
    merged = tuning.get("tasks_merged")
    return f"{tuning.get('tasks_from_database', '?')}/{tuning.get('tasks_total', '?')} tasks" + (
        f" ({merged} merged into blocks)" if merged else ""
    )


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str = "float32"


@dataclass
class Manifest:
    """What `tvmdeploy build` wrote next to the library, enough to load, check and explain it."""

    model_name: str
    model_sha256: str
    weights: str  # "random:seed=N", "sha256:<checkpoint>" or "unknown" for foreign ONNX files
    labels: str  # label set id: "imagenet1k", or "index" (class 0..N-1, for any other class count)
    profile: str
    device: str
    arch: str
    cpu_flags: list[str]
    threads: int
    target: dict[str, Any]
    tvm_version: str
    input: TensorSpec
    output: TensorSpec
    preprocess: dict[str, Any]  # PreprocessConfig.to_dict(); {} when the input is not an RGB image batch
    library_sha256: str
    tuning: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    created: str = ""
    format: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def weights_are_random(self) -> bool:
        return self.weights.startswith("random")

    @property
    def batch(self) -> int:
        return int(self.input.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.output.shape[-1])

    def preprocess_config(self) -> PreprocessConfig:
        """How images become this model's input; a TvmDeployError when they cannot (e.g. a non-image input)."""
        from tvmdeploy.runtime.preprocess import PreprocessConfig  # numpy and Pillow: only where images are read

        if not self.preprocess:
            raise TvmDeployError(
                f"{self.model_name} takes input {self.input.shape}, not an RGB image batch ([N, 3, S, S] or "
                "[N, S, S, 3]): images cannot be fed to it (bench and compare still work)"
            )
        return PreprocessConfig.from_dict(self.preprocess)

    def class_labels(self) -> Labels:
        """The label table of this model's outputs (checked against its class count)."""
        return load_labels(self.labels, self.num_classes)

    @property
    def is_tuned(self) -> bool:
        """Built with a tuning log (some kernels from its records)."""
        return bool((self.tuning or {}).get("database"))

    def schedule_text(self) -> str:
        """'tuned 34/34 tasks' (+ trials), 'default schedules' or 'raw lowering': where the kernels came from."""
        tuning = self.tuning or {}
        if self.is_tuned:
            text = f"tuned {tuned_tasks(tuning)}"
            return f"{text}, {tuning['trials']} trials" if tuning.get("trials") else text
        sources = tuning.get("schedule_sources") or {}
        if any(counts.get("default") for counts in sources.values()):
            return "default schedules"
        return "raw lowering" if sources else "untuned"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = MANIFEST_FILE) -> "Manifest":
        if not isinstance(data, dict):
            raise TvmDeployError(f"{where}: not a manifest (expected a JSON object)")
        if data.get("format") != FORMAT_VERSION:
            raise TvmDeployError(
                f"{where}: manifest format {data.get('format')!r} is not supported (expected {FORMAT_VERSION}); rebuild the artifact"
            )
        try:
            fields = dict(data)
            fields["input"] = TensorSpec(**fields["input"])
            fields["output"] = TensorSpec(**fields["output"])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise TvmDeployError(f"{where}: malformed manifest ({exc})") from None


def write_manifest(artifact_dir: Path, manifest: Manifest) -> Path:
    path = Path(artifact_dir) / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_manifest(artifact_dir: Path) -> Manifest:
    artifact_dir = Path(artifact_dir)
    if not artifact_dir.is_dir():
        raise TvmDeployError(f"artifact folder not found: {artifact_dir}")
    path = artifact_dir / MANIFEST_FILE
    if not path.is_file():
        raise TvmDeployError(f"{artifact_dir} is not an artifact: no {MANIFEST_FILE} (build one with `tvmdeploy build`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TvmDeployError(f"{path}: corrupt manifest ({exc})") from None
    return Manifest.from_dict(data, where=str(path))


def _verify(path: Path, expected: str, what: str) -> Path:
    if not path.is_file():
        raise TvmDeployError(f"{what} missing from the artifact: {path}")
    actual = sha256_file(path)
    if actual != expected:
        raise TvmDeployError(
            f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}…; refusing to load a modified {what}"
        )
    return path


def verify_library(artifact_dir: Path, manifest: Manifest | None = None) -> Path:
    """The library path, after checking its sha256 against the manifest (never load an unverified .so)."""
    manifest = manifest or read_manifest(artifact_dir)
    return _verify(Path(artifact_dir) / LIBRARY_FILE, manifest.library_sha256, "library")


def verify_onnx(artifact_dir: Path, manifest: Manifest | None = None) -> Path:
    """The artifact's copy of the source ONNX model, after checking its sha256."""
    manifest = manifest or read_manifest(artifact_dir)
    return _verify(Path(artifact_dir) / ONNX_FILE, manifest.model_sha256, "ONNX model")
