"""Zoo: every card row's params/FLOPs from the pure-Python spec, and the spec against the torch module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tvmdeploy.compile.models import complexity, zoo
from tvmdeploy.compile.models.mobilenetv2_spec import make_divisible, ppcls_spec, timm_spec, torchvision_spec
from tvmdeploy.runtime.errors import TvmDeployError

CARD = Path(__file__).resolve().parents[4] / "shared" / "seeds" / "mobilenetv2_modelzoo_card.md"
ALL_NAMES = [
    "torchvision_mobilenet_v2",
    "timm_mobilenetv2_100",
    "ppcls_mobilenetv2_x0_25",
    "ppcls_mobilenetv2_x0_5",
    "ppcls_mobilenetv2_x0_75",
    "ppcls_mobilenetv2_x1_0",
    "ppcls_mobilenetv2_x1_5",
    "ppcls_mobilenetv2_x2_0",
    "ppcls_mobilenetv2_ssld",
]


def test_names_in_order():
    assert zoo.names() == ALL_NAMES


@pytest.mark.parametrize("name", ALL_NAMES)
def test_card_row_params_and_flops_within_1_percent(name):
    entry = zoo.get(name)
    assert entry.params / 1e6 == pytest.approx(entry.card.params_m, rel=0.01)
    assert entry.flops / 1e6 == pytest.approx(entry.card.flops_m, rel=0.01)


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if n.startswith("ppcls")])
def test_paddle_rows_match_paddle_counters_exactly(name):
    # paddle.summary / paddle.flops conventions reproduce the card to its printed precision.
    entry = zoo.get(name)
    assert round(entry.params / 1e6, 2) == round(entry.card.params_m, 2)
    assert round(entry.flops / 1e6, 2) == pytest.approx(entry.card.flops_m, abs=0.011)


def test_known_exact_counts():
    # torchvision's documented 3,504,872 parameters; Paddle adds BN running stats as parameters.
    assert complexity.trainable_params(torchvision_spec()) == 3_504_872
    assert complexity.trainable_params(timm_spec()) == 3_504_872
    assert complexity.count_params(ppcls_spec(1.0)) == 3_540_136
    assert complexity.count_flops(ppcls_spec(1.0)) == 327_842_368


@pytest.mark.skipif(not CARD.is_file(), reason="model card not present beside the checkout")
def test_registry_copies_the_card_table():
    rows = [line for line in CARD.read_text(encoding="utf-8").splitlines() if re.match(r"\|\s*(mobilenetv2|MobileNetV2)", line)]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert len(cells) == 9
    for entry, row in zip(zoo.ZOO.values(), cells):
        card_name, source, top1, top5, flops, params, size = row
        assert card_name == entry.card.card_name and entry.source in source and size == "224"
        assert (float(top1), float(top5), float(flops), float(params)) == (
            entry.card.top1,
            entry.card.top5,
            entry.card.flops_m,
            entry.card.params_m,
        )


def test_unknown_name_lists_valid_names():
    with pytest.raises(TvmDeployError, match="unknown model 'mobilenet_v9'.*torchvision_mobilenet_v2.*ppcls_mobilenetv2_ssld"):
        zoo.get("mobilenet_v9")


def test_listing_records():
    records = zoo.listing()
    assert [r["name"] for r in records] == ALL_NAMES
    assert set(records[0]) == {"name", "source", "width", "params_m", "flops_m", "top1", "top5"}
    assert records[2]["width"] == 0.25 and records[2]["top1"] == 53.21


def test_channel_rounding_rules():
    assert [make_divisible(c * 0.35) for c in (32, 16, 24, 1280)] == [16, 8, 8, 448]
    tv = torchvision_spec(0.5)
    assert tv.blocks[0].convs[0].out_ch == 16 and tv.classifier.in_features == 1280
    # PaddleClas truncates (int(c*scale)) and keeps a 1280 head unless the scale is above 1.
    pp = ppcls_spec(0.75)
    assert pp.blocks[0].convs[0].out_ch == 24 and pp.blocks[1].convs[-1].out_ch == 12
    assert pp.classifier.in_features == 1280 and ppcls_spec(1.5).classifier.in_features == 1920


def test_structure_per_source():
    tv, tm, pp = torchvision_spec(), timm_spec(), ppcls_spec()
    # torchvision and timm skip the expansion conv in the t=1 block; Paddle always expands (x1).
    assert [len(b.convs) for b in tv.blocks[:3]] == [1, 2, 3]
    assert [len(b.convs) for b in tm.blocks[:3]] == [1, 2, 3]
    assert [len(b.convs) for b in pp.blocks[:3]] == [1, 3, 3]
    assert sum(b.residual for b in tv.blocks) == sum(b.residual for b in pp.blocks) == 10
    assert tm.blocks[1].convs[0].conv == "blocks.0.0.conv_dw" and tm.blocks[1].convs[1].bn == "blocks.0.0.bn2"
    assert pp.blocks[2].convs[1].paddle == "conv3_1_dwise" and pp.blocks[3].convs[0].conv == "conv3.conv3_2._expand_conv._conv"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_analytic_params_equal_torch_module(name):
    pytest.importorskip("torch")
    from tvmdeploy.compile.models.torch_models import SpecMobileNetV2

    spec = zoo.get(name).spec()
    module = SpecMobileNetV2(spec)
    assert sum(p.numel() for p in module.parameters()) == complexity.trainable_params(spec)
    bn_stats = sum(b.numel() for k, b in module.named_buffers() if k.endswith(("running_mean", "running_var")))
    assert complexity.count_params(spec) - complexity.trainable_params(spec) == (bn_stats if spec.source == "ppcls" else 0)


def test_analytic_conv_macs_equal_torch_hooks():
    torch = pytest.importorskip("torch")
    from tvmdeploy.compile.models.mobilenetv2_spec import feature_sizes
    from tvmdeploy.compile.models.torch_models import SpecMobileNetV2

    spec = ppcls_spec(0.5)
    module = SpecMobileNetV2(spec).eval()
    macs = []

    def hook(conv, _inputs, output):
        macs.append(output.numel() * conv.weight[0].numel())

    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        module(torch.zeros(1, 3, 224, 224))
    analytic = [c.out_ch * o * o * (c.in_ch // c.groups) * c.kernel**2 for c, (_, o) in zip(spec.convs(), feature_sizes(spec))]
    assert macs == analytic


@pytest.mark.parametrize(
    "name, key, shape",
    [
        ("torchvision_mobilenet_v2", "features.1.conv.0.0.weight", [32, 1, 3, 3]),
        ("torchvision_mobilenet_v2", "features.1.conv.1.weight", [16, 32, 1, 1]),
        ("torchvision_mobilenet_v2", "features.1.conv.2.running_var", [16]),
        ("torchvision_mobilenet_v2", "features.2.conv.1.0.weight", [96, 1, 3, 3]),
        ("torchvision_mobilenet_v2", "features.17.conv.3.bias", [320]),
        ("torchvision_mobilenet_v2", "features.18.0.weight", [1280, 320, 1, 1]),
        ("torchvision_mobilenet_v2", "classifier.1.weight", [1000, 1280]),
        ("timm_mobilenetv2_100", "conv_stem.weight", [32, 3, 3, 3]),
        ("timm_mobilenetv2_100", "blocks.0.0.conv_pw.weight", [16, 32, 1, 1]),
        ("timm_mobilenetv2_100", "blocks.1.1.conv_dw.weight", [144, 1, 3, 3]),
        ("timm_mobilenetv2_100", "blocks.6.0.bn3.running_mean", [320]),
        ("timm_mobilenetv2_100", "conv_head.weight", [1280, 320, 1, 1]),
        ("timm_mobilenetv2_100", "classifier.bias", [1000]),
        ("ppcls_mobilenetv2_x1_0", "conv2._first_block._expand_conv._conv.weight", [32, 32, 1, 1]),
        ("ppcls_mobilenetv2_x1_0", "conv8._first_block._linear_conv._batch_norm.weight", [320]),
        ("ppcls_mobilenetv2_x1_0", "out.weight", [1000, 1280]),
    ],
)
def test_torch_state_dict_uses_source_key_names(name, key, shape):
    pytest.importorskip("torch")
    from tvmdeploy.compile.models.torch_models import SpecMobileNetV2

    state = SpecMobileNetV2(zoo.get(name).spec()).state_dict()
    assert list(state[key].shape) == shape


@pytest.mark.parametrize(
    "name, tensors", [("torchvision_mobilenet_v2", 262), ("timm_mobilenetv2_100", 262), ("ppcls_mobilenetv2_x1_0", 267)]
)
def test_state_dict_size(name, tensors):
    # 52 conv+BN pairs (53 in Paddle, whose t=1 block still expands), 4 BN tensors each, plus the linear.
    pytest.importorskip("torch")
    from tvmdeploy.compile.models.torch_models import SpecMobileNetV2

    state = SpecMobileNetV2(zoo.get(name).spec()).state_dict()
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == tensors
