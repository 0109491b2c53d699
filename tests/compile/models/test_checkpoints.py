"""Checkpoints: round trips in all three formats, the numpy-only unpickler, and mismatch messages."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from tvmdeploy.compile.models import checkpoints, zoo
from tvmdeploy.runtime.errors import TvmDeployError

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from tvmdeploy.compile.models.export import export_onnx  # noqa: E402
from tvmdeploy.compile.models.torch_models import SpecMobileNetV2, randomize  # noqa: E402


def _source_model(name: str, seed: int = 123) -> SpecMobileNetV2:
    module = SpecMobileNetV2(zoo.get(name).spec())
    randomize(module, seed)
    return module.eval()


def _paddle_params(module: SpecMobileNetV2, structured: bool = False) -> dict[str, np.ndarray]:
    """The module's weights as PaddleClas would save them: Paddle names, Linear weight as [in, out]."""
    state = {k: v.numpy() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    spec = module.spec
    out = {}
    for c in spec.convs():
        if structured:
            out[f"{c.conv}.weight"] = state[f"{c.conv}.weight"]
            for paddle, torch_name in (("weight", "weight"), ("bias", "bias"), ("_mean", "running_mean"), ("_variance", "running_var")):
                out[f"{c.bn}.{paddle}"] = state[f"{c.bn}.{torch_name}"]
        else:
            out[f"{c.paddle}_weights"] = state[f"{c.conv}.weight"]
            for paddle, torch_name in (("scale", "weight"), ("offset", "bias"), ("mean", "running_mean"), ("variance", "running_var")):
                out[f"{c.paddle}_bn_{paddle}"] = state[f"{c.bn}.{torch_name}"]
    fc = spec.classifier
    weight_key, bias_key = (f"{fc.key}.weight", f"{fc.key}.bias") if structured else ("fc10_weights", "fc10_offset")
    out[weight_key] = np.ascontiguousarray(state[f"{fc.key}.weight"].T)
    out[bias_key] = state[f"{fc.key}.bias"]
    return out


def _assert_onnx_matches(onnx_path: Path, module: SpecMobileNetV2) -> None:
    x = np.random.default_rng(7).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def _assert_loads_identically(name: str, path: Path, source: SpecMobileNetV2) -> None:
    target = SpecMobileNetV2(zoo.get(name).spec())
    digest = checkpoints.load_into(target, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_torchvision_pth_round_trip_through_onnx(tmp_path):
    name = "torchvision_mobilenet_v2"
    source = _source_model(name)
    ckpt = tmp_path / "mobilenet_v2.pth"
    torch.save(source.state_dict(), ckpt)
    result = export_onnx(name, tmp_path / "tv.onnx", weights=ckpt)
    assert result.weights == "sha256:" + hashlib.sha256(ckpt.read_bytes()).hexdigest()
    _assert_onnx_matches(result.path, source)


def test_timm_safetensors_round_trip_through_onnx(tmp_path):
    from safetensors.torch import save_file

    name = "timm_mobilenetv2_100"
    source = _source_model(name)
    ckpt = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(ckpt))
    result = export_onnx(name, tmp_path / "timm.onnx", weights=ckpt)
    _assert_onnx_matches(result.path, source)


def test_timm_pth_without_bn_counters_and_with_wrappers(tmp_path):
    # Training checkpoints wrap the state dict and may prefix keys with `module.`; counters are optional.
    name = "timm_mobilenetv2_100"
    source = _source_model(name)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    ckpt = tmp_path / "train.pth"
    torch.save({"epoch": 3, "state_dict": state}, ckpt)
    _assert_loads_identically(name, ckpt, source)


def test_ppcls_pdparams_round_trip_through_onnx(tmp_path):
    name = "ppcls_mobilenetv2_x0_25"
    source = _source_model(name)
    ckpt = tmp_path / "MobileNetV2_x0_25_pretrained.pdparams"
    with open(ckpt, "wb") as f:
        pickle.dump(_paddle_params(source), f, protocol=4)
    result = export_onnx(name, tmp_path / "pp.onnx", weights=ckpt)
    _assert_onnx_matches(result.path, source)


@pytest.mark.parametrize("protocol", [2, 4])
def test_ppcls_pdparams_structured_names_and_name_table(tmp_path, protocol):
    # Newer paddle.save writes structured names plus a name table; protocol 2 pickles bytes via _codecs.
    name = "ppcls_mobilenetv2_x0_5"
    source = _source_model(name)
    params = _paddle_params(source, structured=True)
    params["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(params)}
    ckpt = tmp_path / "structured.pdparams"
    with open(ckpt, "wb") as f:
        pickle.dump(params, f, protocol=protocol)
    _assert_loads_identically(name, ckpt, source)


def test_paddle_names_cover_every_tensor():
    spec = zoo.get("ppcls_mobilenetv2_x1_0").spec()
    own = {k for k in SpecMobileNetV2(spec).state_dict() if not k.endswith("num_batches_tracked")}
    mapping = checkpoints.paddle_key_map(spec)
    by_param_name = {target for name, (target, _) in mapping.items() if "." not in name}
    assert by_param_name == own
    assert {
        "conv1_1_weights",
        "conv1_1_bn_scale",
        "conv2_1_expand_bn_offset",
        "conv8_1_linear_bn_mean",
        "conv9_bn_variance",
        "fc10_weights",
        "fc10_offset",
    } <= set(mapping)


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pdparams_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pdparams"
    ckpt.write_bytes(pickle.dumps({"conv1_1_weights": _RunsShell(marker)}, protocol=2))
    with pytest.raises(TvmDeployError, match=r"not a plain Paddle \.pdparams.*refusing to load (posix|os)\.system"):
        checkpoints.load_pdparams(ckpt)
    assert not marker.exists()
    with pytest.raises(TvmDeployError):
        export_onnx("ppcls_mobilenetv2_x0_25", tmp_path / "x.onnx", weights=ckpt)
    assert not marker.exists()


def test_pdparams_rejects_object_arrays(tmp_path):
    ckpt = tmp_path / "objects.pdparams"
    ckpt.write_bytes(pickle.dumps({"fc10_offset": np.array([1, "a"], dtype=object)}))
    with pytest.raises(TvmDeployError):
        checkpoints.load_pdparams(ckpt)


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path):
    # A torchvision checkpoint for the wrong width: shapes differ; a timm one: names differ.
    wrong_width = {k: v for k, v in SpecMobileNetV2(zoo.get("ppcls_mobilenetv2_x0_5").spec()).state_dict().items()}
    ckpt = tmp_path / "x05.pth"
    torch.save(wrong_width, ckpt)
    with pytest.raises(TvmDeployError) as info:
        checkpoints.load_into(SpecMobileNetV2(zoo.get("ppcls_mobilenetv2_x1_0").spec()), ckpt)
    message = str(info.value)
    assert "shape mismatches" in message and "conv1._conv.weight: checkpoint [16, 3, 3, 3] vs model [32, 3, 3, 3]" in message
    assert "\n" not in message

    timm_state = SpecMobileNetV2(zoo.get("timm_mobilenetv2_100").spec()).state_dict()
    ckpt = tmp_path / "timm.pth"
    torch.save(timm_state, ckpt)
    with pytest.raises(TvmDeployError, match=r"262 missing keys \(features\.0\.0\.weight, .*262 unexpected keys \(conv_stem\.weight"):
        checkpoints.load_into(SpecMobileNetV2(zoo.get("torchvision_mobilenet_v2").spec()), ckpt)


def test_bad_weight_files(tmp_path):
    module = SpecMobileNetV2(zoo.get("torchvision_mobilenet_v2").spec())
    with pytest.raises(TvmDeployError, match="does not exist"):
        checkpoints.load_into(module, tmp_path / "missing.pth")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(TvmDeployError, match="unknown weights format '.h5'"):
        checkpoints.load_into(module, tmp_path / "w.h5")
    (tmp_path / "w.pdparams").write_bytes(pickle.dumps({}))
    with pytest.raises(TvmDeployError, match="PaddleClas checkpoint but the model is a torchvision one"):
        checkpoints.load_into(module, tmp_path / "w.pdparams")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(TvmDeployError, match="cannot load .*junk.pth as a torch state dict"):
        checkpoints.load_into(module, tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(TvmDeployError, match="cannot load .*junk.safetensors as safetensors"):
        checkpoints.load_into(module, tmp_path / "junk.safetensors")


def test_pth_with_pickled_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pth"
    torch.save({"features.0.0.weight": _RunsShell(marker)}, ckpt)
    with pytest.raises(TvmDeployError, match="cannot load"):
        checkpoints.load_into(SpecMobileNetV2(zoo.get("torchvision_mobilenet_v2").spec()), ckpt)
    assert not marker.exists()
