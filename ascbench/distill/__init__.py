"""Knowledge-distillation building blocks (seed paper §3.3): losses, layer routing, feature taps, QAT.

Pure modules: recipes wire them to teachers and students. Training-only parts (the projection
W_p, auxiliary stage heads) live outside the deployable model so that what is measured and
quantized is exactly the student.
"""

from ascbench.distill.features import (
    FeatureTaps,
    frame_sequence,
    pool_student,
    pool_teacher,
    pooled_taps,
    tap_channels,
)
from ascbench.distill.losses import (
    ABLATABLE,
    DistillConfig,
    DistillObjective,
    FrontAlignment,
    HierarchicalKD,
    LossTerms,
    adaptive_temperature,
    cosine_alignment_loss,
    kd_loss,
    logit_kd_loss,
    total_loss,
)
from ascbench.distill.qat import attach_fake_quant, detach_fake_quant, fake_quantize, has_fake_quant
from ascbench.distill.routing import Routing, linear_cka, route, similarity_matrix

__all__ = [
    "ABLATABLE",
    "DistillConfig",
    "DistillObjective",
    "FeatureTaps",
    "FrontAlignment",
    "HierarchicalKD",
    "LossTerms",
    "Routing",
    "adaptive_temperature",
    "attach_fake_quant",
    "cosine_alignment_loss",
    "detach_fake_quant",
    "fake_quantize",
    "frame_sequence",
    "has_fake_quant",
    "kd_loss",
    "linear_cka",
    "logit_kd_loss",
    "pool_student",
    "pool_teacher",
    "pooled_taps",
    "route",
    "similarity_matrix",
    "tap_channels",
    "total_loss",
]
