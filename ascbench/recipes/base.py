"""What a training recipe is: given one run's context, return the trained deployable model.

The runner owns everything around a recipe (data split, feature caches, evaluation, complexity,
records), so a recipe only trains. The default is :class:`ascbench.recipes.supervised.SupervisedRecipe`;
distillation recipes add teacher stages, which they cache themselves through the context's home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ascbench.data.dataset import DataSplit
from ascbench.features.cache import CachedFeatures, load_features
from ascbench.features.frontends import Frontend
from ascbench.systems.spec import SystemSpec


@dataclass
class RecipeContext:
    """Everything one (system, split, seed, profile) run may use to train."""

    spec: SystemSpec
    split: DataSplit
    features: CachedFeatures
    """The system's own frontend features over every clip of the data set."""
    profile: str
    seed: int
    device: torch.device
    workdir: Path
    """Per-run scratch directory: checkpoints for resuming live here."""
    home: Path
    ablate: frozenset[str] = frozenset()
    """Components switched off from the CLI (``--ablate fms,adir,...``); recipes ignore unknown ones."""
    progress: bool = True
    log: Callable[[str], None] = print
    extra: dict[str, Any] = field(default_factory=dict)

    def features_for(self, frontend: Frontend) -> CachedFeatures:
        """Another frontend's cached features over the same data set (built on first use)."""
        if frontend.key() == self.features.frontend.key():
            return self.features
        return load_features(self.split.dataset, frontend, home=self.home, progress=self.progress)

    def train_rows(self) -> np.ndarray:
        return self.features.rows([c.filename for c in self.split.train])

    def train_labels(self) -> np.ndarray:
        return np.array([c.label for c in self.split.train], dtype=np.int64)

    def train_devices(self) -> np.ndarray:
        return np.array([c.device for c in self.split.train])


@dataclass
class RecipeResult:
    """The trained deployable model and what the recipe wants recorded."""

    model: nn.Module
    """Float deployable model (what predictions, params and MACs are measured on)."""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    """Goes into the record (e.g. teacher accuracy, reused teacher stage, epochs run)."""
    quantized_model: nn.Module | None = None
    """An int8 model the recipe already converted (after QAT); None lets the runner quantize."""


@runtime_checkable
class Recipe(Protocol):
    """A training recipe; ``name`` and ``config()`` travel into the record's config hash."""

    name: str

    def config(self, profile: str) -> object:
        """The dataclass configuration this recipe uses under ``profile``.

        A recipe may also define ``config_for(profile, ablate)``: the configuration with the
        ``--ablate`` components switched off, which the record then holds instead."""
        ...

    def fit(self, model: nn.Module, ctx: RecipeContext) -> RecipeResult:
        """Train ``model`` (freshly built by the system's factory) and return it trained."""
        ...
