"""Knowledge distillation (seed paper §3.3), all of it in this package.

- Building blocks: losses, layer routing, feature taps, QAT. Pure modules: the recipe wires them
  to teachers and students. Training-only parts (the projection W_p, auxiliary stage heads) live
  outside the deployable model so that what is measured and quantized is exactly the student.
- Teachers (:mod:`ascbench.distill.teachers`): HuBERT and BEATs, their pre-training and
  fine-tuning, and the on-disk teacher-stage cache.
- Teacher sources (:mod:`ascbench.distill.sources`, :mod:`ascbench.distill.ensemble`,
  :mod:`ascbench.distill.logits_file`): what ``--teacher`` names.
- The teacher preparation (:mod:`ascbench.distill.teacher_recipe`) and the distillation recipe
  (:mod:`ascbench.distill.recipe`).

Attributes load lazily, so that :mod:`ascbench.distill.sources` (what ``--teacher`` names) can be
read by the CLI and by records without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "ABLATABLE": "ascbench.distill.losses",
    "DistillConfig": "ascbench.distill.losses",
    "DistillObjective": "ascbench.distill.losses",
    "FeatureTaps": "ascbench.distill.features",
    "FrontAlignment": "ascbench.distill.losses",
    "HierarchicalKD": "ascbench.distill.losses",
    "LossTerms": "ascbench.distill.losses",
    "Routing": "ascbench.distill.routing",
    "adaptive_temperature": "ascbench.distill.losses",
    "attach_fake_quant": "ascbench.distill.qat",
    "cosine_alignment_loss": "ascbench.distill.losses",
    "detach_fake_quant": "ascbench.distill.qat",
    "fake_quantize": "ascbench.distill.qat",
    "frame_sequence": "ascbench.distill.features",
    "has_fake_quant": "ascbench.distill.qat",
    "kd_loss": "ascbench.distill.losses",
    "linear_cka": "ascbench.distill.routing",
    "logit_kd_loss": "ascbench.distill.losses",
    "pool_student": "ascbench.distill.features",
    "pool_teacher": "ascbench.distill.features",
    "pooled_taps": "ascbench.distill.features",
    "route": "ascbench.distill.routing",
    "similarity_matrix": "ascbench.distill.routing",
    "tap_channels": "ascbench.distill.features",
    "total_loss": "ascbench.distill.losses",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'ascbench.distill' has no attribute {name!r}")
