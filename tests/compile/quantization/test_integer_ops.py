"""INT8 build: QDQ patterns become integer kernels (VNNI on x86), bit-exact with ONNX Runtime; bad forms refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import save_graph

from tvmdeploy.runtime.errors import TvmDeployError

VNNI_PROFILE = "x86-icelake-server"


def _block_net(path: Path, width: int = 16) -> Path:
    """stem 3x3 s2 -> ReLU6 -> depthwise 3x3 -> ReLU6 -> 1x1 expand 16->80 -> ReLU6 -> 1x1 project 80->16
    -> + residual -> GlobalAveragePool -> Gemm: MobileNetV2's op mix with channel counts VNNI takes (80: a tile
    of one register per row, as in x0.25's last layers). `width` 18 (x0.75's count, not whole dot-product
    groups of 4) makes it 18 -> 90 -> 18."""
    rng = np.random.default_rng(3)

    def weight(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    def bias(name, n):
        return numpy_helper.from_array((rng.standard_normal(n) * 0.1).astype(np.float32), name)

    c = width
    six = numpy_helper.from_array(np.array(6.0, np.float32), "six")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    nodes = [
        helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Clip", ["c0", "zero", "six"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], group=c),
        helper.make_node("Clip", ["c1", "zero", "six"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
        helper.make_node("Clip", ["c2", "zero", "six"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),
        helper.make_node("Add", ["c3", "r1"], ["sum"]),
        helper.make_node("GlobalAveragePool", ["sum"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
    ]
    hidden = 5 * width
    initializers = [
        weight("w0", (c, 3, 3, 3)),
        bias("b0", c),
        weight("w1", (c, 1, 3, 3)),
        bias("b1", c),
        weight("w2", (hidden, c, 1, 1)),
        bias("b2", hidden),
        weight("w3", (c, hidden, 1, 1)),
        bias("b3", c),
        weight("fc", (16, c)),
        bias("fcb", 16),
        six,
        zero,
    ]
    return save_graph(path, nodes, {"input": [1, 3, 32, 32]}, {"logits": [1, 16]}, initializers, name="block")


@pytest.fixture(scope="module")
def quantized_block(tmp_path_factory, calibration_photos) -> Path:
    from tvmdeploy.compile.quantization.calibrate import quantize_model

    folder = tmp_path_factory.mktemp("int8")
    out = folder / "block.int8.onnx"
    quantize_model(_block_net(folder / "block.onnx"), calibration_photos, out, progress=False)
    return out


@pytest.fixture(scope="module")
def vnni_build(quantized_block, tmp_path_factory):
    """The QDQ net built for the VNNI profile (verified against ONNX Runtime where this CPU runs it)."""
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    profile = load_profile(VNNI_PROFILE)
    result = build_artifact(quantized_block, profile, tmp_path_factory.mktemp("vnni") / "art", verify=profile.runs_on_this_machine)
    return profile, result


def test_every_convolution_and_the_classifier_become_integer_kernels(vnni_build):
    _, result = vnni_build
    integer = result.manifest.tuning["integer_kernels"]
    for op_class in ("stem", "depthwise", "pointwise", "dense"):
        count, total = integer[op_class]
        assert count == total >= 1, integer
    assert result.manifest.tuning["float_emulated"] == []
    assert result.integer.endswith("float emulation: none")


def test_the_build_reports_the_agreement_quantize_recorded_in_the_model(vnni_build, quantized_block):
    from tvmdeploy.compile.models.export import META_INT8_AGREEMENT, read_metadata
    from tvmdeploy.compile.quantization.agreement import INT8_AGREEMENT, Agreement, agreement_summary

    recorded = Agreement.parse(read_metadata(quantized_block)[META_INT8_AGREEMENT])
    assert recorded.images >= 1 and 0.0 <= recorded.top1 <= 1.0
    _, result = vnni_build
    assert Agreement.parse(result.manifest.extra[INT8_AGREEMENT]) == recorded
    assert result.agreement.startswith(recorded.summary()) and "tvmdeploy quantize" in result.agreement
    # A QDQ file quantized elsewhere carries none: said, not guessed.
    assert agreement_summary({}).startswith("int8 vs fp32: not recorded")


def test_int8_build_matches_onnx_runtime_on_the_same_qdq_file(vnni_build):
    profile, result = vnni_build
    if not profile.runs_on_this_machine:
        pytest.skip(f"this CPU cannot run {VNNI_PROFILE} code (the build above still compiled it)")
    parity = result.parity
    assert parity.passed and parity.step > 0
    # Same int32 accumulators, same float32 multipliers, same rounding: ONNX Runtime's logits to the step.
    assert parity.max_abs_diff <= parity.step / 2, parity.summary()


# x86 without VNNI: vpmaddwd on weights widened to 16 bits per load (vpmovsxbw). LLVM also emits vpmaddwd for a
# plain int32 multiply of small values, on weights widened to 32 bits (vpmovsxbd): the pair tells them apart.
# ARM without the dot product (a72, a53): the int32 loop over 8-bit operands, which LLVM turns into widening smlal.
@pytest.mark.parametrize(
    ("profile_name", "instructions"),
    [(VNNI_PROFILE, ["vpdpbusd"]), ("arm-cortex-a76", ["sdot"]), ("x86-avx2", ["vpmaddwd", "vpmovsxbw"]), ("arm-cortex-a72", ["smlal"])],
)
def test_pointwise_and_dense_kernels_run_on_the_targets_8_bit_multiply_add(quantized_block, profile_name, instructions):
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.targets import load_profile

    compiled = compile_relax(import_onnx(quantized_block)[0], load_profile(profile_name))
    functions = _functions(compiled)
    dots = {name for name, code in functions.items() if all(re.search(rf"\b{i}\b", code) for i in instructions)}
    # Two pointwise convolutions and the classifier (their parallel bodies are lambdas of their own).
    assert len(dots) >= 3, sorted(dots)
    assert compiled.float_emulated == [] and compiled.raw_kernels == {}
    # Register tiles live on the stack (in registers, after LLVM): a heap call per tile halved the speed.
    assert not [name for name, code in functions.items() if "TVMBackendAllocWorkspace" in code]


def test_channel_counts_that_are_not_groups_of_four_still_run_on_vpdpbusd_and_agree(tmp_path, calibration_photos):
    """x0.75's 18 channels: input channels padded to 20, output channels to 24 and cut back (integer_ops)."""
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.quantization.calibrate import quantize_model
    from tvmdeploy.targets import load_profile

    model = tmp_path / "odd.int8.onnx"
    quantize_model(_block_net(tmp_path / "odd.onnx", width=18), calibration_photos, model, progress=False)
    profile = load_profile(VNNI_PROFILE)
    compiled = compile_relax(import_onnx(model)[0], profile)
    assert compiled.float_emulated == [] and compiled.raw_kernels == {}
    dots = [name for name, code in _functions(compiled).items() if "vpdpbusd" in code and "conv2d" in name]
    assert len(dots) >= 2, sorted(dots)  # expand 18(+2)->90, project 90->18(+6)
    if profile.runs_on_this_machine:
        parity = build_artifact(model, profile, tmp_path / "art").parity
        assert parity.passed and parity.max_abs_diff <= parity.step / 2, parity.summary()


def _functions(compiled) -> dict[str, str]:
    """Function name -> assembly of a compiled model's LLVM module (a kernel's parallel body is a function too)."""
    (library,) = [m for m in compiled.executable.mod.imports if m.kind == "llvm"]
    parts = re.split(r"^\s*\.type\s+([\w.$]+),@function\n", library.inspect_source("asm"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_without_vnni_the_cli_builds_runs_and_benches_the_int8_model(quantized_block, tmp_path, capsys, calibration_photos):
    """x86-avx2 (no VNNI): build, run, bench and compare take the int8 artifact as they take a float one."""
    from tvmdeploy.runtime.artifact import read_manifest
    from tvmdeploy.targets import load_profile
    from tvmdeploy.tools.cli.main import main

    art = tmp_path / "avx2"
    runs = load_profile("x86-avx2").runs_on_this_machine
    assert main(["build", str(quantized_block), "--profile", "x86-avx2", "-o", str(art)] + ([] if runs else ["--no-verify"])) == 0
    printed = capsys.readouterr().out
    assert "float emulation: none" in printed and "int8 vs fp32 on" in printed
    assert read_manifest(art).tuning["float_emulated"] == []
    if not runs:
        pytest.skip("this CPU cannot run x86-avx2 code: built only")
    assert "PASS" in printed
    parity = read_manifest(art).parity
    assert parity["max_abs_diff"] <= parity["step"] / 2
    photo = next(p for p in sorted(calibration_photos.iterdir()) if p.is_file())
    assert main(["run", str(art), str(photo), "--topk", "2"]) == 0
    assert main(["bench", str(art), "--runs", "3", "--warmup", "1", "--min-seconds", "0"]) == 0
    printed = capsys.readouterr().out
    assert "PASS" in printed and "int8 vs fp32 on" in printed and "| TVM x86-avx2" in printed
    # compare: the artifact beside ONNX Runtime on the same QDQ file, its parity judged in output steps
    assert (
        main(
            [
                "compare",
                str(art),
                "--model",
                str(quantized_block),
                "--runs",
                "3",
                "--warmup",
                "1",
                "--min-seconds",
                "0",
                "--no-chart",
                "--baselines",
                "onnxruntime",
                "-o",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| TVM x86-avx2"))
    assert "| pass (" in row


def test_unsupported_quantization_forms_are_refused_in_one_line():
    import tvm
    from tvm import relax

    from tvmdeploy.compile.quantization.integer_ops import check_quantization_forms

    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            q = builder.emit(relax.op.quantize(x, relax.const(0.5, "float32"), relax.const(0, "int16"), axis=1, out_dtype="int16"))
            out = builder.emit_output(relax.op.dequantize(q, relax.const(0.5, "float32"), relax.const(0, "int16"), axis=1))
        builder.emit_func_output(out)
    with pytest.raises(TvmDeployError, match="unsupported quantization: int16 tensors") as caught:
        check_quantization_forms(builder.get())
    assert "\n" not in str(caught.value)
    assert isinstance(builder.get(), tvm.IRModule)


def test_output_step_is_the_scale_of_the_dequantize_that_writes_the_logits(quantized_block, tiny_onnx):
    from tvmdeploy.compile.measure.verify import INT8_OUTPUT_STEPS, compare_logits, output_step, rounding_steps

    model = onnx.load(str(quantized_block))
    scales = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    (last,) = [n for n in model.graph.node if n.output[0] == model.graph.output[0].name]
    assert last.op_type == "DequantizeLinear"
    step = output_step(quantized_block)
    assert step == pytest.approx(float(scales[last.input[1]])) and step > 0
    assert output_step(tiny_onnx()) == 0.0  # float logits: no step
    # One residual Add and one average pool requantize by formulas of their own: one step each, plus one.
    steps = rounding_steps(quantized_block)
    assert steps == max(INT8_OUTPUT_STEPS, 3)
    logits = np.linspace(-3, 3, 10)[None]
    within = compare_logits(logits + steps * step * 0.99, logits, 1e-4, "ort", step=step, steps=steps)
    beyond = compare_logits(logits + (steps + 1) * step, logits, 1e-4, "ort", step=step, steps=steps)
    assert within.passed and f"{steps} x output step" in within.summary()
    assert not beyond.passed


def test_a_signed_activation_model_runs_as_unsigned_on_x86_and_still_agrees(tmp_path, calibration_photos):
    """An S8S8 file (activations int8): x86's vpdpbusd takes unsigned data, so every activation moves by 128
    with its zero point; the same real values, the same integer arithmetic, ONNX Runtime's logits to the step."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.quantization.calibrate import _calibration_images, _Reader
    from tvmdeploy.runtime.preprocess import PreprocessConfig
    from tvmdeploy.targets import load_profile

    images, _ = _calibration_images(calibration_photos, PreprocessConfig.for_input([1, 3, 32, 32]), samples=4, progress=False)
    signed = tmp_path / "block.s8s8.onnx"
    quantize_static(
        str(_block_net(tmp_path / "block.onnx")),
        str(signed),
        _Reader("input", images, 1),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    profile = load_profile(VNNI_PROFILE)
    result = build_artifact(signed, profile, tmp_path / "art", verify=profile.runs_on_this_machine)
    assert result.manifest.tuning["float_emulated"] == []
    if result.parity is not None:
        assert result.parity.passed and result.parity.max_abs_diff <= result.parity.step / 2, result.parity.summary()


def _int4_or_blocked(path: Path, *, blocked: bool) -> Path:
    rng = np.random.default_rng(0)
    if blocked:
        weight = numpy_helper.from_array(rng.integers(-8, 8, (4, 4, 1, 1)).astype(np.int8), "w_q")
        scale = numpy_helper.from_array(np.full((4, 2, 1, 1), 0.1, np.float32), "w_s")
        dequantize = helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["wd"], axis=1, block_size=2)
        channels = 4
    else:
        weight = helper.make_tensor("w_q", TensorProto.INT4, [4, 3, 1, 1], rng.integers(-8, 8, 12).tolist())
        scale = numpy_helper.from_array(np.array(0.1, np.float32), "w_s")
        dequantize = helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["wd"])
        channels = 3
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "x_s", "x_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
        dequantize,
        helper.make_node("Conv", ["xd", "wd"], ["c"]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["logits"]),
    ]
    constants = [
        weight,
        scale,
        numpy_helper.from_array(np.array(0.02, np.float32), "x_s"),
        numpy_helper.from_array(np.array(128, np.uint8), "x_z"),
    ]
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("blocked", "says"), [(False, "int4 tensor 'w_q'"), (True, "node 'wd' uses blocked scales (block_size 2)")])
def test_build_refuses_4_bit_and_blocked_quantization_in_one_line(tmp_path, capsys, blocked, says):
    from tvmdeploy.tools.cli.main import main

    model = _int4_or_blocked(tmp_path / "q.onnx", blocked=blocked)
    code = main(["build", str(model), "--profile", "x86-avx2", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "\n" not in err
    assert f"unsupported quantization: {says}" in err
    assert not (tmp_path / "out").exists()


def _qdq_with_activations(path: Path, *, quantized_output: bool) -> Path:
    """A hand-written QDQ net (as other tools write them) that keeps a Relu between Conv and QuantizeLinear, with an
    output zero point (10) that makes it matter; its pooled output quantized or left in float."""
    rng = np.random.default_rng(5)

    def const(name, value, dtype):
        return numpy_helper.from_array(np.asarray(value, dtype), name)

    constants = [
        const("s_in", 0.02, np.float32),
        const("z_in", 128, np.uint8),
        const("w1", rng.integers(-100, 100, (8, 3, 3, 3)), np.int8),
        const("s_w1", 0.01, np.float32),
        const("s_1", 0.03, np.float32),
        const("z_1", 10, np.uint8),
        const("w2", rng.integers(-100, 100, (16, 8, 1, 1)), np.int8),
        const("s_w2", 0.01, np.float32),
        const("s_2", 0.01, np.float32),
        const("z_2", 5, np.uint8),
        const("s_g", 0.005, np.float32),
    ]
    pooled = ["g"]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "s_in", "z_in"], ["q0"]),
        helper.make_node("DequantizeLinear", ["q0", "s_in", "z_in"], ["d0"]),
        helper.make_node("DequantizeLinear", ["w1", "s_w1"], ["dw1"]),
        helper.make_node("Conv", ["d0", "dw1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("QuantizeLinear", ["r1", "s_1", "z_1"], ["q1"]),
        helper.make_node("DequantizeLinear", ["q1", "s_1", "z_1"], ["d1"]),
        helper.make_node("DequantizeLinear", ["w2", "s_w2"], ["dw2"]),
        helper.make_node("Conv", ["d1", "dw2"], ["c2"]),
        helper.make_node("QuantizeLinear", ["c2", "s_2", "z_2"], ["q2"]),
        helper.make_node("DequantizeLinear", ["q2", "s_2", "z_2"], ["d2"]),
        helper.make_node("GlobalAveragePool", ["d2"], ["g"]),
    ]
    if quantized_output:
        nodes += [helper.make_node("QuantizeLinear", ["g", "s_g"], ["qg"]), helper.make_node("DequantizeLinear", ["qg", "s_g"], ["dg"])]
        pooled = ["dg"]
    nodes.append(helper.make_node("Flatten", pooled, ["logits"]))
    return save_graph(path, nodes, {"input": [1, 3, 8, 8]}, {"logits": [1, 16]}, constants, name="acts")


def test_a_relu_before_a_quantize_folds_into_its_bounds(tmp_path):
    """With zero point 10, ReLU raises the lower bound to the zero point; a fold that lost it is off by whole
    activations, far beyond the step bound (it did: a later bounds check reused the output's bound names)."""
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    profile = load_profile("x86-avx2")
    result = build_artifact(
        _qdq_with_activations(tmp_path / "acts.onnx", quantized_output=True), profile, tmp_path / "art", verify=profile.runs_on_this_machine
    )
    assert result.manifest.tuning["float_emulated"] == []
    if result.parity is not None:  # the output step found through the Flatten after the last dequantize
        assert result.parity.passed and result.parity.step == pytest.approx(0.005), result.parity.summary()


def test_ops_left_on_dequantized_tensors_are_named_as_float_emulation(tmp_path):
    from tvm import relax

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import clip_to_relax_ops
    from tvmdeploy.compile.quantization.integer_ops import IntegerOps

    mod, _ = import_onnx(_qdq_with_activations(tmp_path / "float_out.onnx", quantized_output=False))
    rewrite = IntegerOps("uint8")
    rewrite(clip_to_relax_ops(relax.transform.CanonicalizeBindings()(mod)))
    assert rewrite.rewritten == {"conv": 2}
    assert rewrite.float_emulated == ["mean"]  # the pool's output is float in this file
