"""Mobile architectures beyond MobileNetV2, from their packages' own model code (random weights): the build's corpus."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tvmdeploy.runtime.errors import TvmDeployError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Architecture:
    name: str
    package: str  # the pip package holding its model code (installed by requirements-corpus.lock)
    what: str  # what it brings that MobileNetV2 has not
    make: Callable[[int], object]  # input size -> torch module


def _geffnet(name: str) -> Callable[[int], object]:
    def make(_size: int):
        import geffnet

        geffnet.config.set_exportable(True)  # static "same" padding and plain activations: ONNX-exportable
        return getattr(geffnet, name)(pretrained=False)

    return make


def _efficientnet_pytorch(size: int):
    from efficientnet_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-b0", image_size=size)
    net.set_swish(memory_efficient=False)  # the memory-efficient Swish is a custom autograd op: not exportable
    return net


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("efficientnet_b0", "efficientnet_pytorch", "SiLU, squeeze-and-excitation, 5x5 depthwise", _efficientnet_pytorch),
        Architecture("tf_efficientnet_b0", "geffnet", "TF 'same' padding, SiLU, squeeze-and-excitation", _geffnet("tf_efficientnet_b0")),
        Architecture("mixnet_s", "geffnet", "Split into channel groups, mixed kernel sizes, Concat", _geffnet("mixnet_s")),
        Architecture(
            "mobilenetv3_large_100", "geffnet", "hard-swish, hard-sigmoid squeeze-and-excitation", _geffnet("mobilenetv3_large_100")
        ),
        Architecture("fbnetc_100", "geffnet", "5x5 depthwise, large random-weight logits", _geffnet("fbnetc_100")),
        Architecture("spnasnet_100", "geffnet", "5x5 depthwise, mixed expansion ratios", _geffnet("spnasnet_100")),
        Architecture("mnasnet_a1", "geffnet", "squeeze-and-excitation with ReLU, 5x5 depthwise", _geffnet("mnasnet_a1")),
    )
}


def _randomise_batch_norm(net, seed: int) -> None:
    """Batch-norm statistics away from identity: fresh ones would fold to no-ops and hide folding bugs."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.rand(channels, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(channels, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(channels, generator=generator) - 0.5)


def export_architecture(name: str, path: Path, *, size: int = 224, seed: int = 0, opset: int = 17) -> Path:
    """Export architecture `name` with seeded random weights to ONNX (TorchScript exporter, one fixed input size)."""
    if name not in ARCHITECTURES:
        raise TvmDeployError(f"unknown architecture '{name}'; choose from {', '.join(ARCHITECTURES)}")
    arch = ARCHITECTURES[name]
    try:
        import torch
    except ImportError:
        raise TvmDeployError("exporting needs torch (pip install 'tvmdeploy[export]')") from None
    torch.manual_seed(seed)
    try:
        net = arch.make(size)
    except ImportError:
        raise TvmDeployError(
            f"{name} needs the '{arch.package}' package (make setup installs it from " "requirements-corpus.lock)"
        ) from None
    _randomise_batch_norm(net, seed)
    net.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings from the packages' shape arithmetic
        torch.onnx.export(
            net,
            (torch.randn(1, 3, size, size),),
            str(path),
            opset_version=opset,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
        )
    log.info("exported %s (%s) at %dx%d to %s", name, arch.package, size, size, path)
    return path
