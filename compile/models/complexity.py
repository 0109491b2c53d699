"""Params and FLOPs of an ArchSpec, counted the way each source's published numbers count them."""

from __future__ import annotations

from dataclasses import dataclass

from tvmdeploy.compile.models.mobilenetv2_spec import ArchSpec, feature_sizes


@dataclass(frozen=True)
class Counting:
    """One source's counting convention. FLOPs here are multiply-adds (one per MAC), as in the card.

    bn_stats_are_params: Paddle's BatchNorm makes running mean/variance (non-trainable) parameters,
        so `paddle.summary` counts 4 per channel; torch keeps them as buffers (2 per channel).
    bn_flops_per_element: thop >= 0.1 charges 2 per element for normalizing, doubled for the affine
        part (4); `paddle.flops` charges 2.
    pool_flops: `paddle.flops` (and thop, for a pooling *module*) charges (k*k + 1) per pooled output;
        torchvision pools with a functional call that thop never sees.
    Convolution = MACs (no conv has a bias); linear = in*out, its bias free; activations and
    residual adds are free in all three.
    """

    bn_stats_are_params: bool
    bn_flops_per_element: int
    pool_flops: bool


COUNTINGS: dict[str, Counting] = {
    "torchvision": Counting(bn_stats_are_params=False, bn_flops_per_element=4, pool_flops=False),
    "timm": Counting(bn_stats_are_params=False, bn_flops_per_element=4, pool_flops=True),
    "ppcls": Counting(bn_stats_are_params=True, bn_flops_per_element=2, pool_flops=True),
}


def trainable_params(spec: ArchSpec) -> int:
    """Exactly what `sum(p.numel() for p in module.parameters())` gives for the torch module."""
    total = 0
    for c in spec.convs():
        total += c.out_ch * (c.in_ch // c.groups) * c.kernel * c.kernel + 2 * c.out_ch
    fc = spec.classifier
    return total + fc.in_features * fc.out_features + fc.out_features


def count_params(spec: ArchSpec, counting: Counting | None = None) -> int:
    counting = counting or COUNTINGS[spec.source]
    extra = sum(2 * c.out_ch for c in spec.convs()) if counting.bn_stats_are_params else 0
    return trainable_params(spec) + extra


def count_flops(spec: ArchSpec, counting: Counting | None = None) -> int:
    counting = counting or COUNTINGS[spec.source]
    total = 0
    last = spec.input_size
    for c, (_, out) in zip(spec.convs(), feature_sizes(spec)):
        elements = c.out_ch * out * out
        total += elements * (c.in_ch // c.groups) * c.kernel * c.kernel
        total += elements * counting.bn_flops_per_element
        last = out
    fc = spec.classifier
    if counting.pool_flops:
        total += (last * last + 1) * fc.in_features
    return total + fc.in_features * fc.out_features
