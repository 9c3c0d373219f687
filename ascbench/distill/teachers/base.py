"""The teacher interface shared by every self-supervised teacher (HuBERT, BEATs, ...).

Distillation (paper §3.3) needs three things from a teacher, whatever its architecture:

- its **front-end features** (HuBERT's conv feature encoder, BEATs' patch embedding) for the
  front-end alignment loss (eq. 14-15), as ``cnn_features`` ``[B, T_cnn, C]``;
- the **hidden states of every transformer layer** for hierarchical KD over routed layers
  (eq. 16-17), as ``hidden_states`` (one ``[B, T, D]`` per layer, the embedding/input of the
  first layer *not* included, so ``len(hidden_states) == num_layers``);
- a clip embedding ``pooled`` ``[B, D]`` (mean over time of the last layer) for the classifier.

A teacher is a :class:`TeacherEncoder` (which declares the :class:`~ascbench.features.frontends.Frontend`
whose cached features it consumes, so the harness computes its input once) wrapped in the generic
:class:`TeacherClassifier`, which adds one linear head per layer (the layer-wise logits that
hierarchical KD distils) and a final head. Fine-tuning (:mod:`ascbench.distill.teachers.finetune`) and the
teacher-stage cache (:mod:`ascbench.distill.teachers.stages`) only see these two classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from ascbench.data.layout import SCENES
from ascbench.features.frontends import Frontend


@dataclass
class TeacherOutput:
    """What one forward pass of a teacher encoder exposes to distillation."""

    cnn_features: torch.Tensor
    """``[B, T_cnn, C]`` front-end features (HuBERT: conv encoder output, before projection)."""
    hidden_states: list[torch.Tensor]
    """One ``[B, T, D]`` tensor per transformer layer, first to last."""
    pooled: torch.Tensor
    """``[B, D]`` mean over time of the last layer."""


class TeacherEncoder(nn.Module, ABC):
    """A self-supervised audio encoder; subclasses set the attributes below in ``__init__``."""

    frontend: Frontend
    """The cached features this encoder takes as ``x`` (HuBERT: ``RawWaveform(16000)``)."""
    num_layers: int
    """Number of transformer layers (``len(TeacherOutput.hidden_states)``)."""
    hidden_size: int
    """``D``, the width of every hidden state and of ``pooled``."""
    cnn_dim: int
    """``C``, the channel count of ``cnn_features``."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> TeacherOutput:
        """``x``: a batch of ``frontend`` features ``[B, *frontend.output_shape()]``."""


class TeacherClassifier(nn.Module):
    """Encoder + one linear head per transformer layer + a final head, for fine-tuning and KD.

    Layer heads read the time-mean of their layer (the same pooling as the final head) so every
    layer yields class logits: those are what the hierarchical KD of eq. 17 softens and matches.
    """

    def __init__(self, encoder: TeacherEncoder, num_classes: int = len(SCENES), dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.num_classes = num_classes
        self.layer_heads = nn.ModuleList(nn.Linear(encoder.hidden_size, num_classes) for _ in range(encoder.num_layers))
        self.head = nn.Sequential(nn.LayerNorm(encoder.hidden_size), nn.Dropout(dropout), nn.Linear(encoder.hidden_size, num_classes))

    @property
    def frontend(self) -> Frontend:
        return self.encoder.frontend

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, TeacherOutput, torch.Tensor]:
        """Return ``(logits [B, classes], output, layer_logits [B, num_layers, classes])``."""
        output = self.encoder(x)
        layer_logits = torch.stack(
            [head(hidden.mean(dim=1)) for head, hidden in zip(self.layer_heads, output.hidden_states, strict=True)], dim=1
        )
        return self.head(output.pooled), output, layer_logits


def brief(keys: list[str], shown: int = 8) -> str:
    """The first keys of a long list, and how many more: a base model's error stays readable."""
    more = f", ... ({len(keys) - shown} more)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more
