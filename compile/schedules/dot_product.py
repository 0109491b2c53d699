"""8-bit dot-product tensor intrinsics (x86 VNNI vpdpbusd) for the integer kernels, and which one a target has."""

from __future__ import annotations

import functools

from tvm import tirx
from tvm.script import tirx as T

# Bytes of the reduction one instruction sums into each 32-bit lane (vpdpbusd: four u8 x s8 products).
DOT_DEPTH = 4

# TVM ships `dot_16x4_vnni`, but it passes the operands as <16 x i32> where the LLVM bundled with apache-tvm 0.27
# declares vpdpbusd on <64 x i8> (the build fails LLVM verification: TVM_NOTES 19); ours reinterprets them to
# bytes. Importing TVM's tensor_intrin package would also cost a minute (it loads every backend's intrinsics).
_VPDPBUSD = {16: "llvm.x86.avx512.vpdpbusd.512", 8: "llvm.x86.avx512.vpdpbusd.256"}


def dot_lanes(target) -> tuple[int, ...]:
    """The accumulator widths (32-bit lanes) of the target's u8 x s8 dot-product instruction, widest first;
    empty where it has none."""
    from tvm.target import codegen

    if str(target.kind.name) != "llvm":
        return ()
    if codegen.llvm_cpu_has_features("avx512vnni", target) and codegen.llvm_cpu_has_features("avx512vl", target):
        return (16, 8)
    return ()


@functools.cache
def vnni_intrinsic(lanes: int) -> str:
    """Register (once) and name the tensor intrinsic C[lanes] += A[4] (u8) . B[lanes, 4] (s8) in int32, with C
    in registers (the accumulator the default schedules cache_write to "local")."""
    from tvm.s_tir import TensorIntrin

    name = f"tvmdeploy_vpdpbusd_{lanes}x{DOT_DEPTH}"
    TensorIntrin.register(name, _description(lanes), _vpdpbusd(lanes), override=True)
    return name


def _description(lanes: int) -> tirx.PrimFunc:
    @T.prim_func(s_tir=True)
    def description(
        A: T.Buffer((T.int64(DOT_DEPTH),), "uint8", offset_factor=1),
        B: T.Buffer((T.int64(lanes), T.int64(DOT_DEPTH)), "int8", offset_factor=1),
        C: T.Buffer((T.int64(lanes),), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:DOT_DEPTH], B[0:lanes, 0:DOT_DEPTH])
            T.writes(C[0:lanes])
            for i in T.serial(T.int64(0), T.int64(lanes)):
                for k in T.serial(T.int64(0), T.int64(DOT_DEPTH)):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return description


def _vpdpbusd(lanes: int) -> tirx.PrimFunc:
    byte_lanes = lanes * DOT_DEPTH
    intrinsic = _VPDPBUSD[lanes]

    @T.prim_func(s_tir=True)
    def implementation(
        A: T.Buffer((T.int64(DOT_DEPTH),), "uint8", offset_factor=1),
        B: T.Buffer((T.int64(lanes), T.int64(DOT_DEPTH)), "int8", offset_factor=1),
        C: T.Buffer((T.int64(lanes),), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:DOT_DEPTH], B[0:lanes, 0:DOT_DEPTH])
            T.writes(C[0:lanes])
            # The four activation bytes as one int32, broadcast to every lane, then seen as bytes again.
            word = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
            activations = T.reinterpret(T.broadcast(word, lanes), dtype=f"int8x{byte_lanes}")
            C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(intrinsic),
                C.vload([0], dtype=f"int32x{lanes}"),
                activations,
                B.vload([0, 0], dtype=f"int8x{byte_lanes}"),
                dtype=f"int32x{lanes}",
            )

    return implementation
