"""MobileNetV2 student for distillation: the deployable network of ``beats-mobilenetv2`` [BASE_III]
and ``hubert-mobilenetv2`` [H_M] in the seed paper.

Built with timm's MobileNetV2 machinery (``EfficientNet`` + the ``ds``/``ir`` block strings of
``_gen_mobilenet_v2``: inverted residuals, depthwise 3x3, linear bottlenecks, ReLU6), but cut to
the DCASE low-complexity limits (<= 128 kB of int8 parameters, <= 30 M MACs for a 1-s clip).
timm's ``mobilenetv2_*`` variants cannot be used as they are: they keep a 1,280-wide head at
every width (~207k parameters of head alone at width 0.5) and spend most MACs at full resolution.
Changes from the ImageNet table, each for one reason:

- the first (depthwise-separable) stage strides, so the first inverted residuals -- whose 6x
  expansion dominates MACs -- run at 64 x 17 instead of 128 x 33;
- five stages, widths 16-56 and a 128-wide 1x1 head (MobileNetV2 ends at 320 / 1,280);
  the first inverted-residual stage expands 4x instead of 6x;
- stage 3 strides in frequency only ((2, 1), as CP-Mobile does), so the head still sees 9
  time frames. timm's block strings only take square strides, so the stride of that stage's
  depthwise conv is set after construction; its symmetric padding of 1 is the same for (2, 1)
  and the stage's first block has no residual (it changes width), so nothing else depends on it.

At the defaults, on the baseline log-mel (1 x 1 x 256 x 65): 120,218 parameters (BN included;
120.2 kB at int8) and 26,896,400 MACs under the DCASE convention (26,889,984 conv/linear MACs +
6,416 BN parameters), measured by fvcore in ``tests/test_student.py``; ``ascbench complexity``
reports 26,896,410 (it also counts the classifier's 10 bias adds). CP-Mobile: 61,148 / 29,419,156.

Feature taps for distillation (``ascbench.distill.features.FeatureTaps``): ``front_tap`` is the
stem output (conv + BN + ReLU6, 16 x 128 x 33: the 2x temporal down-sampling the paper's
front-end alignment describes), ``stage_taps()`` the outputs of the stages after it.
This module only provides factories; systems are registered by the modules that pair the
student with a teacher recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.efficientnet import EfficientNet
from torch import nn

STUDENT_ARCH: tuple[str, ...] = (
    "ds_r1_k3_s2_c16",  # stage 0: depthwise-separable, 128 x 33 -> 64 x 17
    "ir_r2_k3_s1_e4_c16",  # stage 1
    "ir_r3_k3_s2_e6_c24",  # stage 2: -> 32 x 9
    "ir_r3_k3_s2_e6_c40",  # stage 3: frequency-only stride -> 16 x 9
    "ir_r1_k3_s1_e6_c56",  # stage 4
)
"""timm block strings, one stage each (type, repeats, kernel, stride, expansion, channels)."""

FREQUENCY_ONLY_STAGES: tuple[int, ...] = (3,)
"""Stages whose stride-2 halves frequency only (input layout [B, 1, freq, time])."""


class MobileNetV2Student(EfficientNet):
    """timm MobileNetV2 (``EfficientNet`` with ds/ir blocks) sized for DCASE, with named feature taps."""

    front_tap = "bn1"
    """Module whose output is the student's front-end feature map [B, C, F, T] (stem conv-BN-ReLU6)."""

    def __init__(
        self,
        n_classes: int = 10,
        width: float = 1.0,
        head_channels: int = 128,
        stem_channels: int = 16,
        arch: Sequence[str] = STUDENT_ARCH,
        frequency_only_stages: Sequence[int] = FREQUENCY_ONLY_STAGES,
        in_channels: int = 1,
        drop_rate: float = 0.0,
    ) -> None:
        round_chs = partial(round_channels, multiplier=width)
        super().__init__(
            block_args=decode_arch_def([[stage] for stage in arch]),
            num_classes=n_classes,
            num_features=round_chs(head_channels) if head_channels else 0,
            in_chans=in_channels,
            stem_size=stem_channels,
            round_chs_fn=round_chs,
            act_layer=nn.ReLU6,
            drop_rate=drop_rate,
        )
        for stage in frequency_only_stages:
            if not 0 <= stage < len(self.blocks):
                raise ValueError(f"frequency_only_stages: stage {stage} does not exist (0..{len(self.blocks) - 1})")
            conv = self.blocks[stage][0].conv_dw
            if tuple(conv.stride) != (2, 2):
                raise ValueError(
                    f"frequency_only_stages: stage {stage} ({arch[stage]!r}) must stride 2 (s2), got {conv.stride}"
                )
            conv.stride = (2, 1)

    def stage_taps(self) -> tuple[str, ...]:
        """Names of the stage outputs after the front end (``blocks.1`` ... ``blocks.N``)."""
        return tuple(f"blocks.{i}" for i in range(1, len(self.blocks)))


def mobilenetv2_student(n_classes: int = 10, width: float = 1.0, **options: Any) -> MobileNetV2Student:
    """The MobileNetV2 student; the defaults meet the DCASE limits on the 1 x 1 x 256 x 65 log-mel.

    ``width`` scales every channel count (rounded to multiples of 8, as timm does); widths above
    1.0 break the limits and are for comparison only. ``options``: the other arguments of
    :class:`MobileNetV2Student` (head_channels, stem_channels, arch, frequency_only_stages, ...).
    """
    return MobileNetV2Student(n_classes=n_classes, width=width, **options)
