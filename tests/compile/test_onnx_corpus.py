"""Bring your own ONNX: tiny inverted-residual nets as other projects write them, exported by both PyTorch
exporters at several opsets, each built for the host with parity against ONNX Runtime on the original file.

The nets use what real exports contain: TF-style "same" padding computed from the input's run-time shape
(timm's Conv2dSame), hard-swish, squeeze-and-excitation, SiLU, ReLU6, grouped convolution, and an NHWC
input transposed inside the graph (as tf2onnx writes them). Random weights, no downloads.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="the corpus is exported from torch (the [export] extra)")
nn = torch.nn
F = torch.nn.functional

CLASSES = 10
SIZE = 64


def same_pad(size, k: int, s: int):
    """TF "same" padding of one spatial dim, as timm computes it: traced ops under TorchScript, SymInts under dynamo."""
    if isinstance(size, torch.Tensor):  # TorchScript tracing: sizes are tensors -> Shape -> Gather -> arithmetic -> Pad
        return torch.clamp((torch.ceil(size / s) - 1) * s + k - size, min=0).to(torch.int64)
    return torch.sym_max((-(-size // s) - 1) * s + k - size, 0)


class SameConv(nn.Conv2d):
    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        ph, pw = same_pad(x.shape[-2], k, s), same_pad(x.shape[-1], k, s)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, gate=nn.Hardsigmoid):
        super().__init__()
        self.reduce, self.expand, self.gate = nn.Conv2d(channels, channels // 4, 1), nn.Conv2d(channels // 4, channels, 1), gate()

    def forward(self, x):
        return x * self.gate(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))


def conv_bn(cin, cout, k, s, act, groups=1, same=False):
    conv = (SameConv if same else nn.Conv2d)(cin, cout, k, s, 0 if same else k // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), act())


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, act, *, same=False, se=False, groups_pw=1):
        super().__init__()
        mid = cin * 4
        self.block = nn.Sequential(
            conv_bn(cin, mid, 1, 1, act, groups=groups_pw),
            conv_bn(mid, mid, 3, stride, act, groups=mid, same=same),
            SqueezeExcite(mid) if se else nn.Identity(),
            conv_bn(mid, cout, 1, 1, nn.Identity),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class Classifier(nn.Module):
    def __init__(self, stem_act, blocks, channels, *, same=False, nhwc=False, classes=CLASSES):
        super().__init__()
        self.nhwc = nhwc
        self.stem = conv_bn(3, 8, 3, 2, stem_act, same=same)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)  # tf2onnx: Transpose(perm=[0, 3, 1, 2]) right after the input
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def efficientnet_like(nhwc=False, classes=CLASSES):
    """TF "same" padding at run time, hard-swish, squeeze-and-excitation, SiLU (EfficientNet / MobileNetV3 style)."""
    return Classifier(
        nn.Hardswish,
        [
            InvertedResidual(8, 8, 1, nn.Hardswish, same=True, se=True),
            InvertedResidual(8, 16, 2, nn.SiLU, same=True, se=True),
        ],
        16,
        same=True,
        nhwc=nhwc,
        classes=classes,
    )


def mobilenet_like():
    """ReLU6, grouped pointwise convolution, residual add (MobileNetV2 / ShuffleNet style), symmetric padding."""
    return Classifier(
        nn.ReLU6,
        [
            InvertedResidual(8, 8, 1, nn.ReLU6, groups_pw=2),
            InvertedResidual(8, 16, 2, nn.ReLU6, groups_pw=2),
            InvertedResidual(16, 16, 1, nn.SiLU),
        ],
        16,
    )


NETS = {"efficientnet_like": efficientnet_like, "mobilenet_like": mobilenet_like}


def randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics (fresh BN layers are identities, which would hide folding bugs)."""
    torch.manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.5, 0.5)
    return net.eval()


def export(net: nn.Module, path: Path, exporter: str, opset: int, shape, *, dynamic_hw: bool = False) -> Path:
    x = torch.randn(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shape arithmetic: the point of the corpus
        if exporter == "torchscript":
            torch.onnx.export(net, (x,), str(path), opset_version=opset, dynamo=False, input_names=["input"], output_names=["logits"])
        else:
            dims = {0: torch.export.Dim("batch")}
            if dynamic_hw:
                dims |= {2: torch.export.Dim("height", min=16, max=512), 3: torch.export.Dim("width", min=16, max=512)}
            # The default external_data=True: the weights go to a side file M.onnx.data, as users get them.
            torch.onnx.export(
                net,
                (x,),
                str(path),
                opset_version=opset,
                dynamo=True,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=(dims,),
                verbose=False,
            )
    return path


# TorchScript at opset 17 (what the real model was) stays in the fast suite; the sweep is `slow`.
CASES = [
    pytest.param(
        net,
        exporter,
        opset,
        id=f"{net}-{exporter}-opset{opset}",
        marks=() if (exporter, opset) == ("torchscript", 17) else pytest.mark.slow,
    )
    for net in NETS
    for exporter in ("torchscript", "dynamo")
    for opset in (13, 17, 18)
]


@pytest.mark.parametrize("net,exporter,opset", CASES)
def test_corpus_builds_with_parity(net, exporter, opset, tmp_path, avx2_profile, capsys):
    import onnx

    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.frontend import default_opset

    # Dynamo exports of the "same"-padding net keep H and W symbolic: the build needs --input-shape.
    dynamic_hw = exporter == "dynamo" and net == "efficientnet_like"
    path = export(randomised(NETS[net]()), tmp_path / f"{net}.onnx", exporter, opset, (1, 3, SIZE, SIZE), dynamic_hw=dynamic_hw)
    written = default_opset(onnx.load(str(path)))
    if written != opset:  # dynamo in torch 2.13 implements 18+ and keeps 18 when it cannot convert down
        pytest.skip(f"torch {torch.__version__}'s {exporter} exporter wrote opset {written} when asked for {opset}")
    side_file = path.with_name(path.name + ".data")
    assert side_file.is_file() == (exporter == "dynamo")  # dynamo keeps the weights beside the graph by default
    original = path.read_bytes()
    result = build_artifact(path, avx2_profile, tmp_path / "art", input_shape=[1, 3, SIZE, SIZE] if dynamic_hw else None)
    assert result.parity is not None and result.parity.passed, result.parity
    assert result.parity.max_abs_diff <= 1e-4 and result.parity.top5_identical
    assert result.manifest.output.shape == [1, CLASSES]
    # Parity was checked against the user's file, which the artifact keeps unchanged, or, with its weights in a
    # side file, saved as one self-contained file (the artifact never depends on a file beside the user's model).
    kept = tmp_path / "art" / "model.onnx"
    assert path.read_bytes() == original
    if side_file.exists():
        assert not (tmp_path / "art" / side_file.name).exists()
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in onnx.load(str(kept)).graph.initializer)
    else:
        assert kept.read_bytes() == original
    # Not 224x224 and not 1000 classes: `run` preprocesses to the model's 64x64 and shows class indices.
    assert_run_agrees_with_onnxruntime(tmp_path / "art", path, _photos(tmp_path / "photos", 2), capsys)


def test_nhwc_input_transposed_in_graph(tmp_path, avx2_profile, capsys):
    import onnx

    from tvmdeploy.compile.build import build_artifact

    path = export(randomised(efficientnet_like(nhwc=True)), tmp_path / "nhwc.onnx", "torchscript", 13, (1, SIZE, SIZE, 3))
    assert onnx.load(str(path)).graph.node[0].op_type == "Transpose"
    result = build_artifact(path, avx2_profile, tmp_path / "art")
    assert result.parity is not None and result.parity.passed, result.parity
    assert result.manifest.input.shape == [1, SIZE, SIZE, 3]
    assert result.manifest.preprocess["layout"] == "NHWC" and result.manifest.preprocess["crop"] == SIZE
    assert_run_agrees_with_onnxruntime(tmp_path / "art", path, _photos(tmp_path / "photos", 2), capsys)


def assert_run_agrees_with_onnxruntime(art: Path, onnx_path: Path, photos: Path, capsys) -> None:
    """`tvmdeploy run` on a folder: every image classified with the artifact's labels, and its top-5 is ONNX
    Runtime's on the user's file, fed the same image preprocessed for the model's input (layout and size)."""
    from tvmdeploy.compile.measure.reference import OrtModel
    from tvmdeploy.runtime.artifact import read_manifest
    from tvmdeploy.runtime.preprocess import PreprocessConfig, load_image
    from tvmdeploy.tools.cli.main import main

    manifest = read_manifest(art)
    capsys.readouterr()
    assert main(["run", str(art), str(photos), "--json"]) == 0, capsys.readouterr().err
    results = json.loads(capsys.readouterr().out)["results"]
    config = PreprocessConfig.for_input(manifest.input.shape)
    ort = OrtModel(onnx_path)
    for result in results:
        expected = ort.run(load_image(result["image"], config)[np.newaxis])[0]
        assert [p["index"] for p in result["top"]] == list(np.argsort(-expected, kind="stable")[:5])
        if manifest.num_classes != 1000:
            assert all(p["label"] == f"class {p['index']}" for p in result["top"])
    assert len(results) == len(list(photos.iterdir()))


@pytest.fixture(scope="module")
def own_artifact(tmp_path_factory, avx2_profile):
    """The real-world case of issue 11: an ImageNet classifier (1000 classes: `run` shows ImageNet labels) exported
    by TorchScript at opset 17 with run-time "same" padding, 224x224, built by the CLI."""
    from tvmdeploy.tools.cli.main import main

    folder = tmp_path_factory.mktemp("own")
    path = export(randomised(efficientnet_like(classes=1000)), folder / "own.onnx", "torchscript", 17, (1, 3, 224, 224))
    code = main(["build", str(path), "--profile", avx2_profile.name, "-o", str(folder / "art")])
    assert code == 0
    return folder


def _photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (240 + 10 * i, 260, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_own_model_runs_benches_and_compares(own_artifact, capsys):
    from tvmdeploy.tools.cli.main import main

    art = own_artifact / "art"
    photos = _photos(own_artifact / "photos", 3)
    capsys.readouterr()
    assert main(["run", str(art), str(photos), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [Path(r["image"]).name for r in results] == ["p0.png", "p1.png", "p2.png"]
    assert all(len(r["top"]) == 5 for r in results)

    assert main(["bench", str(art), "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["parity"]["max_abs_diff"] <= 1e-4 and len(bench["results"]) == 2

    out = own_artifact / "compare"
    assert (
        main(
            [
                "compare",
                str(art),
                "--baselines",
                "onnxruntime",
                "--runs",
                "3",
                "--warmup",
                "1",
                "--min-seconds",
                "0",
                "--no-chart",
                "--format",
                "json",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) >= 2 and all(r["status"] == "ok" for r in rows), rows
