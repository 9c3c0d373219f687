"""EfficientNet-B0 [BASE_II in the seed paper]: timm's network on the baseline log-mel.

A deliberately large reference point: it breaks the DCASE complexity limits, which is what the
leaderboard's pass/fail columns are for. Built from scratch (no ImageNet weights: nothing may be
downloaded, and the 1-channel stem would not match them anyway).
"""

from __future__ import annotations

import timm
from torch import nn

from ascbench import BaselineMel, register_system


@register_system(
    "efficientnet-b0",
    frontend=BaselineMel(),
    family="baseline",
    paper_label="BASE_II",
    description="timm EfficientNet-B0, 1 input channel, trained from scratch on the baseline log-mel",
    reference="Tan & Le, EfficientNet, ICML 2019; timm efficientnet_b0",
)
def efficientnet_b0(n_classes: int = 10) -> nn.Module:
    """EfficientNet-B0 with a single-channel stem and a 10-class head."""
    return timm.create_model("efficientnet_b0", pretrained=False, in_chans=1, num_classes=n_classes)
