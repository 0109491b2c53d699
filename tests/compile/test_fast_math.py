"""float32 exp and sigmoid as vector arithmetic: accurate over the whole float32 range, and vectorised."""

from __future__ import annotations

import numpy as np


def _compiled(op: str):
    import tvm
    from tvm import relax

    from tvmdeploy.compile.fast_math import legalize_map

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4096,), "float32"))
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(getattr(relax.op, op)(x)))
    mod = relax.transform.LegalizeOps(legalize_map())(bb.get())
    return mod, relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [np.linspace(-120, 120, 2048), rng.standard_normal(2040) * 8, [0.0, -0.0, 1e-30, -1e-30, 88.0, -87.0, 89.0, -104.0]]
    ).astype(np.float32)
    return x


def test_exp_is_within_a_few_float32_roundings_over_the_whole_range():
    import tvm

    mod, vm = _compiled("exp")
    assert "T.exp" not in mod.script()  # no libm call per lane: arithmetic and the exponent bits only
    x = _inputs()
    out = vm["main"](tvm.runtime.tensor(x)).numpy().astype(np.float64)
    exact = np.exp(x.astype(np.float64))
    normal = (exact > 1.2e-38) & (exact < 2.2e38)
    assert np.max(np.abs(out[normal] - exact[normal]) / exact[normal]) < 4e-7
    assert np.all(out[x < -88] <= 1.22e-38) and np.all(np.isfinite(out)) and np.all(out >= 0)


def test_sigmoid_is_accurate_and_saturates_cleanly():
    import tvm

    mod, vm = _compiled("sigmoid")
    assert "T.sigmoid" not in mod.script()
    x = _inputs()
    out = vm["main"](tvm.runtime.tensor(x)).numpy().astype(np.float64)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert np.max(np.abs(out - exact)) < 2e-7
    assert np.all((out >= 0) & (out <= 1)) and out[np.argmax(x)] == 1.0 and out[np.argmin(x)] < 1e-37


def test_other_dtypes_keep_tvm_s_own_lowering():
    import tvm
    from tvm import relax

    from tvmdeploy.compile.fast_math import legalize_map

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((8,), "float64"))
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(relax.op.exp(x)))
    mod = relax.transform.LegalizeOps(legalize_map())(bb.get())
    assert "T.exp" in mod.script()
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    values = np.linspace(-3, 3, 8)
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(values)).numpy(), np.exp(values), rtol=1e-12)
