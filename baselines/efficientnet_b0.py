"""EfficientNet-B0 [BASE_II in the seed paper]: timm's network on the baseline log-mel.

A deliberately large reference point: it breaks the DCASE complexity limits, which is what the
leaderboard's pass/fail columns are for. Built from scratch (no ImageNet weights: nothing may be
downloaded, and the 1-channel stem would not match them anyway).

Budget: at ``quick`` it trains 6 epochs instead of the profile's 20. It is 5.4x CP-Mobile's MACs
and trains at ~39 clips/s on two CPU cores (channels-last, batch 64; 24 clips/s NCHW) against
CP-Mobile's ~160, so 20 epochs took 8 min of an ``ascbench run --models all`` meant to fit in
about 10 (measured 2026-12-01 on synth-tau22 small, 25 % split: 480 s of training, 25.4 % macro
accuracy). Its step floor is cut in the same ratio (75 steps for the profile's 250), so it also
trains longer only on splits smaller than 25 %. ``dcase`` keeps the full recipe. The record's
``recipe_config`` states the epochs and the floor.
"""

from __future__ import annotations

import timm
from torch import nn

from ascbench import BaselineMel, SupervisedRecipe, register_system


@register_system(
    "efficientnet-b0",
    frontend=BaselineMel(),
    family="baseline",
    paper_label="BASE_II",
    recipe=SupervisedRecipe({"quick": {"epochs": 6, "warmup_steps": 20, "min_steps": 75}}),
    description="timm EfficientNet-B0, 1 input channel, trained from scratch on the baseline log-mel",
    reference="Tan & Le, EfficientNet, ICML 2019; timm efficientnet_b0",
)
def efficientnet_b0(n_classes: int = 10) -> nn.Module:
    """EfficientNet-B0 with a single-channel stem and a 10-class head."""
    return timm.create_model("efficientnet_b0", pretrained=False, in_chans=1, num_classes=n_classes)
