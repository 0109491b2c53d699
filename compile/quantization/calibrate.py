"""`tvmdeploy quantize`: ONNX Runtime's static quantization (QDQ), calibrated on images through our preprocessing."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tvmdeploy.compile.frontend import inspect_onnx, load_onnx_proto
from tvmdeploy.compile.models.export import META_INT8_AGREEMENT, set_metadata
from tvmdeploy.compile.quantization import QUANTIZED_OPS
from tvmdeploy.compile.quantization.agreement import Agreement, measure_agreement
from tvmdeploy.runtime.classify import folder_images
from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.preprocess import IMAGE_SUFFIXES, PreprocessConfig, load_image

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")
DEFAULT_SAMPLES = 100


@dataclass
class QuantizeResult:
    output: Path
    images_used: int
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # calibration files that were not images
    method: str = "minmax"
    per_channel: bool = True
    # ONNX Runtime's fastest form on x86 with VNNI and on ARM: uint8 activations, int8 weights (U8S8).
    activation_type: str = "uint8"
    weight_type: str = "int8"
    preprocessed: bool = True  # quant_pre_process (shape inference, graph optimisation) ran first
    agreement: Agreement | None = None  # the int8 model against the float one on the calibration images

    def summary(self) -> str:
        granularity = "per-channel" if self.per_channel else "per-tensor"
        return (
            f"QDQ, {self.activation_type} activations x {self.weight_type} weights, {granularity}, "
            f"{self.method} calibration over {self.images_used} image(s)"
        )


def _calibration_images(
    folder: Path, config: PreprocessConfig, samples: int, progress: bool
) -> tuple[list[np.ndarray], list[tuple[Path, str]]]:
    """Up to `samples` preprocessed images from `folder` (sorted by name), and the files that would not load."""
    if not folder.exists():
        raise TvmDeployError(f"calibration folder not found: {folder}", param="calibration")
    if not folder.is_dir():
        raise TvmDeployError(f"{arg('calibration')} must be a folder of images, got a file: {folder}", param="calibration")
    files = folder_images(folder)
    if not files:
        raise TvmDeployError(
            f"calibration folder {folder} holds no images (expected " f"{', '.join(sorted(IMAGE_SUFFIXES))} files)", param="calibration"
        )
    from tqdm import tqdm

    images, skipped = [], []
    with tqdm(total=min(samples, len(files)), desc="calibration images", unit="img", disable=not progress, leave=False) as bar:
        for path in files:
            if len(images) == samples:
                break
            try:
                images.append(load_image(path, config))
            except TvmDeployError as exc:
                skipped.append((path, str(exc)))  # the result lists them (`quantize` prints them)
                log.info("calibration image skipped: %s", exc)
                continue
            bar.update(1)
    if not images:
        raise TvmDeployError(
            f"calibration folder {folder}: none of its {len(files)} image file(s) could be read " f"(first: {skipped[0][1]})",
            param="calibration",
        )
    return images, skipped


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over preprocessed images, one batch-`batch` feed each."""

    def __init__(self, input_name: str, images: list[np.ndarray], batch: int):
        self.feeds = iter([{input_name: np.repeat(image[np.newaxis], batch, axis=0).astype(np.float32)} for image in images])

    def get_next(self):
        return next(self.feeds, None)


def quantize_model(
    model: str | os.PathLike[str],
    calibration: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    samples: int = DEFAULT_SAMPLES,
    method: str = "minmax",
    per_channel: bool = True,
    progress: bool = True,
) -> QuantizeResult:
    """Statically quantize `model` into QDQ form (ONNX Runtime's tool) with images from `calibration`.

    Images go through the deployment preprocessing for the model's input (Resize, CenterCrop, mean/std, its layout
    and size), so the ranges seen in calibration are those seen in deployment. Unreadable files are skipped and
    listed; a folder with no readable image, an already quantized model or an unknown method is a user error.
    """
    model, calibration, output = Path(model), Path(calibration), Path(output)
    if method not in METHODS:
        raise TvmDeployError(
            f"{arg('method')}: unknown calibration method '{method}'; choose from " f"{', '.join(METHODS)}", param="method"
        )
    if samples < 1:
        raise TvmDeployError(f"{arg('samples')} must be >= 1, got {samples}", param="samples")
    proto = load_onnx_proto(model)
    quantized = sorted({node.op_type for node in proto.graph.node} & QUANTIZED_OPS)
    if quantized:
        raise TvmDeployError(f"{model} is already quantized (it has {', '.join(quantized)}); " "`tvmdeploy build` takes it as it is")
    info = inspect_onnx(model, proto)
    config = PreprocessConfig.for_input(info.input_shape)
    images, skipped = _calibration_images(calibration, config, samples, progress)

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".quantize.", dir=output.parent))
    try:
        source, preprocessed = workdir / "preprocessed.onnx", True
        try:
            quant_pre_process(str(model), str(source))
        except Exception as exc:  # noqa: BLE001 - an optimisation: quantize the model as it is
            log.warning(
                "warning: ONNX Runtime's quantization pre-processing failed (%s); quantizing %s as it is",
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                model,
            )
            source, preprocessed = model, False
        staged = workdir / output.name
        quantize_static(
            str(source),
            str(staged),
            _Reader(info.input_name, images, info.input_shape[0]),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[method],
        )
        agreement = measure_agreement(model, staged, images)
        # Recorded in the model, for `build` and `bench`: they have neither the float model nor the images.
        set_metadata(staged, {META_INT8_AGREEMENT: agreement.to_text()})
        shutil.move(str(staged), output)  # only a finished model replaces what was there
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = QuantizeResult(output, len(images), skipped, method, per_channel, preprocessed=preprocessed, agreement=agreement)
    log.info("quantized %s -> %s: %s; %s", model, output, result.summary(), agreement.summary())
    return result
