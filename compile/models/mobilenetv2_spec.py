"""Pure-Python MobileNetV2 layer lists for the torchvision, timm and PaddleClas definitions."""

from __future__ import annotations

from dataclasses import dataclass

# (expansion t, output channels c, repeats n, first stride s): the paper's table, shared by all three sources.
BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

INPUT_SIZE = 224
NUM_CLASSES = 1000


@dataclass(frozen=True)
class ConvBN:
    """A bias-free Conv2d followed by BatchNorm and, when `relu6`, a ReLU6.

    `conv` and `bn` are the source's own state-dict prefixes, so a module built from the spec
    loads that source's checkpoints unchanged; `paddle` is the Paddle parameter-name prefix.
    """

    conv: str
    bn: str
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    groups: int
    relu6: bool
    paddle: str | None = None


@dataclass(frozen=True)
class Block:
    """Convs applied in order; `residual` adds the block input to its output."""

    convs: tuple[ConvBN, ...]
    residual: bool


@dataclass(frozen=True)
class Classifier:
    key: str
    in_features: int
    out_features: int
    paddle: str | None = None


@dataclass(frozen=True)
class ArchSpec:
    """One MobileNetV2 variant: stem, bottlenecks and head as blocks, then pool + linear."""

    source: str  # "torchvision" | "timm" | "ppcls"
    width: float
    blocks: tuple[Block, ...]
    classifier: Classifier
    input_size: int = INPUT_SIZE

    def convs(self) -> list[ConvBN]:
        return [c for b in self.blocks for c in b.convs]


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision `_make_divisible` / timm `make_divisible`: nearest multiple, never 10% below."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _single(conv: str, bn: str, in_ch: int, out_ch: int, kernel: int, stride: int, paddle: str | None = None) -> Block:
    return Block((ConvBN(conv, bn, in_ch, out_ch, kernel, stride, 1, True, paddle),), residual=False)


def torchvision_spec(width: float = 1.0) -> ArchSpec:
    """torchvision v0.9 `mobilenet_v2`: `features.N` (ConvBNReLU / InvertedResidual.conv) + `classifier.1`."""
    in_ch = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    blocks = [_single("features.0.0", "features.0.1", 3, in_ch, 3, 2)]
    for t, c, n, s in BOTTLENECKS:
        out_ch = make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = int(round(in_ch * t))
            p = f"features.{len(blocks)}.conv"
            convs = []
            if t != 1:
                convs.append(ConvBN(f"{p}.0.0", f"{p}.0.1", in_ch, hidden, 1, 1, 1, True))
            j = len(convs)
            convs.append(ConvBN(f"{p}.{j}.0", f"{p}.{j}.1", hidden, hidden, 3, stride, hidden, True))
            convs.append(ConvBN(f"{p}.{j + 1}", f"{p}.{j + 2}", hidden, out_ch, 1, 1, 1, False))
            blocks.append(Block(tuple(convs), residual=stride == 1 and in_ch == out_ch))
            in_ch = out_ch
    n = len(blocks)
    blocks.append(_single(f"features.{n}.0", f"features.{n}.1", in_ch, last, 1, 1))
    return ArchSpec("torchvision", width, tuple(blocks), Classifier("classifier.1", last, NUM_CLASSES))


def timm_spec(width: float = 1.0) -> ArchSpec:
    """timm `mobilenetv2_100` family: conv_stem/bn1, blocks.i.j (a DS block first, then IR), conv_head/bn2, classifier."""
    in_ch = make_divisible(32 * width)
    num_features = max(1280, make_divisible(1280 * width))
    blocks = [_single("conv_stem", "bn1", 3, in_ch, 3, 2)]
    for stage, (t, c, n, s) in enumerate(BOTTLENECKS):
        out_ch = make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"blocks.{stage}.{i}"
            if t == 1:
                # timm's 'ds' block: depthwise then pointwise, no expansion and no act after the pointwise.
                convs = (
                    ConvBN(f"{p}.conv_dw", f"{p}.bn1", in_ch, in_ch, 3, stride, in_ch, True),
                    ConvBN(f"{p}.conv_pw", f"{p}.bn2", in_ch, out_ch, 1, 1, 1, False),
                )
            else:
                mid = make_divisible(in_ch * t)
                convs = (
                    ConvBN(f"{p}.conv_pw", f"{p}.bn1", in_ch, mid, 1, 1, 1, True),
                    ConvBN(f"{p}.conv_dw", f"{p}.bn2", mid, mid, 3, stride, mid, True),
                    ConvBN(f"{p}.conv_pwl", f"{p}.bn3", mid, out_ch, 1, 1, 1, False),
                )
            blocks.append(Block(convs, residual=stride == 1 and in_ch == out_ch))
            in_ch = out_ch
    blocks.append(_single("conv_head", "bn2", in_ch, num_features, 1, 1))
    return ArchSpec("timm", width, tuple(blocks), Classifier("classifier", num_features, NUM_CLASSES))


def _paddle_conv(structured: str, paddle: str, in_ch: int, out_ch: int, kernel: int, stride: int, groups: int, act: bool) -> ConvBN:
    # Paddle ConvBNLayer holds `_conv` and `_batch_norm`; the torch keys mirror its structured names.
    return ConvBN(f"{structured}._conv", f"{structured}._batch_norm", in_ch, out_ch, kernel, stride, groups, act, paddle)


def ppcls_spec(scale: float = 1.0) -> ArchSpec:
    """PaddleClas v2.4 `MobileNet(scale)`: int(c*scale) channels, always an expand conv, 1280 head unless scale > 1."""
    in_ch = int(32 * scale)
    blocks = [Block((_paddle_conv("conv1", "conv1_1", 3, in_ch, 3, 2, 1, True),), residual=False)]
    for group, (t, c, n, s) in enumerate(BOTTLENECKS, start=2):
        out_ch = int(c * scale)
        for i in range(n):
            # Paddle names the first unit `_first_block` and the others `convG_K` inside InvresiBlocks `convG`.
            structured = f"conv{group}._first_block" if i == 0 else f"conv{group}.conv{group}_{i + 1}"
            name = f"conv{group}_{i + 1}"
            block_in = in_ch if i == 0 else out_ch
            hidden = int(round(block_in * t))
            convs = (
                _paddle_conv(f"{structured}._expand_conv", f"{name}_expand", block_in, hidden, 1, 1, 1, True),
                _paddle_conv(f"{structured}._bottleneck_conv", f"{name}_dwise", hidden, hidden, 3, s if i == 0 else 1, hidden, True),
                _paddle_conv(f"{structured}._linear_conv", f"{name}_linear", hidden, out_ch, 1, 1, 1, False),
            )
            # Paddle adds the shortcut on every unit but the first of a group (those are stride 1, c -> c).
            blocks.append(Block(convs, residual=i > 0))
        in_ch = out_ch
    out_c = int(1280 * scale) if scale > 1.0 else 1280
    blocks.append(Block((_paddle_conv("conv9", "conv9", in_ch, out_c, 1, 1, 1, True),), residual=False))
    return ArchSpec("ppcls", scale, tuple(blocks), Classifier("out", out_c, NUM_CLASSES, "fc10"))


def feature_sizes(spec: ArchSpec) -> list[tuple[int, int]]:
    """(input, output) spatial size of every conv of `spec`, in order (square inputs, padding k // 2)."""
    size = spec.input_size
    sizes = []
    for conv in spec.convs():
        out = (size + 2 * (conv.kernel // 2) - conv.kernel) // conv.stride + 1
        sizes.append((size, out))
        size = out
    return sizes
