"""Export: ONNX Runtime reproduces the torch module; the graph and metadata are what the build step expects."""

from __future__ import annotations

import numpy as np
import pytest

from tvmdeploy.compile.models import export
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.cli.main import main

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# Ops TVM Relax's ONNX importer and every runtime we target handle; BN is folded into Conv.
PLAIN_OPS = {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm", "Constant"}


def _run_ort(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@pytest.mark.parametrize("name", ["torchvision_mobilenet_v2", "timm_mobilenetv2_100", "ppcls_mobilenetv2_x1_0"])
def test_onnx_runtime_matches_torch(exported_onnx, name):
    path = exported_onnx(name)
    module, tag = export.build_torch_model(name, seed=0)
    assert tag == "random:seed=0"
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = _run_ort(path, x)
    assert got.shape == (1, 1000)
    # Random BN statistics and weights keep logits O(1): a check on all-zero logits would prove nothing.
    assert expected.std() > 0.1
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_graph_io_ops_and_metadata(exported_onnx):
    model = onnx.load(str(exported_onnx("torchvision_mobilenet_v2")))
    onnx.checker.check_model(model)
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp), inp.type.tensor_type.elem_type) == ("input", [1, 3, 224, 224], onnx.TensorProto.FLOAT)
    assert (out.name, dims(out)) == ("logits", [1, 1000])
    assert {n.op_type for n in model.graph.node} <= PLAIN_OPS
    assert model.opset_import[0].version == export.DEFAULT_OPSET
    assert export.read_metadata(exported_onnx("torchvision_mobilenet_v2")) == {
        "tvmdeploy.model": "torchvision_mobilenet_v2",
        "tvmdeploy.weights": "random:seed=0",
        "tvmdeploy.labels": "imagenet1k",
    }


def test_seed_determines_weights():
    a, _ = export.build_torch_model("ppcls_mobilenetv2_x0_25", seed=5)
    b, _ = export.build_torch_model("ppcls_mobilenetv2_x0_25", seed=5)
    c, _ = export.build_torch_model("ppcls_mobilenetv2_x0_25", seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["conv1._batch_norm.running_mean"], sc["conv1._batch_norm.running_mean"])
    assert not torch.equal(sa["conv1._batch_norm.running_var"], torch.ones_like(sa["conv1._batch_norm.running_var"]))


def test_cli_export_with_seed_and_opset(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    assert main(["export", "ppcls_mobilenetv2_x0_25", "-o", str(path), "--seed", "3", "--opset", "13"]) == 0
    assert "random weights" in capsys.readouterr().out
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 13
    assert export.read_metadata(path)["tvmdeploy.weights"] == "random:seed=3"
    assert export.read_metadata(path)["tvmdeploy.model"] == "ppcls_mobilenetv2_x0_25"


def test_cli_export_errors(tmp_path, capsys):
    assert main(["export", "resnet50", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "error: unknown model 'resnet50'; valid names: torchvision_mobilenet_v2" in capsys.readouterr().err
    assert main(["export", "timm_mobilenetv2_100", "-o", str(tmp_path / "nowhere" / "m.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "timm_mobilenetv2_100", "-o", str(tmp_path / "m.onnx"), "--opset", "99"]) == 2
    assert "error: opset 99 is not supported; choose 9..20" in capsys.readouterr().err
    with pytest.raises(TvmDeployError, match="weights file .* does not exist"):
        export.export_onnx("timm_mobilenetv2_100", tmp_path / "m.onnx", weights=tmp_path / "none.pth")


def test_tvm_relax_imports_the_export(exported_onnx):
    pytest.importorskip("tvm")
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(onnx.load(str(exported_onnx("timm_mobilenetv2_100"))), shape_dict={"input": [1, 3, 224, 224]})
    assert "main" in [gv.name_hint for gv in mod.get_global_vars()]
