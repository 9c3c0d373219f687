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
"""BEATs-small fine-tunes for 40 epochs, not the shared 12: measured on synth-tau22 small (25 %
split, 800 clips, quick pre-training; ``benchmarks/teacher_diagnosis.py finetune``) its test
accuracy went from 29.6 % (12 epochs, 31 s on two idle cores; training accuracy 40 %) to 33.7 %
(40 epochs, 84 s; training accuracy 51 %): under-fitted at 12 (34.4 % in the recorded quick run
of all systems). HuBERT-small keeps 12 (173 s at 12 epochs: its waveform encoder is far dearer)."""


def beats_teacher(size: str) -> TeacherConfig:
    """bf16 on a GPU, fp32 on every CPU (``bf16_on_cpu=False``): bf16 pays little there.

    Measured with ``python benchmarks/precision_steps.py beats``, one fine-tuning step of
    BEATs-small at batch 32: on a two-core Xeon with AMX 0.039 s in fp32, 0.039-0.041 s in bf16;
    on a two-core Zen 5 EPYC with AVX512-BF16 0.047-0.053 s against 0.042-0.044 s, about 5 s of a
    50-s fine-tuning (its positional conv runs in fp32 inside autocast, see ``WeightNormConv1d``).
    Fine-tuned from the same fp32 pre-training (synth-tau22 small, 25 % split, seed 0;
    ``benchmarks/teacher_diagnosis.py finetune beats ... --set epochs=40 [--precision bf16]``) it
    scores 34.2 % on test.csv in fp32 and 34.5 % in bf16 (19.5 % before that conv was kept in fp32).
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
