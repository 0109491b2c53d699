"""Parity of a compiled module with ONNX Runtime on the same ONNX file: max |Δ logits| and top-5 agreement."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tvmdeploy.compile.measure.reference import OrtModel, reference_input
from tvmdeploy.runtime.postprocess import topk_indices

DEFAULT_ATOL = 1e-4
# Unit roundoff of float32 (2^-24). A float32 sum of K products has a relative error of at most about K * u
# (Higham's gamma_K, "Accuracy and Stability of Numerical Algorithms", section 3.1), whatever order the kernels
# sum in; ONNX Runtime and TVM sum in different orders (and TVM contracts multiply-adds into FMAs).
FLOAT32_ROUNDOFF = 2.0**-24
# An INT8 (QDQ) model's logits come out of a DequantizeLinear: both runtimes can only differ by whole steps of its
# scale. Convolutions and the classifier agree bit for bit (the same int32 accumulator, the same float32
# multiplier and round-half-even: compile/quantization/integer_ops.py). A residual Add or an average pool
# requantizes by a formula of its own on each side (ONNX Runtime's QLinearAdd uses fixed-point multipliers, ours
# float32), so a value near a rounding tie may land one step apart there: one step per such layer, which the
# layers after it carry to the logits. The bound allows one output step per such layer, plus one, and never
# fewer than INT8_OUTPUT_STEPS (MobileNetV2 x1.0: 10 residual adds + 1 pool -> 12 steps; measured 0 to 3).
# A wrong kernel moves the logits by many steps, and the top-5 with them.
INT8_OUTPUT_STEPS = 2
_OWN_ROUNDING_OPS = {"Add", "Sub", "Mul", "GlobalAveragePool", "AveragePool"}
_SHAPE_ONLY_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity"}


@dataclass
class ParityReport:
    max_abs_diff: float
    top5_identical: bool  # the same five classes in the same order, for every image of the batch
    atol: float
    reference: str  # what the logits were compared with, e.g. "onnxruntime 1.32.0"
    input_seed: int = 0
    # The bound scales with the logits: atol + rtol * max |reference logit| (see relative_tolerance).
    rtol: float = 0.0
    max_abs_logit: float = 0.0
    step: float = 0.0  # the logits' quantization step (INT8 models; 0: float logits)
    steps: int = INT8_OUTPUT_STEPS  # how many such steps the bound allows (rounding_steps)

    @property
    def tolerance(self) -> float:
        return self.atol + self.rtol * self.max_abs_logit + self.steps * self.step

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top5_identical

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        terms = [f"{self.atol:g}"]
        if self.rtol:
            terms.append(f"{self.rtol:.2g} x max |logit| {self.max_abs_logit:.3g}")
        if self.step:
            terms.append(f"{self.steps} x output step {self.step:.3g}")
        bound = f"{self.tolerance:.3g} = {' + '.join(terms)}" if len(terms) > 1 else terms[0]
        return (
            f"parity vs {self.reference}: max |Δ logits| = {self.max_abs_diff:.3g} (tolerance {bound}), "
            f"top-5 {'identical' if self.top5_identical else 'DIFFERENT'} -> {verdict}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "tolerance": self.tolerance, "status": "passed" if self.passed else "failed"}


def _graph(onnx_model):
    """An ONNX model: loaded from its path (weights' external data not needed), or the one already loaded."""
    import onnx

    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model
    return onnx.load(str(onnx_model), load_external_data=False)


def deepest_reduction(onnx_model) -> int:
    """The most products any one output of a Conv/Gemm/MatMul of the model sums (C_in/groups x kh x kw, or K).

    Read from the weight initializers' shapes; 1 when the model has none (its logits then come from no long sum).
    `onnx_model`: a path or a loaded model, as for every function here.
    """
    model = _graph(onnx_model)
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:  # a quantized (QDQ) model's weights reach the Conv through DequantizeLinear
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in shapes:
            shapes[node.output[0]] = shapes[node.input[0]]
    deepest = 1
    for node in model.graph.node:
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        if not weight:
            continue
        if node.op_type == "Conv" and len(weight) >= 3:
            terms = int(np.prod(weight[1:]))
        elif node.op_type == "Gemm" and len(weight) == 2:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            terms = weight[1] if trans_b else weight[0]
        elif node.op_type == "MatMul" and len(weight) >= 2:
            terms = weight[-2]
        else:
            continue
        deepest = max(deepest, int(terms))
    return deepest


def relative_tolerance(onnx_model) -> float:
    """rtol for the model: the float32 error bound of its deepest reduction, K * u (FLOAT32_ROUNDOFF).

    Applied to the largest reference logit: MobileNetV2's classifier sums 1280 products, rtol 7.6e-05, which
    with logits of 10-20 adds ~1e-3 to atol; a net with logits of 1500 (random weights) gets ~0.1. A wrong
    kernel is off by the order of the logits themselves (a relative error near 1): still caught by far,
    and by the top-5 check.
    """
    return deepest_reduction(onnx_model) * FLOAT32_ROUNDOFF


def output_step(onnx_model) -> float:
    """The quantization step of the model's output (the scale of the DequantizeLinear that writes it, through
    reshapes), or 0.0 when the output is computed in float."""
    from onnx import numpy_helper

    model = _graph(onnx_model)
    producer = {out: node for node in model.graph.node for out in node.output}
    node = producer.get(model.graph.output[0].name)
    while node is not None and node.op_type in _SHAPE_ONLY_OPS:
        node = producer.get(node.input[0])
    if node is not None and node.op_type == "DequantizeLinear" and len(node.input) > 1:
        scale = next((numpy_helper.to_array(t) for t in model.graph.initializer if t.name == node.input[1]), None)
        if scale is not None and scale.size == 1:
            return float(scale.reshape(()))
    return 0.0


def rounding_steps(onnx_model) -> int:
    """Output steps an INT8 model's logits may differ by: one per layer that requantizes by its own formula
    (residual Add, pools, ... between dequantized tensors), plus one; at least INT8_OUTPUT_STEPS."""
    model = _graph(onnx_model)
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    own = sum(n.op_type in _OWN_ROUNDING_OPS and any(i in dequantized for i in n.input) for n in model.graph.node)
    return max(INT8_OUTPUT_STEPS, own + 1)


@dataclass(frozen=True)
class ModelBounds:
    """What a model's parity bound depends on besides atol: its float32 rtol and its output's quantization step."""

    rtol: float = 0.0
    step: float = 0.0
    steps: int = INT8_OUTPUT_STEPS


def model_bounds(onnx_path: Path) -> ModelBounds:
    model = _graph(onnx_path)  # read once for all three
    step = output_step(model)
    return ModelBounds(relative_tolerance(model), step, rounding_steps(model) if step else INT8_OUTPUT_STEPS)


def top5(logits: np.ndarray) -> np.ndarray:
    return topk_indices(logits, 5)


def compare_logits(
    actual: np.ndarray,
    expected: np.ndarray,
    atol: float,
    reference: str,
    seed: int = 0,
    rtol: float = 0.0,
    step: float = 0.0,
    steps: int = INT8_OUTPUT_STEPS,
) -> ParityReport:
    """Max |Δ logits| and top-5 agreement; the bound is atol + rtol x max |expected| + steps x step."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    if actual.shape != expected.shape:
        return ParityReport(float("inf"), False, atol, reference, seed, rtol, scale, step, steps)
    return ParityReport(
        max_abs_diff=float(np.max(np.abs(actual - expected))) if actual.size else 0.0,
        top5_identical=bool(np.array_equal(top5(actual), top5(expected))),
        atol=atol,
        reference=reference,
        input_seed=seed,
        rtol=rtol,
        max_abs_logit=scale,
        step=step,
        steps=steps,
    )


def check_parity(
    run: Callable[[np.ndarray], np.ndarray],
    onnx_path: Path,
    input_shape: list[int],
    *,
    atol: float = DEFAULT_ATOL,
    seed: int = 0,
    threads: int = 0,
) -> ParityReport:
    """Run both on the same fixed random input and compare the logits (bound: atol + the model's relative_tolerance,
    + rounding_steps of its output_step)."""
    x = reference_input(input_shape, seed)
    reference = OrtModel(onnx_path, threads=threads)
    bounds = model_bounds(onnx_path)
    return compare_logits(
        run(x), reference.run(x), atol, f"onnxruntime {reference.version}", seed, rtol=bounds.rtol, step=bounds.step, steps=bounds.steps
    )
