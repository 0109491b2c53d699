"""torch nn.Module built from an ArchSpec, with each source's state-dict key names (needs torch)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from tvmdeploy.compile.models.mobilenetv2_spec import ArchSpec


class SpecMobileNetV2(nn.Module):
    """MobileNetV2 whose submodules sit at the spec's dotted keys and whose forward walks the spec.

    Registering modules at the source's own paths (e.g. `features.1.conv.0.0`, `blocks.1.0.conv_pw`,
    `conv2._first_block._expand_conv._conv`) makes `state_dict()` keys identical to the source's.
    """

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        self._blocks: list[tuple[bool, list[tuple[nn.Conv2d, nn.BatchNorm2d, bool]]]] = []
        for block in spec.blocks:
            layers = []
            for c in block.convs:
                conv = nn.Conv2d(c.in_ch, c.out_ch, c.kernel, c.stride, c.kernel // 2, groups=c.groups, bias=False)
                bn = nn.BatchNorm2d(c.out_ch)
                self._put(c.conv, conv)
                self._put(c.bn, bn)
                layers.append((conv, bn, c.relu6))
            self._blocks.append((block.residual, layers))
        linear = nn.Linear(spec.classifier.in_features, spec.classifier.out_features)
        self._put(spec.classifier.key, linear)
        # Kept outside `_modules` so the linear appears in state_dict only under the source's key.
        self.__dict__["_fc"] = linear

    def _put(self, path: str, module: nn.Module) -> None:
        *parents, leaf = path.split(".")
        owner: nn.Module = self
        for name in parents:
            child = owner._modules.get(name)
            if child is None:
                child = nn.Module()
                owner.add_module(name, child)
            owner = child
        owner.add_module(leaf, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for residual, layers in self._blocks:
            y = x
            for conv, bn, relu6 in layers:
                y = bn(conv(y))
                if relu6:
                    y = F.relu6(y)
            x = x + y if residual else y
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        # Dropout(0.2) of the sources is the identity in eval mode, so it is left out.
        return self._fc(x)


def randomize(module: SpecMobileNetV2, seed: int) -> None:
    """Deterministic random weights *and* BN statistics, so a numeric check exercises every tensor.

    Scales keep activations O(1) through the network: a test whose logits all saturate or vanish
    would pass for a broken graph.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.in_features))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
