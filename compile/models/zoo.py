"""The model zoo: zoo names, their architecture specs and the model card's published numbers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from tvmdeploy.compile.models import complexity
from tvmdeploy.compile.models.mobilenetv2_spec import ArchSpec, ppcls_spec, timm_spec, torchvision_spec
from tvmdeploy.runtime.errors import TvmDeployError


@dataclass(frozen=True)
class CardRow:
    """One row of the MobileNetV2 model card (shared/seeds/mobilenetv2_modelzoo_card.md)."""

    card_name: str
    top1: float
    top5: float
    flops_m: float
    params_m: float


@dataclass(frozen=True)
class ZooEntry:
    name: str
    source: str
    width: float
    card: CardRow
    _build: Callable[[], ArchSpec]

    def spec(self) -> ArchSpec:
        return self._build()

    @property
    def params(self) -> int:
        return complexity.count_params(self.spec())

    @property
    def flops(self) -> int:
        return complexity.count_flops(self.spec())


def _entries() -> dict[str, ZooEntry]:
    rows = [
        ("torchvision_mobilenet_v2", "torchvision", 1.0, torchvision_spec, CardRow("mobilenetv2", 71.878, 90.286, 327.650, 3.505)),
        ("timm_mobilenetv2_100", "timm", 1.0, timm_spec, CardRow("mobilenetv2", 72.956, 91.010, 327.544, 3.500)),
        ("ppcls_mobilenetv2_x0_25", "ppcls", 0.25, ppcls_spec, CardRow("MobileNetV2_x0_25", 53.210, 76.520, 34.180, 1.53)),
        ("ppcls_mobilenetv2_x0_5", "ppcls", 0.5, ppcls_spec, CardRow("MobileNetV2_x0_5", 65.030, 85.720, 99.480, 1.98)),
        ("ppcls_mobilenetv2_x0_75", "ppcls", 0.75, ppcls_spec, CardRow("MobileNetV2_x0_75", 69.830, 89.010, 197.370, 2.65)),
        ("ppcls_mobilenetv2_x1_0", "ppcls", 1.0, ppcls_spec, CardRow("MobileNetV2", 72.150, 90.650, 327.840, 3.540)),
        ("ppcls_mobilenetv2_x1_5", "ppcls", 1.5, ppcls_spec, CardRow("MobileNetV2_x1_5", 74.120, 91.670, 702.350, 6.900)),
        ("ppcls_mobilenetv2_x2_0", "ppcls", 2.0, ppcls_spec, CardRow("MobileNetV2_x2_0", 75.230, 92.580, 1217.250, 11.330)),
        # The SSLD weights are distilled into the very same x1.0 graph.
        ("ppcls_mobilenetv2_ssld", "ppcls", 1.0, ppcls_spec, CardRow("MobileNetV2_ssld", 76.740, 93.390, 327.84, 3.540)),
    ]
    return {name: ZooEntry(name, source, width, card, partial(factory, width)) for name, source, width, factory, card in rows}


ZOO: dict[str, ZooEntry] = _entries()


def names() -> list[str]:
    return list(ZOO)


def get(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise TvmDeployError(f"unknown model {name!r}; valid names: {', '.join(ZOO)}") from None


def listing() -> list[dict]:
    """The `tvmdeploy zoo --json` records, in zoo order."""
    return [
        {
            "name": e.name,
            "source": e.source,
            "width": e.width,
            "params_m": round(e.params / 1e6, 3),
            "flops_m": round(e.flops / 1e6, 3),
            "top1": e.card.top1,
            "top5": e.card.top5,
        }
        for e in ZOO.values()
    ]
