"""The components an ablation can switch off, in one torch-free place.

The CLI validates ``--ablate`` against these names without importing torch, and the
distillation objective maps them onto its switches (``ascbench.distill.losses``).
"""

from __future__ import annotations

ABLATABLE = ("fms", "adir", "front", "hier", "qat", "kd")
"""What ``--ablate`` accepts. ``kd`` is the final logit KD (``DistillConfig.final_kd``): with
``front`` and ``hier`` also off no teacher signal is left, so ``--ablate front,hier,kd`` trains
the student with H_M's augmentations and QAT alone."""

PAPER_COMPONENTS = ("fms", "adir", "front", "hier", "qat")
"""The components of the seed paper's ablation, ``ascbench ablation``'s default."""


TEACHER_TERMS = ("front", "hier", "final_kd")
"""The ``DistillConfig`` switches of the terms that read the teacher's outputs (``kd`` ablates
``final_kd``): with all three off a distilled system learns nothing from its teacher. Here, not in
:mod:`ascbench.distill`, so that reading a record does not import torch."""
