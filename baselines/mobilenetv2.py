"""MobileNetV2 student trained alone: the no-teacher control for the two distilled systems.

Same network, same frontend, same supervised recipe as CP-Mobile; any gap between this and
``beats-mobilenetv2`` / ``hubert-mobilenetv2`` is what distillation bought.
"""

from __future__ import annotations

from ascbench import BaselineMel, register_system
from baselines.mobilenetv2_student import MobileNetV2Student, mobilenetv2_student


@register_system(
    "mobilenetv2",
    frontend=BaselineMel(),
    family="baseline",
    description="The DCASE-sized MobileNetV2 student without a teacher (supervised recipe): the distillation control",
    reference="Sandler et al., MobileNetV2, CVPR 2018 (timm); student of the seed paper's BASE_III and H_M",
)
def mobilenetv2(n_classes: int = 10) -> MobileNetV2Student:
    return mobilenetv2_student(n_classes=n_classes)
