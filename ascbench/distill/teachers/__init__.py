"""Self-supervised teachers (HuBERT, BEATs) for distillation: interface, pre-training,
fine-tuning and the on-disk teacher-stage cache.

Import the submodules directly (``ascbench.distill.teachers.hubert``, ...) so that using one teacher
does not import every other.
"""

from ascbench.distill.teachers.base import TeacherClassifier, TeacherEncoder, TeacherOutput

__all__ = ["TeacherClassifier", "TeacherEncoder", "TeacherOutput"]
