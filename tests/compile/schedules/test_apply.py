"""Default rules applied safely: epilogue graphs (SiLU, hard-swish, SE gates) scheduled exactly, a failing rule never fatal."""

from __future__ import annotations

import logging

import numpy as np
import pytest


def _host_profile():
    from tvmdeploy.targets import load_profile

    for name in ("x86-avx512", "x86-avx2"):
        profile = load_profile(name)
        if profile.runs_on_this_machine:
            return profile
    pytest.skip("needs an x86-64 host with AVX2")


def _pointwise(epilogue: str, rows: int = 49, channels_in: int = 24, channels_out: int = 32):
    """A 1x1 convolution as TE builds it (NHWC, [rows, C_in] x [C_out, C_in]) + bias + `epilogue`:
    'swish' x * sigmoid(x), 'hardswish' x * relu6(x + 3) / 6, 'gate' (squeeze-and-excitation: sigmoid of a
    one-pixel conv scaling a whole [rows, C_out] feature map, the broadcast FuseOps puts in the same kernel)."""
    import tvm
    from tvm import te, tirx

    pixels = 1 if epilogue == "gate" else rows
    data = te.placeholder((1, pixels, 1, channels_in), name="data")
    weight = te.placeholder((channels_out, 1, 1, channels_in), name="weight")
    bias = te.placeholder((1, 1, 1, channels_out), name="bias")
    r = te.reduce_axis((0, channels_in), name="r")
    conv = te.compute(
        (1, pixels, 1, channels_out), lambda n, h, w, c: te.sum(data[n, h, w, r] * weight[c, 0, 0, r], axis=r), name="conv2d_nhwc"
    )
    biased = te.compute(conv.shape, lambda *i: conv(*i) + bias[0, 0, 0, i[-1]], name="T_add")
    args = [data, weight, bias]
    if epilogue == "swish":
        gate = te.compute(conv.shape, lambda *i: tirx.sigmoid(biased(*i)), name="compute")
        out = te.compute(conv.shape, lambda *i: biased(*i) * gate(*i), name="T_multiply")
    elif epilogue == "hardswish":
        shifted = te.compute(conv.shape, lambda *i: biased(*i) + tirx.const(3.0, "float32"), name="T_add_3")
        clipped = te.compute(
            conv.shape, lambda *i: tirx.min(tirx.max(shifted(*i), tirx.const(0.0, "float32")), tirx.const(6.0, "float32")), name="T_clip"
        )
        scaled = te.compute(conv.shape, lambda *i: clipped(*i) / tirx.const(6.0, "float32"), name="T_divide")
        out = te.compute(conv.shape, lambda *i: biased(*i) * scaled(*i), name="T_multiply")
    else:
        feature = te.placeholder((1, rows, 1, channels_out), name="feature")
        gate = te.compute(conv.shape, lambda *i: tirx.sigmoid(biased(*i)), name="compute")
        out = te.compute(feature.shape, lambda n, h, w, c: gate[n, 0, 0, c] * feature[n, h, w, c], name="T_multiply")
        args.append(feature)
    func = te.create_prim_func([*args, out]).with_attr("global_symbol", "main").with_attr("layout_free_buffers", [1, 2])
    return tvm.IRModule({"main": func})["main"]


def _run(func, target, inputs):
    import tvm

    library = tvm.compile(tvm.IRModule({"main": func}), target=target)
    out_shape = [int(d) for d in func.params[-1].ty.shape]
    out = tvm.runtime.tensor(np.zeros(out_shape, "float32"))
    library["main"](*[tvm.runtime.tensor(a) for a in inputs], out)
    return out.numpy()


def _inputs(func):
    rng = np.random.default_rng(0)
    return [rng.standard_normal([int(d) for d in p.ty.shape]).astype("float32") for p in func.params[:-1]]


@pytest.mark.parametrize("epilogue", ["swish", "hardswish", "gate"])
def test_epilogue_graphs_fold_into_the_register_tile_and_match_raw_lowering(epilogue):
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules.apply import lowers
    from tvmdeploy.compile.schedules.cpu import schedule_kernel

    target = make_target(_host_profile())
    func = _pointwise(epilogue)
    with target:
        sch = schedule_kernel(func, target)
    assert sch is not None, f"{epilogue}: no default schedule"
    assert lowers(sch.mod["main"], target) == ""
    script = sch.mod.script()
    if epilogue != "gate":
        # One pass over the output: the whole epilogue is computed from the registers as the tile is written back.
        assert 'T.sblock("T_multiply")' not in script and "T.vectorized" in script
    else:
        # The gate is computed once per channel; its broadcast multiply is a loop nest of its own, not unrolled.
        assert script.count("T.sigmoid") == 1 and 'T.sblock("T_multiply")' in script
        assert "T.unroll(T.int64(49))" not in script
    inputs = _inputs(func)
    np.testing.assert_allclose(_run(sch.mod["main"], target, inputs), _run(func, target, inputs), rtol=1e-5, atol=1e-6)


class _OldSwishFold:
    """The epilogue fold of before: reverse-inlines each block in turn, also the sigmoid, whose producer (the
    biased value) the multiply still reads. TVM accepts it; lowering then fails in FlattenBuffer (EfficientNet's crash)."""

    def apply(self, func, target, _tunable):
        from tvm import s_tir

        sch = s_tir.Schedule(func)
        sch.cache_write(sch.get_sblock("conv2d_nhwc"), 0, "local")
        sch.reverse_compute_inline(sch.get_sblock("T_add"))
        sch.reverse_compute_inline(sch.get_sblock("compute"))
        return sch


class _Raising:
    def apply(self, func, target, _tunable):
        raise RuntimeError("deliberately broken rule")


class _Declining:
    def apply(self, func, target, _tunable):
        return None


def test_a_rule_whose_schedule_does_not_lower_is_skipped_for_the_next_rule():
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules.apply import lowers, schedule_with_rules
    from tvmdeploy.compile.schedules.cpu import RegisterBlockedReduction

    target = make_target(_host_profile())
    func = _pointwise("swish")
    with target:
        broken = _OldSwishFold().apply(func, target, False)
        reason = lowers(broken.mod["main"], target)
        assert "T_add" in reason and "before its definition" in reason, reason
        assert schedule_with_rules(func, target, [_OldSwishFold()]).why_raw.startswith("rule failed: _OldSwishFold: ")
        outcome = schedule_with_rules(func, target, [_Declining(), _OldSwishFold(), RegisterBlockedReduction()])
    assert outcome.schedule is not None and outcome.rule == "RegisterBlockedReduction" and outcome.why_raw == ""


def test_why_a_kernel_stays_raw_no_rule_or_a_failed_rule():
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules import NO_RULE
    from tvmdeploy.compile.schedules.apply import schedule_with_rules

    target = make_target(_host_profile())
    func = _pointwise("hardswish")
    with target:
        assert schedule_with_rules(func, target, [_Declining()]).why_raw == NO_RULE
        raised = schedule_with_rules(func, target, [_Raising(), _Declining()])
    assert raised.schedule is None
    assert raised.why_raw == "rule failed: _Raising: RuntimeError: deliberately broken rule"


def test_apply_rules_keeps_raw_lowering_names_the_kernel_and_leaves_the_module_untouched(caplog):
    import tvm

    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules.apply import apply_rules
    from tvmdeploy.compile.schedules.cpu import RegisterBlockedReduction

    target = make_target(_host_profile())
    mod = tvm.IRModule({"swish": _pointwise("swish"), "gate": _pointwise("gate")})
    with target, caplog.at_level(logging.WARNING):
        scheduled, raw = apply_rules(mod, target, [_Raising()])
        assert set(raw) == {"swish", "gate"} and all(why.startswith("rule failed: _Raising") for why in raw.values())
        assert "kernel swish keeps TVM's raw lowering: rule failed: _Raising" in caplog.text
        scheduled, raw = apply_rules(mod, target, [RegisterBlockedReduction()])
    assert raw == {}
    assert all(bool(f.attrs["tirx.is_scheduled"]) for _, f in scheduled.functions_items())
    assert all("tirx.is_scheduled" not in (f.attrs or {}) for _, f in mod.functions_items())


def test_a_deliberately_broken_rule_leaves_the_build_working_and_says_so(tiny_onnx, tmp_path, monkeypatch, capsys):
    """`tvmdeploy build` with a rule that raises on every depthwise kernel: that kernel keeps TVM's raw lowering,
    parity holds, the build's output and manifest count and name it."""
    from tvmdeploy.compile.schedules import cpu, fusion
    from tvmdeploy.runtime.artifact import read_manifest
    from tvmdeploy.tools.cli.main import main

    class BrokenDepthwise(cpu.RegisterBlockedReduction):
        def _schedule(self, sch, func, reductions, unit):
            if fusion.is_depthwise(func):
                raise ValueError("deliberately broken depthwise rule")
            return super()._schedule(sch, func, reductions, unit)

    rules = cpu.default_cpu_rules
    monkeypatch.setattr(
        cpu,
        "default_cpu_rules",
        lambda parallel=True: [
            BrokenDepthwise(parallel) if type(rule) is cpu.RegisterBlockedReduction else rule for rule in rules(parallel)
        ],
    )
    code = main(["build", str(tiny_onnx()), "--profile", _host_profile().name, "-o", str(tmp_path / "art"), "--tuning-log", "defaults"])
    out, err = capsys.readouterr()
    assert code == 0 and "-> PASS" in out
    tuning = read_manifest(tmp_path / "art").tuning
    (name,) = tuning["raw_kernels"]
    why = "rule failed: BrokenDepthwise: ValueError: deliberately broken depthwise rule"
    assert tuning["raw_kernels"][name] == why
    assert tuning["schedule_sources"]["depthwise"] == {"log": 0, "default": 0, "raw": 0, "rule failed": 1}
    assert "depthwise: 1 raw (rule failed)" in out and f"raw lowering: {name} ({why})" in out
    assert f"warning: kernel {name} keeps TVM's raw lowering: {why}" in err  # the library's warning, on stderr
