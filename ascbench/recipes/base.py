"""What a training recipe is: given one run's context, return the trained deployable model.

The runner owns everything around a recipe (data split, feature caches, evaluation, complexity,
records), so a recipe only trains. The default is :class:`ascbench.recipes.supervised.SupervisedRecipe`;
distillation recipes add teacher stages, which they cache themselves through the context's home.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ascbench.data.dataset import DataSplit
from ascbench.features.cache import CachedFeatures, load_features
from ascbench.features.frontends import Frontend
from ascbench.recipes.options import RunOptions
from ascbench.systems.spec import SystemSpec
from ascbench.training.config import TrainConfig


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
    options: RunOptions = field(default_factory=RunOptions)
    """The run's options (the recipe's own options type), validated before the run started."""
    progress: bool = True
    log: Callable[[str], None] = print
    teacher_logits: Callable[[Sequence[str]], np.ndarray] | None = None
    """For a teacher that gives logits only (``logits:FILE``, ``runs:SYS``): the teacher's logits
    ``[N, classes]`` of the named clips (meta.csv names), resolved by the runner; None otherwise."""
    teacher_info: dict[str, Any] = field(default_factory=dict)
    """What the runner knows of that teacher, for the record's notes (its file's sha256, the members)."""

    @property
    def ablate(self) -> frozenset[str]:
        """Components switched off (``--ablate fms,adir,...``); recipes ignore unknown ones."""
        return self.options.ablated

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
    """A training recipe; ``name`` and ``config()`` travel into the record's config hash.

    A recipe may also define ``options_type`` (a :class:`RunOptions` subclass: the run options it
    accepts; :class:`RunOptions` itself when absent) and ``validate(options, profile, system)``,
    which raises ``ValueError`` with a sentence for options it cannot train with, before any run
    starts (:func:`recipe_options` calls both)."""

    name: str

    def config(self, profile: str) -> object:
        """The dataclass configuration this recipe uses under ``profile``.

        A recipe may also define ``config_for(profile, options)``: the configuration a run with
        ``options`` trains with (ablated components off), which the record then holds instead."""
        ...

    def fit(self, model: nn.Module, ctx: RecipeContext) -> RecipeResult:
        """Train ``model`` (freshly built by the system's factory) and return it trained."""
        ...


def options_type(recipe: object) -> type[RunOptions]:
    """The run options ``recipe`` accepts."""
    return getattr(recipe, "options_type", RunOptions)


def recipe_options(recipe: object, settings: dict[str, str], profile: str, system: str, fractions: Sequence[float] = ()) -> RunOptions:
    """The options a run of ``system`` trains with: its recipe's defaults with ``settings``
    (``--set key=value``) applied, validated by the recipe; ``ValueError`` naming the system."""
    from ascbench.recipes.options import with_settings

    options = with_settings(options_type(recipe)(), settings, who=system)
    validate = getattr(recipe, "validate", None)
    try:
        if validate is not None:
            validate(options, profile, system, fractions)
        check_ablations(recipe, options, profile)
    except ValueError as error:
        raise ValueError(f"{system}: {error}") from None
    return options


def effective_config(recipe: object, profile: str, options: RunOptions) -> object:
    """What a run with ``options`` trains with (ablations applied): the record's config."""
    config_for = getattr(recipe, "config_for", None)
    return config_for(profile, options) if config_for is not None else recipe.config(profile)  # type: ignore[attr-defined]


def with_run_options(config: TrainConfig, options: RunOptions) -> TrainConfig:
    """``config`` as ``options`` change it: the epochs, the warm-up and the precision a user set."""
    config = with_epochs(config, options.epochs)
    changes = {name: getattr(options, name) for name in ("warmup_steps", "amp") if getattr(options, name, None) is not None}
    if getattr(options, "roll", None) is not None:
        changes["roll_domain"] = options.roll
    return dataclasses.replace(config, **changes) if changes else config


def with_epochs(config: TrainConfig, epochs: int | None) -> TrainConfig:
    """``config`` trained for exactly ``epochs`` (the ``epochs`` run option): the step floor and
    any step cap off, so that runs compared at equal optimizer steps really take them."""
    return config if epochs is None else dataclasses.replace(config, epochs=epochs, min_steps=None, max_steps=None)


def inert_ablations(recipe: object, profile: str, components: Sequence[str], options: RunOptions | None = None) -> list[str]:
    """The ``components`` whose ablation would not change what ``recipe`` trains at ``profile``
    (from ``options``, default the recipe's defaults), sorted."""
    base = dataclasses.replace(options if options is not None else options_type(recipe)(), ablate=())
    full = effective_config(recipe, profile, base)
    return sorted(name for name in components if effective_config(recipe, profile, dataclasses.replace(base, ablate=(name,))) == full)


def check_ablations(recipe: object, options: RunOptions, profile: str) -> None:
    """Every ablated component must change what the recipe trains; otherwise the "ablated" row
    would be the full system again under an ablation's name."""
    inert = inert_ablations(recipe, profile, options.ablate, options)
    if inert:
        raise ValueError(f"ablate={','.join(options.ablate)} at profile {profile!r}: the recipe does not use {', '.join(inert)} "
                         "(a run without them trains exactly as the full system, and would repeat it on the leaderboard under "
                         "an ablation's name); leave them out")
