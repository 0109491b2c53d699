"""Default CPU schedules: tile choice, every kernel of odd-width nets scheduled, parity, NEON fmla for Arm."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tvmdeploy.compile.schedules.cpu import choose_tile
from tvmdeploy.compile.schedules.cpu_vector import VectorUnit
from tvmdeploy.compile.schedules.dot_product import TILE_BYTES

UNITS = [VectorUnit(16, 32, "avx512"), VectorUnit(8, 16, "avx2"), VectorUnit(4, 32, "neon")]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.isa)
@pytest.mark.parametrize("rows", [1, 5, 7, 13, 14, 28, 56, 112])
@pytest.mark.parametrize("cols", [1, 3, 7, 12, 20, 24, 36, 72, 96, 144, 160, 1000, 1001, 1280])
def test_tile_fits_registers_and_divides_the_channels(unit, rows, cols):
    tile = choose_tile(rows, cols, unit)
    assert cols % tile.cols == 0  # a partial vector would need a predicate and lose vectorisation
    assert 1 <= tile.rows <= min(rows, 8)
    assert tile.cols % tile.vector == 0 and tile.vector <= unit.lanes
    registers = tile.cols // tile.vector
    # accumulators + one row's weight vectors + the broadcast input: LLVM spilled past that (7x4 on AVX-512)
    assert tile.rows * registers + registers + 1 <= unit.registers
    assert tile.rows * tile.cols * 4 < TILE_BYTES  # a larger tile is a heap call per tile in TVM 0.27
    if cols % unit.lanes == 0:
        assert tile.vector == unit.lanes  # whole vectors whenever the channels allow


@pytest.mark.parametrize(
    ("unit", "cols", "tile_cols", "vector"), [(UNITS[0], 48, 48, 16), (UNITS[0], 24, 24, 8), (UNITS[0], 144, 48, 16), (UNITS[1], 24, 24, 8)]
)
def test_channels_of_three_vectors_get_a_three_register_tile(unit, cols, tile_cols, vector):
    # x2.0's 48-channel and x1.0's 24-channel layers: one vector per tile row loads as often as it multiplies.
    tile = choose_tile(56, cols, unit)
    assert (tile.cols, tile.vector) == (tile_cols, vector)


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.isa)
def test_a_single_row_spreads_over_several_independent_accumulators(unit):
    # A classifier (one row, 1000 classes): one accumulator is one FMA chain, bound by its latency.
    tile = choose_tile(1, 1000, unit)
    assert tile.rows == 1 and tile.cols // tile.vector >= 4 and 1000 % tile.cols == 0


def inverted_residual_net(width: int):
    """A MobileNetV2-like net with channel counts that are not multiples of 8 (as x0.75 / x1.5 give)."""
    import torch
    from torch import nn

    def conv(cin, cout, k=1, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            self.body = nn.Sequential(conv(cin, hidden), conv(hidden, hidden, 3, stride, hidden), conv(hidden, cout, act=False))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    c1, c2 = width, width + width // 2
    net = nn.Sequential(
        conv(3, c1, 3, 2),
        Block(c1, c1, 1, 1),
        Block(c1, c2, 2, 6),
        Block(c2, c2, 1, 6),
        conv(c2, 4 * c2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * c2, 11),
    )
    torch.manual_seed(0)
    for module in net.modules():  # non-trivial BN statistics, folded into the convs by the exporter
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def odd_width_onnx(tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("odd") / "odd_width.onnx"
    torch.onnx.export(
        inverted_residual_net(12),
        torch.randn(1, 3, 40, 40),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
    )
    return path


@pytest.mark.parametrize("profile_name", ["x86-avx2", "x86-avx512"])
def test_every_kernel_of_an_odd_width_net_gets_a_default_schedule_with_parity(odd_width_onnx, tmp_path, profile_name):
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    profile = load_profile(profile_name)
    if not profile.runs_on_this_machine:
        pytest.skip(f"this CPU cannot run {profile_name} code (the Arm test below covers compile-only)")
    result = build_artifact(odd_width_onnx, profile, tmp_path / "art", tuning_log="defaults")
    sources = result.manifest.tuning["schedule_sources"]
    assert {"stem", "depthwise", "pointwise", "dense"} <= set(sources)
    assert all(counts["raw"] == 0 and counts["log"] == 0 for counts in sources.values()), sources
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4 and result.parity.top5_identical


def test_arm_build_emits_neon_fma_in_every_convolution(odd_width_onnx):
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.targets import load_profile

    compiled = compile_relax(import_onnx(odd_width_onnx)[0], load_profile("arm-cortex-a72"))
    assert all(c["raw"] == 0 for c in compiled.schedule_sources.values())
    (library,) = [m for m in compiled.executable.mod.imports if m.kind == "llvm"]
    functions = _functions(library.inspect_source("asm"))
    kernels = [n for n in functions if n.startswith("fused_conv2d") and n.endswith("_prepacked_compute_")]
    assert len(kernels) >= 5, sorted(functions)[:20]
    for name in kernels:
        # A kernel's work runs in the parallel lambdas its body launches; look there too.
        code = functions[name] + "".join(functions.get(lam, "") for lam in re.findall(r"\.L__tvm_parallel_lambda[.\d]*", functions[name]))
        assert re.search(r"\bfmla\s+v\d+\.[24]s", code), f"{name}: no NEON fmla"
        assert "TVMBackendAllocWorkspace" not in code, f"{name}: its register tile is allocated on the heap"


def _functions(asm: str) -> dict[str, str]:
    """Function name -> its assembly text, from the `.type NAME,@function` markers."""
    parts = re.split(r"^\s*\.type\s+([\w.$]+),@function\n", asm, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ppcls_mobilenetv2_x0_75"])  # x1.5 builds alike; one keeps `make test` short
def test_card_widths_without_a_log_build_with_default_schedules_and_parity(exported_onnx, tmp_path, avx2_profile, model):
    from tvmdeploy.compile.build import build_artifact

    result = build_artifact(exported_onnx(model), avx2_profile, tmp_path / "art", tuning_log="defaults")
    assert all(c["raw"] == 0 for c in result.manifest.tuning["schedule_sources"].values())
    assert result.parity.passed and result.parity.top5_identical


@pytest.mark.parametrize("profile_name", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("shape", [(1, 3, 224, 224), (2, 3, 40, 48), (1, 5, 7, 9)])
def test_nchw_to_nhwc_transpose_is_vectorised_along_the_input_rows(profile_name, shape):
    """The model input's layout change: its output's last axis (3 channels) is shorter than a vector, so the
    rule vectorises the axis the input is contiguous in (W), when W holds whole vectors; values stay exact."""
    import numpy as np
    import tvm
    from tvm import te

    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules.cpu import schedule_kernel
    from tvmdeploy.compile.schedules.cpu_vector import vector_unit
    from tvmdeploy.targets import load_profile

    profile = load_profile(profile_name)
    n, c, h, w = shape
    source = te.placeholder(shape, name="input")
    result = te.compute((n, h, w, c), lambda b, y, x, k: source[b, k, y, x], name="T_transpose")
    target = make_target(profile)
    sch = schedule_kernel(te.create_prim_func([source, result]).with_attr("global_symbol", "main"), target)
    assert sch is not None
    lanes = vector_unit(target).lanes
    if w % lanes == 0:
        (vector_loop,) = [line for line in sch.mod.script().splitlines() if "T.vectorized" in line]
        # The vector loop binds the block axis the input's last dimension is indexed by (W): contiguous loads.
        loop_var = re.search(r"for (\w+) in T\.vectorized", vector_loop).group(1)
        assert re.search(rf"v_x = T\.axis\.spatial\({w}, [^)]*\b{loop_var}\)", sch.mod.script()), sch.mod.script()
    if not profile.runs_on_this_machine:
        return
    library = tvm.compile(sch.mod, target=target)
    data = np.random.default_rng(0).standard_normal(shape).astype("float32")
    out = tvm.runtime.tensor(np.zeros((n, h, w, c), "float32"))
    library["main"](tvm.runtime.tensor(data), out)
    np.testing.assert_array_equal(out.numpy(), data.transpose(0, 2, 3, 1))


def _matmul_module(n: int, k: int, m: int):
    import tvm
    from tvm import te

    a = te.placeholder((n, k), name="a")
    b = te.placeholder((k, m), name="b")
    r = te.reduce_axis((0, k), name="r")
    c = te.compute((n, m), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="c")
    func = te.create_prim_func([a, b, c]).with_attr("global_symbol", "matmul").with_attr("layout_free_buffers", [1])
    return tvm.IRModule({"matmul": func})


@pytest.mark.parametrize(("shape", "weights_first"), [((49, 1920, 640), True), ((3136, 48, 288), False), ((56, 24, 24), False)])
def test_the_larger_operand_is_swept_once_and_values_stay_exact(shape, weights_first):
    """A late layer's megabytes of weights over a 7x7 map: weight panels outermost, each read once; an early
    layer's large activation: row tiles outermost. Either way (and with 3-register tiles) the values are exact."""
    import numpy as np
    import tvm

    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules.cpu import schedule_kernel
    from tvmdeploy.targets import load_profile

    profile = load_profile("x86-avx512" if load_profile("x86-avx512").runs_on_this_machine else "x86-avx2")
    target = make_target(profile)
    sch = schedule_kernel(_matmul_module(*shape)["matmul"], target)
    (parallel_loop,) = re.findall(r"for (\w+) in T\.parallel", sch.mod.script())
    assert parallel_loop == ("j_0_i_0_fused" if weights_first else "i_0_j_0_fused"), sch.mod.script()
    library = tvm.compile(sch.mod, target=target)
    rng = np.random.default_rng(0)
    n, k, m = shape
    a, b = rng.standard_normal((n, k)).astype("float32"), rng.standard_normal((k, m)).astype("float32")
    out = tvm.runtime.tensor(np.zeros((n, m), "float32"))
    library["matmul"](tvm.runtime.tensor(a), tvm.runtime.tensor(b), out)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-4, atol=1e-3)


def test_a_model_of_tiny_kernels_runs_them_on_one_thread_and_a_large_one_in_parallel():
    """Waking a thread pool costs tens of microseconds: kernels that short on average stay on one thread."""
    from tvmdeploy.compile.pipeline import make_target
    from tvmdeploy.compile.schedules.cpu import RegisterBlockedReduction, default_cpu_rules, worth_parallel
    from tvmdeploy.targets import load_profile

    tiny, large = _matmul_module(16, 32, 64), _matmul_module(784, 960, 160)
    assert not worth_parallel(tiny) and worth_parallel(large)
    target = make_target(load_profile("x86-avx512"))
    for parallel in (True, False):
        (rule,) = [r for r in default_cpu_rules(parallel) if isinstance(r, RegisterBlockedReduction)]
        sch = rule.apply(large["matmul"], target, False)
        assert ("T.parallel" in sch.mod.script()) is parallel
        assert "T.vectorized" in sch.mod.script()
