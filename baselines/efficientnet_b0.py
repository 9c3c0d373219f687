"""EfficientNet-B0 [BASE_II in the seed paper]: timm's network on the baseline log-mel.

A deliberately large reference point: it breaks the DCASE complexity limits, which is what the
leaderboard's pass/fail columns are for. Built from scratch (no ImageNet weights: nothing may be
downloaded, and the 1-channel stem would not match them anyway).

Budget: at ``quick`` it trains 6 epochs instead of the profile's 20. With 5.4x CP-Mobile's MACs,
20 epochs on a CPU would take most of the time of an ``ascbench run --models all`` meant to fit
in about ten minutes (measured in docs/experiments/first-run.md). Its step floor is cut in the
same ratio (75 steps for the profile's 250), so it also trains longer only on splits smaller
than 25 %. ``dcase`` keeps the full recipe. The record's ``recipe_config`` states the epochs and
the floor.
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
