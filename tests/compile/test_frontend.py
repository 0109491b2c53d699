"""ONNX front end: a good model imports with a static shape; every kind of bad input is a one-line error."""

import numpy as np
import onnx
import pytest
from onnx import helper

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
    with pytest.raises(TvmDeployError, match=r"dynamic dims \[1, 3, '\?', '\?'\].*--input-shape"):
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
        [helper.make_node("Relu", ["input"], ["out"])], "g",
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
    with pytest.raises(TvmDeployError, match="unsupported ONNX operator.*LpNormalization"):
        import_onnx(path)
    assert model.graph.node[0].op_type == "LpNormalization"


def test_detached_weights_become_inputs(tiny_onnx):
    import numpy as np
    import tvm
    from tvm import relax

    from tvmdeploy.compile.reference import OrtModel

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
    from tvmdeploy.compile.reference import OrtModel

    path = onnx_with_batch(tiny_onnx(), 3, tmp_path / "b3.onnx")
    out = OrtModel(path).run(np.zeros((3, 3, 16, 16), np.float32))
    assert out.shape == (3, 10)
