"""ONNX front end: a good model imports with a static shape; every kind of bad input is a one-line error."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx_graphs import save_graph

from tvmdeploy.compile.frontend import import_onnx, inspect_onnx, onnx_with_batch
from tvmdeploy.runtime.errors import TvmDeployError


def test_imports_tiny_model(tiny_onnx):
    mod, info = import_onnx(tiny_onnx())
    assert info.input_name == "input" and info.input_shape == [1, 3, 16, 16] and info.input_dtype == "float32"
    assert info.output_name == "logits" and len(info.sha256) == 64
    assert "main" in [gv.name_hint for gv in mod.get_global_vars()]


def test_batch_specialisation(tiny_onnx):
    _, info = import_onnx(tiny_onnx(), batch=4)
    assert info.input_shape == [4, 3, 16, 16]


def test_dynamic_dims_need_input_shape(tiny_onnx):
    path = tiny_onnx(input_dims=["N", 3, "H", "W"])
    with pytest.raises(TvmDeployError, match=r"input 'input' has dynamic dims \[1, 3, '\?', '\?'\]; pass input_shape 1,3,H,W"):
        inspect_onnx(path)
    assert inspect_onnx(path, input_shape=[2, 3, 16, 16]).input_shape == [2, 3, 16, 16]


def test_dynamic_batch_defaults_to_one(tiny_onnx):
    assert inspect_onnx(tiny_onnx(input_dims=["N", 3, 16, 16])).input_shape == [1, 3, 16, 16]


def test_input_shape_conflicting_with_fixed_dims(tiny_onnx):
    with pytest.raises(TvmDeployError, match="conflicts with the model's fixed dim 2"):
        inspect_onnx(tiny_onnx(), input_shape=[1, 3, 32, 32])


def test_missing_file(tmp_path):
    with pytest.raises(TvmDeployError, match="ONNX file not found"):
        import_onnx(tmp_path / "missing.onnx")


def test_directory(tmp_path):
    with pytest.raises(TvmDeployError, match="not a file"):
        import_onnx(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(TvmDeployError, match="empty"):
        import_onnx(tmp_path / "empty.onnx")


def test_not_onnx(tmp_path):
    path = tmp_path / "photo.onnx"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is a JPEG, not a protobuf" * 10)
    with pytest.raises(TvmDeployError, match="not a valid ONNX model"):
        import_onnx(path)


def test_truncated_file(tiny_onnx, tmp_path):
    data = tiny_onnx().read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TvmDeployError, match="not a valid ONNX model"):
        import_onnx(path)


def test_more_than_one_input(tiny_onnx):
    with pytest.raises(TvmDeployError, match="expected exactly one input.*found 2: input, extra0"):
        import_onnx(tiny_onnx(extra_inputs=1))


def test_non_4d_input(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["out"])],
        "g",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "flat.onnx"))
    with pytest.raises(TvmDeployError, match="is 2-D; expected a 4-D NCHW"):
        import_onnx(tmp_path / "flat.onnx")


def test_unsupported_operator(tiny_onnx):
    # A registered ONNX op (passes onnx.checker) that TVM's Relax importer has no converter for.
    path = tiny_onnx(op="LpNormalization")
    model = onnx.load(str(path))
    from tvmdeploy.compile.tvm_compile_api import supported_onnx_ops

    assert "LpNormalization" not in supported_onnx_ops()
    with pytest.raises(TvmDeployError, match=r"^cannot import .*tiny0.onnx: node 'c1' \(LpNormalization\): unsupported ONNX operator"):
        import_onnx(path)
    assert model.graph.node[0].op_type == "LpNormalization"


def test_detached_weights_become_inputs(tiny_onnx):
    import numpy as np
    import tvm
    from tvm import relax

    from tvmdeploy.compile.measure.reference import OrtModel

    path = tiny_onnx()
    mod, info = import_onnx(path, detach_weights=True)
    assert len(info.weights_params) == 3 and len(mod["main"].params) == 4
    executable = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    out = vm["main"](tvm.runtime.tensor(x), *info.weights_params).numpy()
    np.testing.assert_allclose(out, OrtModel(path).run(x), atol=1e-4)
    embedded, embedded_info = import_onnx(path)
    assert len(embedded["main"].params) == 1 and embedded_info.weights_params is None


def test_onnx_with_batch_runs_in_ort(tiny_onnx, tmp_path):
    from tvmdeploy.compile.measure.reference import OrtModel

    path = onnx_with_batch(tiny_onnx(), 3, tmp_path / "b3.onnx")
    out = OrtModel(path).run(np.zeros((3, 3, 16, 16), np.float32))
    assert out.shape == (3, 10)


def _single_node_model(path, node, *, opset=13, domains=(), initializers=(), out_shape=(1, 3, 8, 8)):
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, list(out_shape))],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_custom_domain_is_one_line(tmp_path):
    node = helper.make_node("FusedThing", ["input"], ["out"], name="vendor_op", domain="com.example")
    path = _single_node_model(tmp_path / "custom.onnx", node, domains=["com.example"])
    with pytest.raises(
        TvmDeployError, match=r"cannot import .*custom.onnx: node 'vendor_op' \(FusedThing\): custom operator domain 'com.example'"
    ):
        import_onnx(path)


def test_opset_newer_than_known_is_one_line(tmp_path):
    path = _single_node_model(
        tmp_path / "future.onnx", helper.make_node("Relu", ["input"], ["out"], name="r"), opset=onnx.defs.onnx_opset_version() + 5
    )
    with pytest.raises(TvmDeployError, match=r"node 'r' \(Relu\): ONNX opset \d+ is newer than this installation knows"):
        import_onnx(path)


def test_old_opset_is_upgraded_and_matches_the_original(tmp_path):
    # Opset 7 Upsample (scales as an attribute) only exists before opset 10; the version converter rewrites it.
    path = _single_node_model(
        tmp_path / "old.onnx",
        helper.make_node("Upsample", ["input"], ["out"], name="up", scales=[1.0, 1.0, 2.0, 2.0]),
        opset=7,
        out_shape=(1, 3, 16, 16),
    )
    mod, info = import_onnx(path)
    assert info.input_shape == [1, 3, 8, 8]
    assert _run_relax(mod, np.arange(192, dtype=np.float32).reshape(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def _run_relax(mod, x):
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def _same_pad_model(path, input_dims):
    """Conv with TF "same" padding computed at run time: Shape -> Gather -> arithmetic -> Concat -> Pad (as TorchScript exports)."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "fc"),
        numpy_helper.from_array(np.array([2], np.int64), "two"),
        numpy_helper.from_array(np.array([3], np.int64), "three"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([0, 0], np.int64), "zeros2"),
    ]
    nodes = [helper.make_node("Shape", ["input"], ["shape"], name="shape")]
    for axis, name in ((2, "h"), (3, "w_")):
        nodes += [
            helper.make_node("Gather", ["shape", f"idx{name}"], [f"{name}"], axis=0),
            # pad = (ceil(size/2) - 1) * 2 + 3 - size  (stride 2, kernel 3)
            helper.make_node("Add", [f"{name}", "one"], [f"{name}1"]),
            helper.make_node("Div", [f"{name}1", "two"], [f"{name}c"]),
            helper.make_node("Sub", [f"{name}c", "one"], [f"{name}c1"]),
            helper.make_node("Mul", [f"{name}c1", "two"], [f"{name}m"]),
            helper.make_node("Add", [f"{name}m", "three"], [f"{name}a"]),
            helper.make_node("Sub", [f"{name}a", f"{name}"], [f"{name}p"]),
            helper.make_node("Div", [f"{name}p", "two"], [f"{name}lo"]),
            helper.make_node("Sub", [f"{name}p", f"{name}lo"], [f"{name}hi"]),
        ]
        inits.append(numpy_helper.from_array(np.array([axis], np.int64), f"idx{name}"))
    nodes += [
        helper.make_node("Concat", ["zeros2", "hlo", "w_lo", "zeros2", "hhi", "w_hi"], ["pads"], axis=0),
        helper.make_node("Pad", ["input", "pads"], ["padded"], name="same_pad"),
        helper.make_node("Conv", ["padded", "w"], ["conv"], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["conv"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1),
    ]
    return save_graph(path, nodes, {"input": input_dims}, {"logits": [input_dims[0], 5]}, inits, name="same")


@pytest.mark.parametrize("dims", [[1, 3, 17, 20], ["N", 3, "H", "W"]])
def test_run_time_padding_is_folded_and_matches_the_original(tmp_path, dims):
    from tvmdeploy.compile.frontend import computed_shape_inputs
    from tvmdeploy.compile.measure.reference import OrtModel

    path = _same_pad_model(tmp_path / "same.onnx", dims)
    original = path.read_bytes()
    assert computed_shape_inputs(onnx.load(str(path)))
    mod, info = import_onnx(path, input_shape=None if isinstance(dims[2], int) else [1, 3, 17, 20])
    assert path.read_bytes() == original  # the user's file is never rewritten
    assert info.output_dims[1:] == [5]
    x = np.random.default_rng(0).standard_normal((1, 3, 17, 20)).astype(np.float32)
    np.testing.assert_allclose(_run_relax(mod, x), OrtModel(path).run(x), atol=1e-4)


def test_fold_shapes_leaves_plain_onnx(tmp_path):
    from tvmdeploy.compile.frontend import computed_shape_inputs, fold_shapes

    path = _same_pad_model(tmp_path / "same.onnx", ["N", 3, "H", "W"])
    folded = fold_shapes(onnx.load(str(path)), path, "input", [2, 3, 32, 32])
    assert computed_shape_inputs(folded) == []
    assert {n.domain for n in folded.graph.node} <= {""} and {o.domain for o in folded.opset_import} <= {"", "ai.onnx"}
    onnx.checker.check_model(folded)


def test_data_dependent_shape_names_node_and_input(tmp_path):
    # The Reshape target depends on the input's values, not its shape: no binding can fix it.
    nodes = [
        helper.make_node("ReduceMax", ["input"], ["mx"], keepdims=0),
        helper.make_node("Cast", ["mx"], ["mxi"], to=onnx.TensorProto.INT64),
        helper.make_node("Reshape", ["mxi", "one"], ["mx1"]),
        helper.make_node("Concat", ["minus1", "mx1"], ["target"], axis=0),
        helper.make_node("Reshape", ["input", "target"], ["out"], name="dyn_reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [None, None])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "one"), numpy_helper.from_array(np.array([-1], np.int64), "minus1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "dd.onnx"))
    with pytest.raises(
        TvmDeployError,
        match=r"node 'dyn_reshape' \(Reshape\): its shape \('target'\) is computed at run time "
        r"even with input 'input' bound to \[1, 3, 4, 4\]",
    ):
        import_onnx(tmp_path / "dd.onnx")


def test_cli_build_of_a_bad_model_is_one_line(tmp_path, capsys):
    from tvmdeploy.tools.cli.main import main

    node = helper.make_node("FusedThing", ["input"], ["out"], name="vendor_op", domain="com.example")
    path = _single_node_model(tmp_path / "custom.onnx", node, domains=["com.example"])
    code = main(["build", str(path), "--profile", "x86-avx2", "-o", str(tmp_path / "art")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot import ") and err.count("\n") == 1 and "Traceback" not in err
