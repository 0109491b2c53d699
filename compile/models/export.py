"""Export a zoo model to ONNX with provenance metadata (the only module that runs torch.onnx)."""

from __future__ import annotations

import importlib.util
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tvmdeploy.compile.models import zoo
from tvmdeploy.runtime.errors import TvmDeployError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
# The legacy (TorchScript) exporter writes opsets 7-20; 9 is the oldest this project checks against.
MIN_OPSET, MAX_OPSET = 9, 20
LABELS_ID = "imagenet1k"
# ONNX metadata_props keys the build step reads back.
META_MODEL = "tvmdeploy.model"
META_WEIGHTS = "tvmdeploy.weights"
META_LABELS = "tvmdeploy.labels"
META_INT8_AGREEMENT = "tvmdeploy.int8_agreement"  # `quantize`'s int8-vs-fp32 agreement, as JSON


@dataclass(frozen=True)
class ExportResult:
    path: Path
    model: str
    weights: str  # "random:seed=N" or "sha256:<hex>"
    input_shape: tuple[int, int, int, int]
    output_shape: tuple[int, int]


def random_weights_tag(seed: int) -> str:
    return f"random:seed={seed}"


def weights_are_random(tag: str) -> bool:
    return tag.startswith("random:")


def build_torch_model(name: str, weights: Path | None = None, seed: int = 0) -> tuple[Any, str]:
    """The zoo model as an eval-mode torch module and its weights tag (seeded random unless `weights`)."""
    entry = zoo.get(name)
    if importlib.util.find_spec("torch") is None:
        raise TvmDeployError("export needs torch: pip install 'tvmdeploy[export]'")
    from tvmdeploy.compile.models import checkpoints, torch_models

    module = torch_models.SpecMobileNetV2(entry.spec())
    if weights is None:
        torch_models.randomize(module, seed)
        tag = random_weights_tag(seed)
    else:
        tag = "sha256:" + checkpoints.load_into(module, Path(weights))
    return module.eval(), tag


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise TvmDeployError(f"opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")


def export_module(module: Any, output: Path, opset: int = DEFAULT_OPSET) -> None:
    """Trace `module` to ONNX at `output`: input `input` [1,3,S,S] float32, output `logits` [1,1000]."""
    import torch

    check_opset(opset)
    size = module.spec.input_size
    example = torch.zeros(1, 3, size, size, dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter warns about its own deprecation; the graph it writes is what we want.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    Path(output).write_bytes(buffer.getvalue())


def set_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p.value for p in model.metadata_props}
    existing.update(props)
    onnx.helper.set_model_props(model, existing)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def read_metadata(path: Path) -> dict[str, str]:
    """The `tvmdeploy.*` metadata of an exported model (empty for a foreign ONNX file)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props if p.key.startswith("tvmdeploy.")}


def export_onnx(
    name: str,
    output: Path,
    *,
    weights: Path | None = None,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Export zoo model `name` to `output` and record model, weights and labels in its metadata_props."""
    entry = zoo.get(name)
    output = Path(output)
    if output.parent and not output.parent.exists():
        raise TvmDeployError(f"output folder {output.parent} does not exist")
    check_opset(opset)
    module, tag = build_torch_model(name, weights, seed)
    export_module(module, output, opset)
    set_metadata(output, {META_MODEL: entry.name, META_WEIGHTS: tag, META_LABELS: LABELS_ID})
    size = module.spec.input_size
    return ExportResult(output, entry.name, tag, (1, 3, size, size), (1, module.spec.classifier.out_features))
