"""Task classes: what `tune --ops` selects and the reports count, from a fused kernel's data and weight shapes."""

from __future__ import annotations

import pytest
from tvm.script import tirx as T

from tvmdeploy.compile.tuning.tasks import classify


def _conv(data: tuple[int, ...], weight: tuple[int, ...]):
    """A PrimFunc with the parameters of a fused NHWC conv (its body does not matter to the classes)."""

    @T.prim_func(s_tir=True)
    def kernel(x: T.Buffer(data, "float32"), w: T.Buffer(weight, "float32")):
        T.evaluate(0)

    return kernel


@pytest.mark.parametrize(
    ("data", "weight", "expected"),
    [
        ((1, 224, 224, 3), (32, 3, 3, 3), ("stem", "stem 3x3 3->32")),
        ((1, 112, 112, 32), (32, 3, 3, 1), ("depthwise", "depthwise 3x3 c32")),
        ((1, 56, 56, 24), (144, 1, 1, 24), ("pointwise", "pointwise-expand 24->144")),
        ((1, 56, 56, 144), (24, 1, 1, 144), ("pointwise", "pointwise-project 144->24")),
        # x0.25's 1x1 conv of 4 channels is pointwise: only a wider window on so few channels is the stem
        ((1, 56, 56, 4), (24, 1, 1, 4), ("pointwise", "pointwise-expand 4->24")),
        ((1, 28, 28, 64), (64, 3, 3, 64), ("other", "conv 3x3 64->64")),
    ],
)
def test_conv_classes_come_from_the_data_and_weight_shapes(data, weight, expected):
    assert classify("fused_conv2d3_add2", _conv(data, weight)) == expected


def test_kernels_without_a_conv_are_dense_or_named_by_their_first_op():
    assert classify("fused_matmul_add", None) == ("dense", "dense")
    assert classify("mean1", None) == ("other", "mean1")
