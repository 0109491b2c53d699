"""Batch norm and activations after a Concat move into its branches (and fuse there); Split(Concat) is undone."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphs import save_graph


def _mixed_conv_onnx(path, *, sections=(16, 16), next_sections=(16, 16)):
    """MixNet's pattern: two convolutions, Concat, BatchNormalization, SiLU, Split again, two more, Concat, head."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    channels = sum(sections)
    inits = {
        "wa": rng.standard_normal((sections[0], 8, 3, 3)),
        "wb": rng.standard_normal((sections[1], 8, 5, 5)),
        "scale": rng.uniform(0.5, 1.5, channels),
        "bias": rng.uniform(-0.5, 0.5, channels),
        "mean": rng.uniform(-0.5, 0.5, channels),
        "var": rng.uniform(0.5, 2.0, channels),
        "wc": rng.standard_normal((next_sections[0], 1, 3, 3)),
        "wd": rng.standard_normal((next_sections[1], 1, 3, 3)),
        "fc": rng.standard_normal((10, channels)),
    }
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()]
    initializers.append(numpy_helper.from_array(np.array(next_sections, dtype=np.int64), "split"))
    nodes = [
        helper.make_node("Conv", ["input", "wa"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["input", "wb"], ["b"], pads=[2, 2, 2, 2]),
        helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
        helper.make_node("BatchNormalization", ["ab", "scale", "bias", "mean", "var"], ["bn"]),
        helper.make_node("Sigmoid", ["bn"], ["gate"]),
        helper.make_node("Mul", ["bn", "gate"], ["act"]),
        helper.make_node("Split", ["act", "split"], ["c_in", "d_in"], axis=1),
        helper.make_node("Conv", ["c_in", "wc"], ["c"], group=next_sections[0], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d_in", "wd"], ["d"], group=next_sections[1], pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["c", "d"], ["cd"], axis=1),
        helper.make_node("GlobalAveragePool", ["cd"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    return save_graph(path, nodes, {"input": [1, 8, 24, 24]}, {"logits": [1, 10]}, initializers, opset=17, name="mixed")


def _kernel_names(path):
    import tvm

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import prepare
    from tvmdeploy.targets import load_profile

    mod = prepare(import_onnx(path)[0], load_profile("x86-avx512"))
    return [g.name_hint for g, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]


def test_batch_norm_and_silu_fuse_into_each_branch_and_the_split_vanishes(tmp_path):
    names = _kernel_names(_mixed_conv_onnx(tmp_path / "m.onnx"))
    concats = [n for n in names if "concatenate" in n]
    # Only the plain data movement of the two Concats is left; no Split, no elementwise op beside a Concat.
    assert concats and all(n.rstrip("0123456789_") in ("concatenate", "fused_concatenate") for n in concats), names
    assert not any(n.startswith("split") or "_split" in n for n in names), names
    convs = [n for n in names if n.startswith("fused_conv2d")]
    assert sum("subtract" in n and "sigmoid" in n for n in convs) == 2, names  # BN + SiLU in both first convs


def test_a_split_at_other_channels_stays(tmp_path):
    names = _kernel_names(_mixed_conv_onnx(tmp_path / "m.onnx", next_sections=(8, 24)))
    assert any("split" in n for n in names), names


@pytest.mark.parametrize("next_sections", [(16, 16), (8, 24)])
def test_values_are_unchanged(tmp_path, next_sections):
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    host = next((p for p in map(load_profile, ("x86-avx512", "x86-avx2")) if p.runs_on_this_machine), None)
    if host is None:
        pytest.skip("needs an x86-64 host with AVX2")
    result = build_artifact(
        _mixed_conv_onnx(tmp_path / "m.onnx", next_sections=next_sections), host, tmp_path / "art", tuning_log="defaults"
    )
    assert result.parity.passed and result.parity.top5_identical and result.manifest.tuning["raw_kernels"] == {}
