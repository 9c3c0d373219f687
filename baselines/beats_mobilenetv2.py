"""BEATs → MobileNetV2 [BASE_III in the seed paper]: a BEATs teacher distilled into the same
DCASE-sized MobileNetV2 student by classic logit KD (KL at temperature T(t) plus CE), one stage,
no front-end alignment, no hierarchical KD, no QAT: the comparison point for H_M's additions.

The teacher is pre-trained by the harness (BEATs' first iteration: random-projection tokenizer,
masked patch prediction) unless ``--teacher-checkpoint`` names an official BEATs ``.pt``.
"""

from __future__ import annotations

import dataclasses

from ascbench import BEATS_PRETRAIN_CONFIGS as PRETRAIN_CONFIGS
from ascbench import TEACHER_FINETUNE, BaselineMel, DistillConfig, DistillRecipe, TeacherConfig, distill_configs, register_system, teacher_profiles
from baselines.mobilenetv2_student import MobileNetV2Student, mobilenetv2_student


BEATS_FINETUNE_EPOCHS = 40
"""BEATs-small fine-tunes for 40 epochs, not the shared 12: at 12 it under-fitted the split
(docs/experiments/teachers.md). HuBERT-small keeps 12: its waveform encoder is far dearer."""


def beats_teacher(size: str) -> TeacherConfig:
    """bf16 on a GPU, fp32 on every CPU (``bf16_on_cpu=False``): bf16 pays little there, not
    enough for one more precision to keep apart (docs/experiments/precision.md; its positional
    conv runs in fp32 inside autocast, see ``WeightNormConv1d``).
    """
    finetune = dataclasses.replace(TEACHER_FINETUNE, fms_p=0.4, epochs=BEATS_FINETUNE_EPOCHS)
    return TeacherConfig("beats", size, PRETRAIN_CONFIGS[size], finetune, bf16_on_cpu=False)


RECIPE = DistillRecipe(
    "beats-logit-kd",
    distill_configs(
        teacher_profiles(beats_teacher, smoke_pretrain={"epochs": 1}, quick_pretrain={"epochs": 2}),
        DistillConfig(front=False, hier=False, qat=False, adir=False),
        two_stage=False,
        adir_p=0.0,
    ),
)


@register_system(
    "beats-mobilenetv2",
    frontend=BaselineMel(),
    family="baseline",
    paper_label="BASE_III",
    recipe=RECIPE,
    description="BEATs teacher (pre-trained by ascbench, or --teacher-checkpoint) → MobileNetV2 student by logit KD",
    reference="Chen et al., BEATs, ICML 2023; seed paper table 1 (BASE_III)",
)
def beats_mobilenetv2(n_classes: int = 10) -> MobileNetV2Student:
    """The deployable student, identical to hubert-mobilenetv2's."""
    return mobilenetv2_student(n_classes=n_classes)
