"""HuBERT → MobileNetV2 [H_M, the seed paper's system]: a self-supervised HuBERT teacher distilled
into a DCASE-sized MobileNetV2 in two stages (front-end alignment, then hierarchical semantic KD
with an adaptive temperature), with FMS + ADIR augmentation and quantization-aware training.

The recipe is :class:`ascbench.distill.recipe.DistillRecipe`; its module docstring states how each
equation of the paper is read. The teacher is pre-trained by the harness on the unlabeled pool
(MFCC k-means units, masked prediction) unless ``--teacher checkpoint:PATH`` names a local HF-format
HuBERT directory.
"""

from __future__ import annotations

from ascbench import (
    TEACHER_FINETUNE, BaselineMel, DistillConfig, DistillRecipe, HubertPretrainConfig, TeacherConfig, distill_configs, register_system,
    teacher_profiles,
)  # fmt: skip
from baselines.mobilenetv2_student import MobileNetV2Student, mobilenetv2_student

ADIR_P = 0.4
"""Probability that a device-a clip is filtered by a random device response (eq. 4, 13)."""


def hubert_teacher(size: str) -> TeacherConfig:
    return TeacherConfig("hubert", size, HubertPretrainConfig(size=size), TEACHER_FINETUNE)


RECIPE = DistillRecipe(
    "hubert-two-stage-kd",
    distill_configs(
        teacher_profiles(hubert_teacher, smoke_pretrain={"max_steps": 2, "clusters": 8, "kmeans_frames": 2_000}, quick_pretrain={"epochs": 1}),
        DistillConfig(),
        two_stage=True,
        adir_p=ADIR_P,
    ),
)


@register_system(
    "hubert-mobilenetv2",
    frontend=BaselineMel(),
    family="baseline",
    paper_label="H_M",
    recipe=RECIPE,
    description="HuBERT teacher (pre-trained by ascbench, or --teacher-checkpoint) → MobileNetV2 student: front-end alignment, hierarchical KD, FMS+ADIR, QAT",
    reference="seed paper (this benchmark's ../shared/seed-paper.txt), §3; Hsu et al., HuBERT, 2021",
)
def hubert_mobilenetv2(n_classes: int = 10) -> MobileNetV2Student:
    """The deployable student (the teacher and training-only heads are not part of it)."""
    return mobilenetv2_student(n_classes=n_classes)
