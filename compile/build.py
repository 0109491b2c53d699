"""Build an artifact: ONNX -> Relax -> compiled library for a profile, manifest, and parity with ONNX Runtime."""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tvmdeploy.compile.backends import cross
from tvmdeploy.compile.frontend import import_onnx, onnx_with_batch
from tvmdeploy.compile.measure.verify import DEFAULT_ATOL, ParityReport, check_parity
from tvmdeploy.compile.models.export import META_INT8_AGREEMENT
from tvmdeploy.compile.pipeline import compile_relax
from tvmdeploy.compile.quantization.agreement import INT8_AGREEMENT, Agreement, agreement_summary
from tvmdeploy.compile.tuning.log_choice import LogChoice
from tvmdeploy.runtime import tvm_api
from tvmdeploy.runtime.artifact import (
    LIBRARY_FILE,
    ONNX_FILE,
    Manifest,
    TensorSpec,
    sha256_file,
    write_manifest,
)
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.labels import load_labels
from tvmdeploy.runtime.loader import LocalModule
from tvmdeploy.runtime.preprocess import PreprocessConfig
from tvmdeploy.targets import TargetProfile

logger = logging.getLogger(__name__)


@dataclass
class BuildResult:
    artifact_dir: Path
    manifest: Manifest
    parity: ParityReport | None  # None when the library cannot run here (other arch, no GPU)
    parity_skipped_reason: str = ""
    tuning_note: str = ""
    schedules: str = ""  # per kernel class: kernels scheduled from the log, the default rules, raw lowering
    integer: str = ""  # a quantized model: integer kernels per class and the ops left in float emulation
    agreement: str = ""  # a quantized model: how closely it follows the float one (as `quantize` measured it)


def database_sha256(folder: Path) -> str:
    """One hash over a tuning database folder (its JSON files, by relative name and content)."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*.json") if p.is_file())
    if not files:
        raise TvmDeployError(f"{folder} holds no MetaSchedule database (*.json files)")
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + sha256_file(path).encode())
    return digest.hexdigest()


def _can_run_here(profile: TargetProfile) -> tuple[bool, str]:
    if profile.device == "cuda":
        try:
            present = tvm_api.device_exists(tvm_api.device("cuda"))
        except TvmDeployError as exc:  # no driver: TVM's CUDA runtime library cannot even load
            return False, f"no usable CUDA device on this machine ({exc})"
        return (True, "") if present else (False, "no CUDA device on this machine")
    if not profile.runs_on_this_machine:
        return False, f"the library is for {profile.arch} {profile.name}; verify it on the device (run/bench over RPC)"
    return True, ""


def _replace_dir(staging: Path, out_dir: Path) -> None:
    """Swap the finished build into place; a failed build never destroys the previous artifact."""
    if out_dir.exists():
        if not (out_dir / "manifest.json").is_file() and any(out_dir.iterdir()):
            raise TvmDeployError(f"{out_dir} exists and is not an artifact folder; refusing to overwrite it")
        backup = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(backup, ignore_errors=True)
        out_dir.rename(backup)
        staging.rename(out_dir)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(out_dir)


def build_artifact(
    onnx_path: Path,
    profile: TargetProfile,
    out_dir: Path,
    *,
    tuning_log: LogChoice | str | os.PathLike[str] | None = "auto",
    input_shape: list[int] | None = None,
    batch: int | None = None,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
) -> BuildResult:
    """Compile `onnx_path` for `profile` into `out_dir` (model.so, model.onnx, manifest.json).

    `tuning_log`: a MetaSchedule database folder, or a word (compile/tuning/log_choice.LogWord): "auto" (the
    default: the shipped log matching the model, if it was tuned on this CPU kind), "shipped" (that log whatever
    CPU it was tuned on), "defaults" or None (no log), or "none" (no log and no default schedules: TVM's plain
    lowering, for comparison). Kernels no log record covers get the default schedules unless "none".
    """
    onnx_path = Path(onnx_path)
    out_dir = Path(out_dir)
    choice = LogChoice.of(tuning_log)
    if choice.folder is not None and not choice.folder.is_dir():
        raise TvmDeployError(f"tuning log folder not found: {choice.folder}")
    mod, info = import_onnx(onnx_path, input_shape=input_shape, batch=batch)
    compiled = compile_relax(mod, profile, database_dir=choice)
    tuning_log = compiled.database_dir
    tuning_note = compiled.log_note
    if choice.looks_up and tuning_log is None and not tuning_note:
        tuning_note = f"no shipped tuning log matches this model's kernels for {profile.name}"

    agreement = Agreement.parse(info.metadata.get(META_INT8_AGREEMENT)) if compiled.integer_kernels else None

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        library = staging / LIBRARY_FILE
        cross.export_library(compiled.executable, library, profile)
        # The artifact keeps the ONNX it was built from, at the built batch size: ONNX Runtime
        # (parity here, baselines in bench/compare) rejects a batch-1 export fed 8 images.
        reference_onnx = staging / ONNX_FILE
        if info.fixed_batch not in (None, info.input_shape[0]):
            onnx_with_batch(onnx_path, info.input_shape[0], reference_onnx)
        else:
            _copy_onnx(onnx_path, reference_onnx)
        num_classes = _output_classes(info)
        load_labels(info.labels, num_classes)  # the label set must fit the output (run shows it)
        manifest = Manifest(
            model_name=info.model_name,
            model_sha256=sha256_file(reference_onnx),
            weights=info.weights,
            labels=info.labels,
            profile=profile.name,
            device=profile.device,
            arch=profile.arch,
            cpu_flags=list(profile.cpu_flags),
            threads=profile.threads,
            target=profile.target,
            tvm_version=tvm_api.tvm_version(),
            input=TensorSpec(info.input_name, info.input_shape, info.input_dtype),
            output=TensorSpec(info.output_name, [info.input_shape[0], num_classes], "float32"),
            preprocess=_preprocess_for(info),
            library_sha256=sha256_file(library),
            tuning=(
                {
                    "database": str(tuning_log),
                    "database_sha256": database_sha256(Path(tuning_log)),
                    "tasks_total": compiled.tasks_total,
                    "tasks_from_database": compiled.tasks_from_database,
                    "tasks_merged": compiled.tasks_merged,
                }
                if tuning_log
                else {}
            )
            | {"schedule_sources": compiled.schedule_sources, "raw_kernels": compiled.raw_kernels}
            | (
                {"integer_kernels": compiled.integer_kernels, "float_emulated": compiled.float_emulated} if compiled.integer_kernels else {}
            ),
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            extra={"source_onnx": str(onnx_path), "source_onnx_sha256": info.sha256}
            | ({INT8_AGREEMENT: asdict(agreement)} if agreement else {}),
        )
        write_manifest(staging, manifest)

        parity, reason = None, ""
        runnable, reason = _can_run_here(profile)
        if verify and runnable:
            module = LocalModule(staging)
            parity = check_parity(module.run, reference_onnx, info.input_shape, atol=atol, threads=profile.threads)
            manifest.parity = parity.to_dict()
            write_manifest(staging, manifest)
            if not parity.passed:
                raise TvmDeployError(f"build failed verification: {parity.summary()}")
        elif not verify:
            reason = "verification disabled (--no-verify)"
        if manifest.parity is None:
            manifest.parity = {"status": "not-run", "reason": reason}
            write_manifest(staging, manifest)
        _replace_dir(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuildResult(
        out_dir,
        manifest,
        parity,
        reason,
        tuning_note,
        compiled.sources_summary(),
        compiled.integer_summary(),
        agreement_summary(manifest.extra) if compiled.integer_kernels else "",
    )


def _copy_onnx(source: Path, destination: Path) -> None:
    """Copy an ONNX file; one whose weights live in side files (the dynamo exporter's M.onnx.data) is saved
    as one self-contained file, so the artifact never depends on a file beside the user's model."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        onnx.save(onnx.load(str(source)), str(destination))
    else:
        shutil.copyfile(source, destination)


def _preprocess_for(info) -> dict:
    """The manifest's preprocessing, from the model's input (layout and size); {} for a non-image input."""
    try:
        return PreprocessConfig.for_input(info.input_shape).to_dict()
    except TvmDeployError as exc:
        logger.warning("%s: %s; `run` and `eval` will refuse the artifact", info.path, exc)
        return {}


def _output_classes(info) -> int:
    """Number of classes from the ONNX output's static shape (1000 for ImageNet models)."""
    dims = info.output_dims
    if len(dims) != 2 or not dims[1] or dims[1] <= 0:
        raise TvmDeployError(f"{info.path}: expected a [N, classes] logits output, got shape {dims}")
    return int(dims[1])
