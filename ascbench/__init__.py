"""ascbench: a benchmark harness for low-complexity, device-robust acoustic scene classification.

The public API that plugins may depend on is what this module exports; ``ascbench`` itself
never imports a plugin by name, it discovers them. Attributes load lazily so that light
commands (``ascbench data check``) don't pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "register_system": "ascbench.systems",
    "SystemSpec": "ascbench.systems",
    "discover": "ascbench.systems",
    "BaselineMel": "ascbench.features.frontends",
    "KaldiFbank": "ascbench.features.frontends",
    "RawWaveform": "ascbench.features.frontends",
    "Frontend": "ascbench.features.frontends",
    "SupervisedRecipe": "ascbench.recipes.supervised",
    "RunOptions": "ascbench.recipes.options",
    # what a distilled system needs (baselines/hubert_mobilenetv2.py, beats_mobilenetv2.py)
    "DistillRecipe": "ascbench.distill.recipe",
    "DistillOptions": "ascbench.distill.recipe",
    "DistillConfig": "ascbench.distill.losses",
    "distill_configs": "ascbench.distill.recipe",
    "teacher_profiles": "ascbench.distill.recipe",
    "TeacherConfig": "ascbench.distill.teacher_recipe",
    "TEACHER_FINETUNE": "ascbench.distill.teachers.finetune",
    "HubertPretrainConfig": "ascbench.distill.teachers.hubert_pretrain",
    "BEATS_PRETRAIN_CONFIGS": "ascbench.distill.teachers.beats_pretrain",
    "SCENES": "ascbench.data.layout",
    "DEVICES": "ascbench.data.layout",
}

__all__ = ["__version__", *_PUBLIC]


_RENAMED = {"BEATS_PRETRAIN_CONFIGS": "PRETRAIN_CONFIGS"}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'ascbench' has no attribute {name!r}")
