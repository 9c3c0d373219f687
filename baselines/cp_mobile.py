"""CP-Mobile, the DCASE 2024 Task 1 baseline network (simplified CP-Mobile, CP-JKU).

The reference point of the low-complexity track: at its default configuration (base 32
channels, channel multiplier 1.8, expansion rate 2.1, blocks (3, 2, 1)) it has 61,148
parameters and 29,419,156 MACs for one 1-s baseline log-mel (1 x 1 x 256 x 65), the official
figures, which ``ascbench.evaluation.complexity`` must reproduce exactly.

Architecture (Schmid et al., "CP-JKU submission to DCASE23"; ``cpjku/dcase2024_task1_baseline``):
a stem of two stride-2 3x3 conv-BN-ReLU layers, three stages of inverted-bottleneck blocks
(1x1 expand, depthwise 3x3 carrying the block's stride, 1x1 project without activation, a
residual where input and output channels match -- average-pooled when the block strides -- and
a ReLU after the sum), and a head of a 1x1 conv to the classes, BN and global average pooling.
Channel counts are rounded to multiples of 8. Every conv is followed by BN and has no bias, so
conv-BN(-ReLU) triples are fusable (int8 conversion, inference) and nothing in the forward pass
depends on the memory format (channels-last works unchanged).

Registered as the system ``cp-mobile`` [BASE_I in the seed paper], trained by the default
supervised recipe on the baseline log-mel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from timm.layers import make_divisible
from torch import nn

from ascbench import BaselineMel, SupervisedRecipe, register_system

Stride = tuple[int, int]

DCASE2024_STRIDES: Mapping[int, Stride] = {2: (1, 1), 3: (1, 2), 4: (2, 1)}
"""The official baseline's strides by 1-based block index (unlisted blocks: stride 1).

The stem halves both axes twice; block 3 then halves time only and block 4 frequency only,
so the 256 x 65 input reaches the head as 32 x 9."""


class ConvBnAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional ReLU, with named children for fusion."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int | Stride = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        if act:
            self.act = nn.ReLU()


class CPMobileBlock(nn.Module):
    """Inverted bottleneck: 1x1 expand, depthwise 3x3 (strided), 1x1 project, residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, expansion_rate: float, stride: Stride = (1, 1)) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expansion_rate, 8)
        self.expand = ConvBnAct(in_channels, hidden, kernel_size=1)
        self.depthwise = ConvBnAct(hidden, hidden, kernel_size=3, stride=stride, groups=hidden)
        self.project = ConvBnAct(hidden, out_channels, kernel_size=1, act=False)
        self.has_residual = in_channels == out_channels
        strided = tuple(stride) != (1, 1)
        # The shortcut must shrink like the depthwise conv does; pooling adds no parameters.
        self.shortcut: nn.Module = (
            nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if self.has_residual and strided else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        if self.has_residual:
            out = out + self.shortcut(x)
        return self.act(out)


class CPMobile(nn.Module):
    """Stem -> stages of :class:`CPMobileBlock` -> conv/BN/pool classification head."""

    def __init__(
        self,
        base_channels: int = 32,
        channels_multiplier: float = 1.8,
        expansion_rate: float = 2.1,
        n_blocks: Sequence[int] = (3, 2, 1),
        n_classes: int = 10,
        in_channels: int = 1,
        strides: Mapping[int, Stride] = DCASE2024_STRIDES,
    ) -> None:
        super().__init__()
        base = make_divisible(base_channels, 8)
        widths = [make_divisible(base * channels_multiplier**i, 8) for i in range(len(n_blocks))]
        self.stem = nn.Sequential(
            ConvBnAct(in_channels, base // 4, kernel_size=3, stride=2),
            ConvBnAct(base // 4, base, kernel_size=3, stride=2),
        )
        stages = []
        block_index = 0
        channels = base
        for width, depth in zip(widths, n_blocks):
            blocks = []
            for _ in range(depth):
                block_index += 1
                stride = tuple(strides.get(block_index, (1, 1)))
                blocks.append(CPMobileBlock(channels, width, expansion_rate, stride))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.Conv2d(channels, n_classes, kernel_size=1, bias=False),
            nn.BatchNorm2d(n_classes),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
        )
        self.num_features = channels
        self.num_classes = n_classes
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    """The baseline's init: Kaiming (fan-out) convs, unit/zero norms."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def cp_mobile(
    base_channels: int = 32,
    channels_multiplier: float = 1.8,
    expansion_rate: float = 2.1,
    n_blocks: Sequence[int] = (3, 2, 1),
    n_classes: int = 10,
    in_channels: int = 1,
) -> CPMobile:
    """A CP-Mobile network; the defaults are the DCASE 2024 Task 1 baseline."""
    return CPMobile(
        base_channels=base_channels,
        channels_multiplier=channels_multiplier,
        expansion_rate=expansion_rate,
        n_blocks=n_blocks,
        n_classes=n_classes,
        in_channels=in_channels,
    )


@register_system(
    "cp-mobile",
    frontend=BaselineMel(),
    family="baseline",
    paper_label="BASE_I",
    description="CP-Mobile, the DCASE 2024 Task 1 baseline network (61,148 params, 29.4 M MACs)",
    reference="Schmid et al., DCASE 2023/2024 CP-JKU; DCASE 2024 Task 1 baseline (cpjku/dcase2024_task1_baseline)",
)
def cp_mobile_dcase2024(n_classes: int = 10) -> CPMobile:
    """The DCASE 2024 Task 1 baseline: 61,148 parameters, 29,419,156 MACs at 1 x 1 x 256 x 65."""
    return cp_mobile(n_classes=n_classes)



@register_system(
    "cp-mobile-large",
    frontend=BaselineMel(),
    family="teacher",
    description="A larger CP-Mobile (base 48 channels, blocks 3-3-2; 275,424 params) trained twice as long: "
    "a teacher for ensembles of runs (--teacher runs:cp-mobile,cp-mobile-large), beyond the DCASE limits itself",
    reference="CP-Mobile scaled as the CP-JKU teachers are: wider and deeper, trained longer",
    recipe=SupervisedRecipe({"quick": {"epochs": 40}}),
)
def cp_mobile_large(n_classes: int = 10) -> CPMobile:
    """Why a teacher of its own: every network the harness trains at the student's size is as weak
    as the student, so knowledge distillation has nothing to transfer. Wider and deeper, and
    trained for 40 epochs at ``quick`` (the students 20), it trains on the split alone."""
    return cp_mobile(base_channels=48, n_blocks=(3, 3, 2), n_classes=n_classes)
