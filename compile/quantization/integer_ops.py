"""Relax pass: dequantize -> Conv/Gemm/Add/GlobalAveragePool -> quantize patterns into integer operators."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from tvmdeploy.compile.bindings import bound_value
from tvmdeploy.runtime.errors import TvmDeployError

log = logging.getLogger(__name__)

# The QDQ form keeps every tensor between kernels in 8 bits, but TVM's importer lowers quantize/dequantize to
# float arithmetic around float convolutions (TVM_NOTES 16). Each pattern below becomes: the integer operator
# on the 8-bit tensors with int32 accumulation, then requantization (float(acc) * scale, round half to even,
# + zero point, saturate) as elementwise ops that FuseOps puts into the kernel's write-back. That is the
# arithmetic ONNX Runtime's QLinearConv/QGemm run for the same file (MLAS requantizes in float the same way),
# so the two agree up to a rare one-step rounding difference per layer (compile/measure/verify.py).
_ACTIVATIONS = ("uint8", "int8")
_MOVES = {"relax.reshape", "relax.permute_dims", "relax.squeeze", "relax.expand_dims"}
_DTYPE_RANGE = {"uint8": (0, 255), "int8": (-128, 127)}
# The same real values in the other signedness: q - 128 with zero point - 128 (and back).
_SIGN_SHIFT = {("uint8", "int8"): -128, ("int8", "uint8"): 128}
# 1.5 x 2^23: a float32 of this size has no fraction bits left, so adding it rounds half to even (_round_saturate).
_ROUNDING_SHIFT = 3 << 22
# float32 represents every integer below 2^24 exactly.
_FLOAT_EXACT = 1 << 24
# Output channels of an integer 1x1 conv that are not a multiple of _OUTPUT_GROUP (the fewest lanes a dot-product
# tile takes) are padded to a multiple of _PADDED_OUTPUTS: whole 8-lane vectors (ymm on x86, two q registers on ARM).
_OUTPUT_GROUP = 4
_PADDED_OUTPUTS = 8


@dataclass(frozen=True)
class Quant:
    """A quantize/dequantize's parameters: per-tensor (scale.size == 1) or per-channel along `axis`."""

    scale: np.ndarray  # float32
    zero: np.ndarray  # int64
    dtype: str
    axis: int

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1 and self.zero.size == 1

    @property
    def zero_point(self) -> int:
        """The zero point of a per-tensor quantization."""
        return int(self.zero[0])

    def same(self, other: Quant) -> bool:
        return (
            self.per_tensor
            and other.per_tensor
            and self.dtype == other.dtype
            and self.scale[0] == other.scale[0]
            and self.zero_point == other.zero_point
        )


def _op(expr) -> str:
    return expr.op.name if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) else ""


def _dtype(expr) -> str:
    return str(expr.ty.dtype)


def _shape(expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def _constant(mutator, expr) -> np.ndarray | None:
    value = bound_value(mutator, expr)
    return value.value.numpy() if isinstance(value, tvm.ir.expr.Constant) else None


def _qdq_params(mutator, call: relax.Call, dtype: str) -> Quant | None:
    """The parameters of a quantize/dequantize whose 8-bit side has type `dtype`: when the pass changed that
    tensor's signedness (see _IntegerOps), the zero point moves with it by 128."""
    scale, zero = _constant(mutator, call.args[1]), _constant(mutator, call.args[2])
    if scale is None or zero is None:
        return None
    zeros = zero.astype(np.int64).reshape(-1) + _SIGN_SHIFT.get((str(zero.dtype), dtype), 0)
    return Quant(scale.astype(np.float32).reshape(-1), zeros, dtype, int(call.attrs.axis))


def _dequantized(mutator, expr) -> tuple[relax.Expr, Quant] | None:
    """(the 8/32-bit tensor, its parameters) if `expr` is a dequantize."""
    value = bound_value(mutator, expr)
    if _op(value) != "relax.dequantize":
        return None
    quant = _qdq_params(mutator, value, _dtype(value.args[0]))
    return None if quant is None else (value.args[0], quant)


def _activation(mutator, expr) -> tuple[relax.Expr, Quant] | None:
    """A dequantized 8-bit activation with one scale and zero point (what the integer kernels take)."""
    found = _dequantized(mutator, expr)
    if found is None or found[1].dtype not in _ACTIVATIONS or not found[1].per_tensor:
        return None
    return found


def _weight(mutator, expr) -> tuple[np.ndarray, Quant] | None:
    """A constant int8 weight, symmetric (zero point 0), per tensor or per output channel (axis 0)."""
    found = _dequantized(mutator, expr)
    if found is None:
        return None
    tensor, quant = found
    values = _constant(mutator, tensor)
    if values is None or values.dtype != np.int8:
        return None
    if np.any(quant.zero != 0) or not (quant.per_tensor or quant.axis == 0):
        return None
    return values, quant


def check_quantization_forms(mod: tvm.IRModule) -> None:
    """Refuse, in one line, quantized tensors the integer kernels cannot take (4/16-bit, blocked scales), which
    float emulation would otherwise hide. Called before the passes: an error inside one reaches us re-typed."""
    for func in mod.functions.values():
        if not isinstance(func, relax.Function):
            continue
        for block in func.body.blocks:
            for binding in block.bindings:
                value = binding.value
                if _op(value) not in ("relax.quantize", "relax.dequantize"):
                    continue
                ints = _dtype(value) if _op(value) == "relax.quantize" else _dtype(value.args[0])
                if ints not in ("uint8", "int8", "int32"):
                    raise TvmDeployError(
                        f"unsupported quantization: {ints} tensors (only 8-bit weights and activations, "
                        "with int32 biases, build as integer kernels)"
                    )
                scale = value.args[1]
                if isinstance(scale, tvm.ir.expr.Constant) and len(scale.value.shape) > 1:
                    raise TvmDeployError(
                        "unsupported quantization: blocked scales (only per-tensor and per-channel build as integer " "kernels)"
                    )


@relax.expr_functor.mutator
class _IntegerOps(relax.PyExprMutator):
    """quantize(f(dequantize(...))) -> integer f + requantization, for the f the kernels take.

    `activation` (uint8/int8, None: as the model has them) is the type every per-tensor 8-bit activation gets:
    the same real values, zero point moved by 128. The target's dot product decides it (vpdpbusd takes unsigned
    data, ARM's sdot signed), so a U8S8 file runs S8S8 on ARM, bit for bit the same arithmetic.
    """

    def __init__(self, mod=None, activation: str | None = None, depth: int = 1):
        super().__init__(mod)
        self.activation = activation
        self.depth = depth
        self.rewritten: dict[str, int] = {}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if _op(call) == "relax.dequantize":
            return self._resigned_dequantize(call)
        if _op(call) != "relax.quantize" or _dtype(call) not in _ACTIVATIONS:
            return call
        out = _qdq_params(self, call, _dtype(call))
        if out is None or not out.per_tensor:
            return call
        if self.activation and out.dtype != self.activation:
            shift = _SIGN_SHIFT[out.dtype, self.activation]
            out = Quant(out.scale, out.zero + shift, self.activation, out.axis)
        result = self._integer(call, out)
        if result is not None:
            return result
        if out.dtype != _dtype(call):  # not an integer op: a plain quantize, in the new signedness
            return relax.op.quantize(
                call.args[0], call.args[1], relax.const(out.zero.astype(out.dtype).reshape(())), axis=out.axis, out_dtype=out.dtype
            )
        return call

    def _resigned_dequantize(self, call: relax.Call) -> relax.Expr:
        """A dequantize of a tensor whose signedness the pass changed: its zero point moved by 128."""
        zero = _constant(self, call.args[2])
        tensor = _dtype(call.args[0])
        if zero is None or (str(zero.dtype), tensor) not in _SIGN_SHIFT:
            return call
        shifted = (zero.astype(np.int64) + _SIGN_SHIFT[str(zero.dtype), tensor]).astype(tensor)
        return relax.op.dequantize(
            call.args[0], call.args[1], relax.const(shifted), axis=int(call.attrs.axis), out_dtype=str(call.attrs.out_dtype)
        )

    def _integer(self, call: relax.Call, out: Quant) -> relax.Expr | None:
        source = bound_value(self, call.args[0])
        low, high = _DTYPE_RANGE[out.dtype]
        low, high, source = self._activation_bounds(source, out, low, high)
        for rewrite in (self._conv, self._dense, self._add, self._mean, self._move):
            result = rewrite(source, out, low, high)
            if result is not None:
                kind = rewrite.__name__.lstrip("_")
                self.rewritten[kind] = self.rewritten.get(kind, 0) + 1
                return result
        return None

    def _activation_bounds(self, source, out: Quant, low: int, high: int):
        """Fold ReLU / Clip (/ maximum, minimum by constants) before the quantize into its saturation bounds:
        rounding is monotone, so quantize(clip(v, a, b)) = clamp(quantize(v), quantize(a), quantize(b))."""
        while True:
            name = _op(source)
            if name == "relax.nn.relu":
                low = max(low, out.zero_point)
            elif name in ("relax.maximum", "relax.minimum"):
                bound = _constant(self, source.args[1])
                if bound is None or bound.size != 1:
                    break
                level = int(np.round(np.float32(bound.item()) / out.scale[0])) + out.zero_point
                low, high = (max(low, level), high) if name == "relax.maximum" else (low, min(high, level))
            elif name == "relax.clip":
                lo, hi = (bound_value(self, a) for a in source.args[1:])
                if not (isinstance(lo, tvm.ir.prim.expr.FloatImm) and isinstance(hi, tvm.ir.prim.expr.FloatImm)):
                    break
                low = max(low, int(np.round(np.float32(lo.value) / out.scale[0])) + out.zero_point)
                high = min(high, int(np.round(np.float32(hi.value) / out.scale[0])) + out.zero_point)
            else:
                break
            source = bound_value(self, source.args[0])
        return low, high, source

    # --- requantization -------------------------------------------------------------------------------------

    def _emit(self, expr: relax.Expr) -> relax.Expr:
        return self.builder_.emit(expr)

    def _requantize(
        self, acc: relax.Expr, multiplier: np.ndarray, out: Quant, low: int, high: int, offset: np.ndarray | None = None
    ) -> relax.Expr:
        """saturate(round_half_even(float(acc [+ offset]) * multiplier) + zero point) in the output's type."""
        value = self._emit(relax.op.astype(acc, "float32"))
        if offset is not None:
            value = self._emit(relax.op.add(value, relax.const(offset.astype(np.float32))))
        value = self._emit(relax.op.multiply(value, relax.const(multiplier.astype(np.float32))))
        return self._round_saturate(value, out, low, high)

    def _round_saturate(self, value: relax.Expr, out: Quant, low: int, high: int) -> relax.Expr:
        """saturate(round_half_even(value) + zero point), in the output's type.

        Clamped first (rounding is monotone and the bounds are integers, so the order does not matter), then
        rounded half to even as int8 libraries do: adding 1.5 x 2^23 leaves no fraction bits, so the float add
        itself rounds (to nearest even, the default mode); the sum is a whole number below 2^24, which converts
        to int32 exactly, and the shift comes off in integers with the zero point. TVM's loop vectorizer turns a
        `nearbyint` in a kernel's write-back into a scalar loop, element by element; this is vector code. (In
        float, (x + c) - c is simplified back to x and the rounding is lost: the parity check catches that.)
        maximum/minimum, not clip: ConvertLayout has a layout rule for them, and wraps a clip in transposes.
        """
        zero = out.zero_point
        value = self._emit(relax.op.maximum(value, relax.const(np.float32(low - zero))))
        value = self._emit(relax.op.minimum(value, relax.const(np.float32(high - zero))))
        value = self._emit(relax.op.add(value, relax.const(np.float32(_ROUNDING_SHIFT))))
        value = self._emit(relax.op.astype(value, "int32"))
        value = self._emit(relax.op.add(value, relax.const(np.int32(zero - _ROUNDING_SHIFT))))
        return relax.op.astype(value, out.dtype)

    @staticmethod
    def _multiplier(x: Quant, weight: Quant, out: Quant) -> np.ndarray:
        # float32 and in this order, as ONNX Runtime computes its requantization scale.
        return (np.float32(x.scale[0]) * weight.scale.astype(np.float32)) / np.float32(out.scale[0])

    def _bias(self, expr, x: Quant, weight: Quant, channels: int) -> np.ndarray | None:
        """The bias in int32 units of the accumulator (x scale x weight scale), from its dequantize or a float."""
        if expr is None:
            return np.zeros(channels, np.int64)
        value = bound_value(self, expr)
        if _op(value) == "relax.reshape":
            value = bound_value(self, value.args[0])
        found = _dequantized(self, value)
        if found is not None:
            values = _constant(self, found[0])
            if values is None or found[1].dtype != "int32" or np.any(found[1].zero != 0):
                return None
            units = np.float32(x.scale[0]) * weight.scale.astype(np.float32)
            if not np.allclose(np.broadcast_to(found[1].scale, units.shape), units, rtol=1e-5):
                return None
            return values.reshape(-1).astype(np.int64)
        values = _constant(self, value)
        if values is None or values.dtype != np.float32 or values.size != channels:
            return None
        return np.round(values.reshape(-1) / (np.float32(x.scale[0]) * weight.scale)).astype(np.int64)

    @staticmethod
    def _split_bias(source) -> tuple[relax.Expr, relax.Expr | None]:
        if _op(source) == "relax.add":
            return source.args[0], source.args[1]
        return source, None

    # --- patterns -------------------------------------------------------------------------------------------

    def _conv(self, source, out: Quant, low: int, high: int):
        main, bias_expr = self._split_bias(source)
        conv = bound_value(self, main)
        if _op(conv) != "relax.nn.conv2d" or conv.attrs.out_dtype not in ("", "float32", None):
            return None
        attrs = conv.attrs
        if attrs.data_layout != "NCHW" or attrs.kernel_layout != "OIHW":
            return None
        x = _activation(self, conv.args[0])
        weight = _weight(self, conv.args[1])
        if x is None or weight is None:
            return None
        (data, xq), (w, wq) = x, weight
        channels = w.shape[0]
        bias = self._bias(bias_expr, xq, wq, channels)
        if bias is None:
            return None
        if not (wq.per_tensor or wq.scale.size == channels):
            return None
        zero = xq.zero_point
        padding = [int(p) for p in attrs.padding]
        geometry = dict(
            strides=[int(s) for s in attrs.strides], padding=padding, dilation=[int(d) for d in attrs.dilation], groups=int(attrs.groups)
        )
        correction = np.zeros(channels, np.int64)
        if any(padding) and zero:
            # Padding must read as the zero point (real 0.0), so the data goes in as x - zero point, which no
            # longer fits 8 bits. Small windows (depthwise 3x3, the stem's 3x3x3) then run the float32 kernels on
            # those integers: every product and partial sum is an integer below 2^24, which float32 holds exactly,
            # so the accumulator is the integer one, bit for bit, at the speed of an FMA lane.
            window = int(np.prod(w.shape[1:]))
            x_low, x_high = _DTYPE_RANGE[xq.dtype]
            if window * max(zero - x_low, x_high - zero) * int(np.abs(w.astype(np.int64)).max(initial=0)) < _FLOAT_EXACT:
                data = self._emit(relax.op.subtract(self._emit(relax.op.astype(data, "float32")), relax.const(np.float32(zero))))
                conv = self._emit(relax.op.nn.conv2d(data, relax.const(w.astype(np.float32)), **geometry))
                acc = self._emit(relax.op.astype(conv, "int32"))
            else:
                data = self._emit(relax.op.subtract(self._emit(relax.op.astype(data, "int16")), relax.const(np.int16(zero))))
                acc = self._emit(relax.op.nn.conv2d(data, relax.const(w.astype(np.int16)), **geometry, out_dtype="int32"))
        else:
            # 8-bit data as it is (the dot-product instructions' operand); -zero x sum(w) folds into the bias.
            correction = -zero * w.reshape(channels, -1).astype(np.int64).sum(axis=1)
            data, w = self._pad_reduction(data, w, geometry["groups"])
            w = self._pad_outputs(w, geometry["groups"])
            acc = self._emit(relax.op.nn.conv2d(data, relax.const(w), **geometry, out_dtype="int32"))
        # Padded output channels (zero weights, bias and multiplier) come out as the zero point and are cut off.
        padded = w.shape[0] if geometry["groups"] == 1 else channels
        total = np.pad(bias + correction, (0, padded - channels))
        if np.any(total):
            acc = self._emit(relax.op.add(acc, relax.const(total.astype(np.int32).reshape(1, padded, 1, 1))))
        multiplier = np.pad(np.broadcast_to(self._multiplier(xq, wq, out), (channels,)), (0, padded - channels))
        result = self._requantize(acc, multiplier.reshape(1, padded, 1, 1), out, low, high)
        if padded == channels:
            return result
        return self._emit(relax.op.strided_slice(result, axes=[1], begin=[0], end=[channels]))

    def _pad_outputs(self, w: np.ndarray, groups: int) -> np.ndarray:
        """Output channels that are not whole groups of 4 (x0.75's 18) padded to whole 8-lane vectors: the register
        tile needs lanes the dot product has (4, 8, 16), and 18 gave a plain int32 loop (108->18 at 56x56: 190 us).
        The padded kernel's result is sliced back (a copy of a few microseconds)."""
        if groups != 1 or self.depth == 1 or w.shape[0] % _OUTPUT_GROUP == 0:
            return w
        return np.pad(w, ((0, -w.shape[0] % _PADDED_OUTPUTS), (0, 0), (0, 0), (0, 0)))

    def _pad_reduction(self, data, w: np.ndarray, groups: int):
        """Input channels padded to the dot product's depth (x0.75's 18 -> 20 for vpdpbusd's 4), zero weights on the
        new ones: the kernel then runs on the dot-product instruction instead of a plain int32 loop (18->108 at
        56x56: 325 -> 76 us), after a copy of its input with the zero channels added (a few microseconds)."""
        missing = -w.shape[1] % self.depth
        if groups != 1 or not missing:
            return data, w
        # A concat with zeros rather than nn.pad: the layout conversion to NHWC knows concat, not pad (which it
        # wrapped in two transposes, slower than the plain loop the padding saves).
        n, _, h, width = _shape(data)
        zeros = relax.const(np.zeros((n, missing, h, width), _dtype(data)))
        data = self._emit(relax.op.concat([data, zeros], axis=1))
        return data, np.pad(w, ((0, 0), (0, missing), (0, 0), (0, 0)))

    def _dense(self, source, out: Quant, low: int, high: int):
        """Gemm as the importer writes it: matmul(x, permute_dims(w)) + bias, on [batch, features]."""
        main, bias_expr = self._split_bias(source)
        matmul = bound_value(self, main)
        if _op(matmul) != "relax.matmul" or len(_shape(matmul)) != 2:
            return None
        x = _activation(self, matmul.args[0])
        transposed = bound_value(self, matmul.args[1])
        if x is None or _op(transposed) != "relax.permute_dims":
            return None
        weight = _weight(self, transposed.args[0])
        if weight is None or len(weight[0].shape) != 2:
            return None
        (data, xq), (w, wq) = x, weight  # w: [classes, features]
        classes = w.shape[0]
        if not (wq.per_tensor or wq.scale.size == classes):
            return None
        bias = self._bias(bias_expr, xq, wq, classes)
        if bias is None:
            return None
        acc = self._emit(relax.op.matmul(data, relax.const(np.ascontiguousarray(w.T)), out_dtype="int32"))
        total = bias - xq.zero_point * w.astype(np.int64).sum(axis=1)
        if np.any(total):
            acc = self._emit(relax.op.add(acc, relax.const(total.astype(np.int32).reshape(1, classes))))
        multiplier = np.broadcast_to(self._multiplier(xq, wq, out), (classes,)).reshape(1, classes)
        return self._requantize(acc, multiplier, out, low, high)

    def _add(self, source, out: Quant, low: int, high: int):
        """The residual Add of two quantized tensors: each rescaled to the output's scale in float, summed."""
        if _op(source) != "relax.add":
            return None
        a, b = (_activation(self, arg) for arg in source.args)
        if a is None or b is None or _shape(a[0]) != _shape(b[0]):
            return None
        terms = []
        for tensor, quant in (a, b):
            value = self._emit(relax.op.astype(tensor, "float32"))
            if quant.zero_point:
                value = self._emit(relax.op.subtract(value, relax.const(np.float32(quant.zero_point))))
            ratio = np.float32(quant.scale[0]) / np.float32(out.scale[0])
            terms.append(self._emit(relax.op.multiply(value, relax.const(ratio))))
        return self._round_saturate(self._emit(relax.op.add(*terms)), out, low, high)

    def _mean(self, source, out: Quant, low: int, high: int):
        """GlobalAveragePool: an int32 sum, then one requantization by x scale / (count x out scale)."""
        if _op(source) != "relax.mean":
            return None
        x = _activation(self, source.args[0])
        if x is None:
            return None
        data, xq = x
        shape = _shape(data)
        axes = [int(a) % len(shape) for a in source.attrs.axis]
        count = int(np.prod([shape[a] for a in axes]))
        total = self._emit(relax.op.sum(self._emit(relax.op.astype(data, "int32")), axis=axes, keepdims=bool(source.attrs.keepdims)))
        multiplier = np.float32(xq.scale[0]) / (np.float32(count) * np.float32(out.scale[0]))
        return self._requantize(total, np.asarray(multiplier), out, low, high, offset=np.asarray(-count * xq.zero_point))

    def _move(self, source, out: Quant, low: int, high: int):
        """quantize(reshape(dequantize(x))) at the same scale and zero point: the reshape of x itself."""
        name = _op(source)
        if name == "relax.dequantize":
            inner, moved = source, None
        elif name in _MOVES:
            inner, moved = bound_value(self, source.args[0]), source
        else:
            return None
        found = _activation(self, inner)
        if found is None or not found[1].same(out) or (low, high) != _DTYPE_RANGE[out.dtype]:
            return None
        if moved is None:
            return found[0]
        return relax.Call(moved.op, [found[0], *moved.args[1:]], moved.attrs)


@tvm.transform.module_pass(opt_level=0, name="IntegerOps")
class IntegerOps:
    """The pass; `rewritten` counts the patterns it turned into integer operators, by kind."""

    def __init__(self, activation: str | None = None, depth: int = 1):
        self.activation = activation  # the activations' 8-bit type for the target (see _IntegerOps)
        self.depth = depth  # the target's dot-product depth: unpadded convs get their input channels padded to it
        self.rewritten: dict[str, int] = {}
        self.float_emulated: list[str] = []  # ops still computed in float on dequantized tensors

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        for gvar, func in list(mod.functions.items()):
            if isinstance(func, relax.Function):
                mutator = _IntegerOps(mod, self.activation, self.depth)
                mod[gvar] = mutator.visit_expr(func)
                for kind, count in mutator.rewritten.items():
                    self.rewritten[kind] = self.rewritten.get(kind, 0) + count
        if self.rewritten:
            log.info("integer operators: %s", ", ".join(f"{n} {k}" for k, n in sorted(self.rewritten.items())))
        mod = relax.transform.DeadCodeElimination()(relax.transform.CanonicalizeBindings()(mod))
        self.float_emulated = float_emulated_ops(mod)
        if self.float_emulated:
            log.warning("warning: left in float emulation (dequantize -> float op): %s", ", ".join(self.float_emulated))
        return mod


def float_emulated_ops(mod: tvm.IRModule) -> list[str]:
    """The ops (one entry per op name, with a count) that still read a dequantized tensor: the integer rewrite
    did not take them, so they compute in float on 8-bit values. Reshapes only move data (the float output's
    reshape after the last dequantize is no emulation)."""
    counts: dict[str, int] = {}
    for func in mod.functions.values():
        if not isinstance(func, relax.Function):
            continue
        dequantized = set()
        for block in func.body.blocks:
            for binding in block.bindings:
                value = binding.value
                if _op(value) == "relax.dequantize":
                    dequantized.add(binding.var)
                elif (
                    _op(value) not in _MOVES
                    and isinstance(value, relax.Call)
                    and any(a in dequantized for a in value.args if isinstance(a, relax.Var))
                ):
                    name = _op(value).removeprefix("relax.") or "call"
                    counts[name] = counts.get(name, 0) + 1
    return [f"{name} x{count}" if count > 1 else name for name, count in sorted(counts.items())]


def is_quantized(mod: tvm.IRModule) -> bool:
    """Whether a Relax module holds quantize/dequantize (a QDQ model)."""
    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            for block in func.body.blocks:
                if any(_op(b.value) in ("relax.quantize", "relax.dequantize") for b in block.bindings):
                    return True
    return False
