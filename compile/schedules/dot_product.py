"""8-bit dot-product tensor intrinsics (x86 VNNI vpdpbusd, ARM sdot) for the integer kernels, and which a target has."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tvm import tirx
from tvm.script import tirx as T

# Bytes of the reduction a byte dot product (vpdpbusd, sdot) sums into each 32-bit lane.
DOT_DEPTH = 4
# Register tiles (the accumulators of the default schedules and of the intrinsics) are buffers in "global" scope
# and under TILE_BYTES: TVM 0.27 lowers every "local" buffer, and every other one of 1024 bytes or more
# (kMaxStackAlloca), to a TVMBackendAllocWorkspace call, made once per tile in the parallel loop. That heap call,
# and the memory round trip it forces on accumulators LLVM can then no longer keep in registers, took half of
# each kernel's time (x1.0 int8 24->144 pointwise: 92 -> 45 us).
TILE_SCOPE = "global"
TILE_BYTES = 1024


@dataclass(frozen=True)
class DotInstruction:
    """An instruction C[lanes] += A[depth] . B[lanes, depth] in int32, over 8-bit A (activations) and int8 B
    (weights): a byte dot product (depth 4), or, where the CPU has none, vpmaddwd on the bytes widened to 16 bits
    (depth 2; exact, unlike vpmaddubsw, whose 16-bit pair sums saturate for full-range int8 weights)."""

    name: str
    data: str  # the activations' type it takes: vpdpbusd multiplies unsigned by signed bytes, sdot signed by signed
    intrinsics: tuple[tuple[int, str], ...]  # (int32 accumulator lanes, LLVM intrinsic), widest first
    depth: int = DOT_DEPTH
    widens: bool = False  # operands widened to int16 and the products added to C (vpmaddwd), not accumulated in it

    @property
    def lanes(self) -> tuple[int, ...]:
        return tuple(lanes for lanes, _ in self.intrinsics)

    def intrinsic(self, lanes: int) -> str:
        return dict(self.intrinsics)[lanes]


# TVM ships `dot_16x4_vnni`, but it passes the operands as <16 x i32> where the LLVM bundled with apache-tvm 0.27
# declares vpdpbusd on <64 x i8> (the build fails LLVM verification: TVM_NOTES 19); ours passes bytes. Importing
# TVM's tensor_intrin package would also cost a minute (it loads every backend's intrinsics).
VPDPBUSD = DotInstruction(
    "vpdpbusd", "uint8", ((16, "llvm.x86.avx512.vpdpbusd.512"), (8, "llvm.x86.avx512.vpdpbusd.256"), (4, "llvm.x86.avx512.vpdpbusd.128"))
)
SDOT = DotInstruction("sdot", "int8", ((4, "llvm.aarch64.neon.sdot.v4i32.v16i8"),))
# x86 without VNNI: 16-bit pairs. Twice the multiply-adds of an fp32 FMA per instruction, with an add beside it.
VPMADDWD_AVX512 = DotInstruction(
    "vpmaddwd",
    "uint8",
    ((16, "llvm.x86.avx512.pmaddw.d.512"), (8, "llvm.x86.avx2.pmadd.wd"), (4, "llvm.x86.sse2.pmadd.wd")),
    depth=2,
    widens=True,
)
VPMADDWD_AVX2 = DotInstruction("vpmaddwd", "uint8", ((8, "llvm.x86.avx2.pmadd.wd"), (4, "llvm.x86.sse2.pmadd.wd")), depth=2, widens=True)


def dot_instruction(target) -> DotInstruction | None:
    """The target's 8-bit dot-product instruction, or None where it has none."""
    from tvm.target import codegen

    if str(target.kind.name) != "llvm":
        return None

    def has(feature: str) -> bool:
        return bool(codegen.llvm_cpu_has_features(feature, target))

    if str(target.attrs.get("mtriple", "") or "").startswith("aarch64"):
        return SDOT if has("dotprod") else None
    if has("avx512vnni") and has("avx512vl"):
        return VPDPBUSD
    if has("avx512bw"):
        return VPMADDWD_AVX512
    if has("avx2"):
        return VPMADDWD_AVX2
    return None


def activation_dtype(target) -> str | None:
    """The 8-bit type the CPU integer kernels want activations in: unsigned on x86 (vpdpbusd, vpmaddubsw take
    unsigned data), signed on ARM (sdot and the widening smlal multiply signed bytes); None (as the model has
    them) for other targets."""
    if str(target.kind.name) != "llvm":
        return None
    return "int8" if str(target.attrs.get("mtriple", "") or "").startswith("aarch64") else "uint8"


@functools.cache
def dot_intrinsic(instruction: DotInstruction, lanes: int) -> str:
    """Register (once) and name the tensor intrinsic for `instruction` at `lanes`, C being the register tile the
    default schedules cache_write (in TILE_SCOPE)."""
    from tvm.s_tir import TensorIntrin

    name = f"tvmdeploy_{instruction.name}_{lanes}x{instruction.depth}"
    make = _widening_implementation if instruction.widens else _implementation
    TensorIntrin.register(
        name,
        _description(instruction.data, lanes, instruction.depth),
        make(instruction.data, lanes, instruction.intrinsic(lanes)),
        override=True,
    )
    return name


def _description(data: str, lanes: int, depth: int) -> tirx.PrimFunc:
    @T.prim_func(s_tir=True)
    def description(
        A: T.Buffer((T.int64(depth),), data, offset_factor=1),
        B: T.Buffer((T.int64(lanes), T.int64(depth)), "int8", offset_factor=1),
        C: T.Buffer((T.int64(lanes),), "int32", offset_factor=1, scope=TILE_SCOPE),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:depth], B[0:lanes, 0:depth])
            T.writes(C[0:lanes])
            for i in T.serial(T.int64(0), T.int64(lanes)):
                for k in T.serial(T.int64(0), T.int64(depth)):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return description


def _implementation(data: str, lanes: int, intrinsic: str) -> tirx.PrimFunc:
    byte_lanes = lanes * DOT_DEPTH

    @T.prim_func(s_tir=True)
    def implementation(
        A: T.Buffer((T.int64(DOT_DEPTH),), data, offset_factor=1),
        B: T.Buffer((T.int64(lanes), T.int64(DOT_DEPTH)), "int8", offset_factor=1),
        C: T.Buffer((T.int64(lanes),), "int32", offset_factor=1, scope=TILE_SCOPE),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:DOT_DEPTH], B[0:lanes, 0:DOT_DEPTH])
            T.writes(C[0:lanes])
            # The four activation bytes as one int32, broadcast to every lane, then seen as bytes again (LLVM
            # declares both instructions on signed byte vectors, whatever the bytes mean). One expression: a named
            # value here becomes a "local" buffer, which TVM 0.27 allocates on the heap at every call.
            C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(intrinsic),
                C.vload([0], dtype=f"int32x{lanes}"),
                T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], f"{data}x4"), dtype="int32"), lanes), dtype=f"int8x{byte_lanes}"),
                B.vload([0, 0], dtype=f"int8x{byte_lanes}"),
                dtype=f"int32x{lanes}",
            )

    return implementation


def _widening_implementation(data: str, lanes: int, intrinsic: str) -> tirx.PrimFunc:
    pairs = 2 * lanes  # int16 elements: one pair of products per int32 lane

    @T.prim_func(s_tir=True)
    def implementation(
        A: T.Buffer((T.int64(2),), data, offset_factor=1),
        B: T.Buffer((T.int64(lanes), T.int64(2)), "int8", offset_factor=1),
        C: T.Buffer((T.int64(lanes),), "int32", offset_factor=1, scope=TILE_SCOPE),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:2], B[0:lanes, 0:2])
            T.writes(C[0:lanes])
            # The two activations widened to 16 bits, as one int32 broadcast to every lane; the weights widened
            # per load (the packed weight stays 8-bit in memory). One expression, as in _implementation.
            C[T.ramp(T.int32(0), 1, lanes)] = C.vload([0], dtype=f"int32x{lanes}") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(intrinsic),
                T.reinterpret(
                    T.broadcast(T.reinterpret(T.Cast("int16x2", A.vload([0], f"{data}x2")), dtype="int32"), lanes), dtype=f"int16x{pairs}"
                ),
                T.Cast(f"int16x{pairs}", B.vload([0, 0], dtype=f"int8x{pairs}")),
                dtype=f"int32x{lanes}",
            )

    return implementation
