"""How closely an INT8 model follows its float original: top-1 agreement and SQNR of the logits on given images."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Agreement:
    images: int
    top1: float  # share of images where both models pick the same class
    sqnr_db: float  # 10 log10(sum fp32^2 / sum (int8 - fp32)^2) over all logits; inf when they are equal

    def summary(self) -> str:
        return f"int8 vs fp32 on {self.images} image(s): top-1 agreement {self.top1:.0%}, " f"SQNR of the logits {self.sqnr_db:.1f} dB"

    def to_text(self) -> str:
        """JSON for the quantized model's metadata (`quantize` writes it, `build` and `bench` report it)."""
        return json.dumps(asdict(self))

    @classmethod
    def parse(cls, recorded: str | dict | None) -> Agreement | None:
        """The agreement from `to_text`'s JSON (or its dict), or None where there is none or it does not parse."""
        try:
            fields = json.loads(recorded) if isinstance(recorded, str) else recorded
            return cls(int(fields["images"]), float(fields["top1"]), float(fields["sqnr_db"])) if fields else None
        except (ValueError, TypeError, KeyError):
            return None


# The artifact manifest's `extra` key for the agreement recorded in a quantized model.
INT8_AGREEMENT = "int8_agreement"


def agreement_summary(extra: dict | None) -> str:
    """The int8-vs-fp32 agreement of a quantized model's artifact (its manifest's `extra`), for `build` and `bench`."""
    agreement = Agreement.parse((extra or {}).get(INT8_AGREEMENT))
    if agreement is None:
        return "int8 vs fp32: not recorded (the model was not quantized by `tvmdeploy quantize`)"
    return f"{agreement.summary()} (measured by `tvmdeploy quantize`, ONNX Runtime on both models)"


def logit_agreement(reference: np.ndarray, quantized: np.ndarray) -> Agreement:
    """Agreement of two [images, classes] logit arrays (the float model's first)."""
    reference, quantized = np.asarray(reference, np.float64), np.asarray(quantized, np.float64)
    noise = float(np.sum((quantized - reference) ** 2))
    signal = float(np.sum(reference**2))
    sqnr = math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal else -math.inf
    top1 = float(np.mean(reference.argmax(axis=1) == quantized.argmax(axis=1))) if len(reference) else 0.0
    return Agreement(len(reference), top1, sqnr)


def measure_agreement(float_onnx: Path, int8_onnx: Path, images: list[np.ndarray], threads: int = 0) -> Agreement:
    """Both ONNX files through ONNX Runtime on `images` (preprocessed, one at a time). The int8 build computes
    ONNX Runtime's int8 logits to the quantization step (compile/measure/verify.py), so this is its agreement too."""
    from tvmdeploy.compile.measure.reference import OrtModel

    reference, quantized = OrtModel(float_onnx, threads=threads), OrtModel(int8_onnx, threads=threads)
    batch = [image[np.newaxis].astype(np.float32) for image in images]
    return logit_agreement(np.concatenate([reference.run(x) for x in batch]), np.concatenate([quantized.run(x) for x in batch]))
