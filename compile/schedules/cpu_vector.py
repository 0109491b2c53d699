"""SIMD shape of an LLVM CPU target: vector lanes and register count, which size the default schedules' tiles."""

from __future__ import annotations

from dataclasses import dataclass

from tvmdeploy.compile.schedules.dot_product import DotInstruction, dot_instruction


@dataclass(frozen=True)
class VectorUnit:
    lanes: int  # float32 lanes of one vector register
    registers: int  # architectural vector registers (accumulators must leave room for operands)
    isa: str  # what the numbers come from, for reports
    dot: DotInstruction | None = None  # its 8-bit dot-product instruction (dot_product.py), if any

    def fits(self, rows: int, registers: int) -> bool:
        """Whether a tile of rows x registers accumulators fits beside its operands: a row's `registers`
        weight vectors and one broadcast input. LLVM keeps both in registers (no broadcast memory operands),
        so x86 AVX-512's 7x4 tile (28 + 5 = 33 of 32) spilled two accumulators to the stack in every step."""
        return rows * registers + registers + 1 <= self.registers


def vector_unit(target) -> VectorUnit:
    """Vector registers of the target's CPU, from LLVM's feature list for its -mcpu/-mattr."""
    from tvm.target import codegen

    def has(feature: str) -> bool:
        return bool(codegen.llvm_cpu_has_features(feature, target))

    triple = str(target.attrs.get("mtriple", "") or "")
    if triple.startswith("aarch64") or has("neon"):
        return VectorUnit(4, 32, "neon", dot_instruction(target))
    if has("avx512f"):
        return VectorUnit(16, 32, "avx512", dot_instruction(target))
    if has("avx2") or has("avx"):
        return VectorUnit(8, 16, "avx2", dot_instruction(target))
    return VectorUnit(4, 16, "sse")
