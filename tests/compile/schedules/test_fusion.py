"""Expansion+depthwise merging: which pairs merge, the band choice, exact values, parity and NEON code."""

from __future__ import annotations

import re

import pytest
from onnx_graphs import save_graph

from tvmdeploy.compile.schedules import BLOCK_CLASS, BLOCK_PREFIX
from tvmdeploy.compile.schedules.cpu_block import BAND_MAX_BYTES, choose_band

from .test_cpu import _functions, inverted_residual_net


@pytest.fixture(scope="module")
def odd_size_onnx(tmp_path_factory):
    """The odd-width net on a 42x42 input: its stride-2 block halves 21 rows into 11 (a band edge at both borders)."""
    import torch

    path = tmp_path_factory.mktemp("odd_size") / "odd_size.onnx"
    torch.onnx.export(
        inverted_residual_net(12),
        torch.randn(1, 3, 42, 42),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
    )
    return path


@pytest.fixture
def merge_everything(monkeypatch):
    """Merge every block, whatever its size and bands (the test nets' tensors are far below MERGE_MIN_BYTES, and
    their 21- and 11-row outputs split only into bands that recompute more than cpu_block.MAX_RECOMPUTE)."""
    from tvmdeploy.compile.schedules import cpu_block, fusion

    monkeypatch.setattr(fusion, "MERGE_MIN_BYTES", 0)
    monkeypatch.setattr(cpu_block, "MAX_RECOMPUTE", 10.0)


def _prepared(onnx_path, profile_name="x86-avx512"):
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import prepare
    from tvmdeploy.targets import load_profile

    profile = load_profile(profile_name)
    return prepare(import_onnx(onnx_path)[0], profile), profile


def _kernels(mod) -> list[str]:
    import tvm

    return sorted(g.name_hint for g, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc))


@pytest.mark.parametrize(("projection", "stages"), [(True, 3), (False, 2)])
def test_only_expansions_above_the_size_threshold_merge_with_the_convs_they_feed(
    odd_size_onnx, monkeypatch, projection, stages, merge_everything
):
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules import fusion

    monkeypatch.setattr(fusion, "MERGE_PROJECTION", projection)
    mod, profile = _prepared(odd_size_onnx)
    with make_target(profile):
        untouched = fusion.merge_expand_depthwise(mod, min_bytes=1 << 40)
        merged = fusion.merge_expand_depthwise(mod, min_bytes=0)
    assert _kernels(untouched) == _kernels(mod)
    blocks = [n for n in _kernels(merged) if n.startswith(BLOCK_PREFIX)]
    # Three blocks: 12->12 at 21x21 (stride 1, residual), 12->72 (stride 2), 18->108 (stride 1, residual),
    # each with its projection when allowed; the stem's output feeds a depthwise too, but the stem is no 1x1.
    assert len(blocks) == 3, _kernels(merged)
    calls = merged["main"].script().count("R.call_tir(")
    assert calls == mod["main"].script().count("R.call_tir(") - 3 * (stages - 1)
    for name in blocks:
        assert "layout_free_buffers" in merged[name].attrs  # the block schedule repacks every weight by it
        assert merged[name].script().count('T.sblock("') >= stages  # one reduction block per stage at least


def test_blocks_whose_bands_would_recompute_too_much_stay_apart(odd_size_onnx):
    """21 and 11 output rows split into >= 4 bands only as 3- or 1-row bands: 5/3 and 3/2 expanded rows per
    row needed, above MAX_RECOMPUTE, so with the defaults nothing of this net merges."""
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules import fusion

    mod, profile = _prepared(odd_size_onnx)
    with make_target(profile):
        assert _kernels(fusion.merge_expand_depthwise(mod, min_bytes=0)) == _kernels(mod)


def test_a_block_the_schedule_refuses_stays_apart(odd_size_onnx, monkeypatch, merge_everything):
    """Merged but unscheduled, a block would run TVM's raw lowering: such chains are not merged at all."""
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules import cpu_block, fusion

    mod, profile = _prepared(odd_size_onnx)
    monkeypatch.setattr(cpu_block.ExpandDepthwiseBlock, "apply", lambda self, func, target, tunable: None)
    with make_target(profile):
        assert _kernels(fusion.merge_expand_depthwise(mod, min_bytes=0)) == _kernels(mod)


@pytest.mark.parametrize("profile_name", ["x86-avx2", "x86-avx512"])
def test_merged_blocks_get_the_block_schedule_and_keep_parity(odd_size_onnx, tmp_path, profile_name, merge_everything):
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    profile = load_profile(profile_name)
    if not profile.runs_on_this_machine:
        pytest.skip(f"this CPU cannot run {profile_name} code (the Arm test below covers compile-only)")
    result = build_artifact(odd_size_onnx, profile, tmp_path / "art", tuning_log="defaults")
    sources = result.manifest.tuning["schedule_sources"]
    assert sources[BLOCK_CLASS] == {"log": 0, "default": 3, "raw": 0, "rule failed": 0}, sources
    assert all(counts["raw"] == 0 for counts in sources.values()), sources
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4 and result.parity.top5_identical


@pytest.mark.parametrize("projection", [True, False])
def test_merged_block_matches_plain_lowering(odd_size_onnx, monkeypatch, projection, merge_everything):
    """Same inputs through the scheduled merged kernel and through TVM's plain lowering of it: same outputs."""
    import numpy as np
    import tvm

    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules import fusion
    from tvmdeploy.compile.schedules.cpu import schedule_kernel

    monkeypatch.setattr(fusion, "MERGE_PROJECTION", projection)
    mod, profile = _prepared(odd_size_onnx)
    target = make_target(profile)
    with target:
        merged = fusion.merge_expand_depthwise(mod, min_bytes=0)
    rng = np.random.default_rng(0)
    checked = 0
    for name in [n for n in _kernels(merged) if n.startswith(BLOCK_PREFIX)]:
        func = merged[name]
        sch = schedule_kernel(func.with_attr("global_symbol", "main"), target)
        assert sch is not None and "T.parallel" in sch.mod.script()
        args = [rng.uniform(-1, 1, [int(d) for d in p.ty.shape]).astype("float32") for p in func.params]
        expected = _reference(func, args, target)
        out = [tvm.runtime.tensor(a) for a in args]
        tvm.compile(sch.mod, target=target)["main"](*out)
        np.testing.assert_allclose(out[-1].numpy(), expected, rtol=1e-5, atol=1e-5)
        checked += 1
    assert checked == 3


def _reference(func, args, target):
    """The merged kernel through TVM's plain lowering (no schedule): the semantics the schedule must keep."""
    import tvm

    tensors = [tvm.runtime.tensor(a) for a in args]
    tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=target)["main"](*tensors)
    return tensors[-1].numpy()


@pytest.mark.parametrize(
    ("rows_out", "stride", "row_bytes", "out_row_bytes", "band"),
    [
        (56, 1, 56 * 144 * 4, 0, 14),  # x1.0 56x56x144 pair: 4 bands of 14 rows (16 expanded rows, 516 KB)
        (56, 1, 56 * 144 * 4, 56 * 144 * 4, 14),  # with its projection: + 14 depthwise rows (967 KB in all)
        (56, 2, 112 * 96 * 4, 0, 7),  # x1.0 112x112x96 -> 56: 15 expanded rows, 645 KB
        (56, 2, 112 * 192 * 4, 0, 4),  # x2.0 112x112x192: 7 rows would need 1.3 MB
        (56, 1, 56 * 288 * 4, 56 * 288 * 4, 7),  # x2.0 56x56x288 with projection: 8 even bands (8 rows: 7, odd)
        (7, 1, 7 * 960 * 4, 0, 1),  # 7 rows: no split into >= 4 even bands but single rows
    ],
)
def test_band_is_the_tallest_that_fits_with_an_even_number_of_bands(rows_out, stride, row_bytes, out_row_bytes, band):
    assert choose_band(rows_out, stride, 3, row_bytes, out_row_bytes) == band
    if band > 1:
        assert ((band - 1) * stride + 3) * row_bytes + band * out_row_bytes <= BAND_MAX_BYTES
        assert (rows_out // band) % 2 == 0


def test_arm_merged_blocks_emit_neon_fma(odd_size_onnx, merge_everything):
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.targets import load_profile

    compiled = compile_relax(import_onnx(odd_size_onnx)[0], load_profile("arm-cortex-a72"))
    assert compiled.schedule_sources[BLOCK_CLASS]["default"] == 3
    (library,) = [m for m in compiled.executable.mod.imports if m.kind == "llvm"]
    functions = _functions(library.inspect_source("asm"))
    blocks = [n for n in functions if n.startswith(BLOCK_PREFIX) and n.endswith("_prepacked_compute_")]
    assert len(blocks) == 3, sorted(functions)[:20]
    for name in blocks:
        code = functions[name] + "".join(functions.get(lam, "") for lam in re.findall(r"\.L__tvm_parallel_lambda[.\d]*", functions[name]))
        assert len(re.findall(r"\bfmla\s+v\d+\.4s", code)) >= 2, f"{name}: no NEON fmla in both halves"


def test_the_tuner_leaves_out_the_kernels_the_build_merges(odd_size_onnx, tmp_path, merge_everything):
    """Records for merged kernels would go unused: `tune` selects them only with include_merged."""
    from tvmdeploy.compile.tuning.driver import prepared_tasks, tune
    from tvmdeploy.targets import load_profile

    profile = load_profile("x86-avx2")
    infos = prepared_tasks(odd_size_onnx, profile)[1]
    merged = {i.name for i in infos if i.merged}
    assert len(merged) == 3 * 3, merged  # three blocks of three kernels
    options = dict(trials=0, ops="all", measure_baseline=False, progress_bar=False, auto_seed=False)
    tables = []
    skipping = tune(odd_size_onnx, profile, log_dir=tmp_path / "a", on_task_table=tables.append, **options)
    selected = {o.info.name for o in skipping.outcomes if o.selected}
    assert selected == {i.name for i in infos} - merged
    assert sum(line.endswith(" merged") for line in tables[0].splitlines()) == len(merged)
    everything = tune(odd_size_onnx, profile, log_dir=tmp_path / "b", include_merged=True, **options)
    assert {o.info.name for o in everything.outcomes if o.selected} == {i.name for i in infos}


def _mixed_kernel_onnx(path):
    """MixNet's pattern: a 1x1 expansion Split into two channel groups, a 3x3 and a 5x5 depthwise conv, Concat."""
    import numpy as np
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"expand": (32, 8, 1, 1), "dw3": (16, 1, 3, 3), "dw5": (16, 1, 5, 5), "fc": (10, 32)}
    initializers = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in weights.items()]
    initializers.append(numpy_helper.from_array(np.array([16, 16], dtype=np.int64), "split"))
    nodes = [
        helper.make_node("Conv", ["input", "expand"], ["e"]),
        helper.make_node("Relu", ["e"], ["r"]),
        helper.make_node("Split", ["r", "split"], ["a", "b"], axis=1),
        helper.make_node("Conv", ["a", "dw3"], ["da"], group=16, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["b", "dw5"], ["db"], group=16, pads=[2, 2, 2, 2]),
        helper.make_node("Concat", ["da", "db"], ["c"], axis=1),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    return save_graph(path, nodes, {"input": [1, 8, 32, 32]}, {"logits": [1, 10]}, initializers, opset=17, name="mixed")


def test_a_split_into_channel_groups_is_never_merged_and_builds_with_parity(tmp_path, merge_everything):
    """A kernel returning a tuple (Split) crashed the merge step (MixNet-S: 'TupleType' object has no attribute
    'shape'). It stays apart, every kernel gets a default schedule and the build keeps parity."""
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules import fusion
    from tvmdeploy.targets import load_profile

    path = _mixed_kernel_onnx(tmp_path / "mixed.onnx")
    mod, profile = _prepared(path)
    with make_target(profile):
        merged = fusion.merge_expand_depthwise(mod, min_bytes=0)
    assert _kernels(merged) == _kernels(mod)  # the expansion feeds a Split, not a depthwise conv: nothing merges
    host = next((p for p in map(load_profile, ("x86-avx512", "x86-avx2")) if p.runs_on_this_machine), None)
    if host is None:
        pytest.skip("needs an x86-64 host with AVX2")
    result = build_artifact(path, host, tmp_path / "art", tuning_log="defaults")
    assert result.parity.passed and result.manifest.tuning["raw_kernels"] == {}
    assert result.manifest.tuning["schedule_sources"]["depthwise"]["default"] == 2
