"""The default recipe (docs/systems.md): cross-entropy with AdamW, cosine schedule with warm-up,
Freq-MixStyle, device impulse response augmentation, time roll and frequency masking — the
DCASE 2024 baseline recipe at the ``dcase`` profile, a shorter one at ``quick``.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from ascbench.features.frontends import RawWaveform
from ascbench.recipes.base import RecipeContext, RecipeResult, with_run_options
from ascbench.recipes.options import RunOptions
from ascbench.training import TrainConfig, TrainingData, TrainResult, get_profile, train
from ascbench.training.loop import WARMUP_SHARE_LIMIT, warmup_share, warmup_warning

ADIR_WAVEFORM_RATE = 32_000
"""ADIR convolves cached 32 kHz waveforms: the rate the baseline mel resamples to anyway."""


def ablated(config: TrainConfig, ablate: frozenset[str]) -> TrainConfig:
    """``config`` with the augmentations named in ``--ablate`` switched off."""
    changes = {}
    if "fms" in ablate:
        changes["fms_p"] = 0.0
    if "adir" in ablate:
        changes["adir_p"] = 0.0
    return dataclasses.replace(config, **changes) if changes else config


def training_data(ctx: RecipeContext, config: TrainConfig) -> TrainingData:
    """The split's labelled clips from the cache, with waveforms only when ADIR or a waveform roll
    needs them."""
    spectrogram = len(ctx.spec.frontend.output_shape()) > 1
    needs_waves = config.adir_p > 0 or (config.roll_domain == "waveform" and config.roll_s > 0)
    waveforms = ctx.features_for(RawWaveform(ADIR_WAVEFORM_RATE)) if needs_waves and spectrogram else None
    return TrainingData(
        features=ctx.features,
        rows=ctx.train_rows(),
        labels=ctx.train_labels(),
        devices=ctx.train_devices(),
        waveforms=waveforms,
    )


def training_notes(result: TrainResult) -> dict[str, object]:
    """What the record keeps of a training call: enough to see it converged and how fast."""
    last = result.history[-1] if result.history else None
    return {
        "epochs": result.epochs,
        "steps": result.steps,
        "resumed_from_epoch": result.resumed_from,
        "final_train_loss": None if last is None else round(last.loss, 5),
        "clips_per_second": None if last is None else round(last.clips_per_second, 1),
        "precision": result.precision,
        "device": result.device,
        **({"warmup_warning": warmup_warning(result.warmup_steps, result.steps)}
           if result.steps and warmup_share(result.warmup_steps, result.steps) > WARMUP_SHARE_LIMIT else {}),  # fmt: skip
    }


class SupervisedRecipe:
    """Train the deployable model on the split's labels, alone or, given ``--teacher logits:FILE``
    or ``--teacher runs:SYS``, with logit KD from that teacher (BASE_III's objective: KL at the
    adaptive temperature plus cross-entropy, :data:`LOGIT_KD`) at the same profile and steps.

    ``budgets`` changes fields of named profiles for one system, e.g.
    ``SupervisedRecipe({"quick": {"epochs": 6}})`` for a network too slow for the shared
    ``quick`` budget on a CPU. The record's ``recipe_config`` (and its hash) carries the values
    trained with, so a leaderboard row never hides a shorter budget.
    """

    name = "supervised"
    options_type = RunOptions

    def __init__(self, budgets: dict[str, dict[str, object]] | None = None) -> None:
        self.budgets = {profile: dict(fields) for profile, fields in (budgets or {}).items()}
        for profile, fields in self.budgets.items():
            get_profile(profile)  # an unknown profile fails here, at registration
            unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(TrainConfig)})
            if unknown:
                raise ValueError(f"budget of profile {profile!r}: {unknown} are not TrainConfig fields")

    def config(self, profile: str) -> TrainConfig:
        base = get_profile(profile)
        changes = self.budgets.get(profile)
        return dataclasses.replace(base, **changes) if changes else base

    def config_for(self, profile: str, options: RunOptions = RunOptions()) -> object:
        """The configuration a run really trains with: the profile's, minus what is ablated, and
        with a teacher the logit-KD recipe around it."""
        config = with_run_options(ablated(self.config(profile), options.ablated), options)
        if options.teacher is None:
            return config
        from ascbench.distill.recipe import logit_kd_config

        return logit_kd_config(config)

    def validate(self, options: RunOptions, profile: str, system: str, fractions: object = ()) -> None:
        """A supervised system learns from a teacher that gives logits; it has no teacher network of
        its own to pre-train or to load a checkpoint into."""
        from ascbench.distill.sources import parse_teacher

        if options.teacher is None:
            return
        source = parse_teacher(options.teacher)
        if source.layered:
            raise ValueError(f"--teacher {source.spec}: its recipe has no teacher network to pre-train or load; give it a "
                             "teacher that gives logits (logits:FILE or runs:SYS[,SYS...]), or choose a distilled system "
                             "(hubert-mobilenetv2, beats-mobilenetv2)")
        if system in source.systems:
            raise ValueError(f"--teacher {source.spec}: a system cannot learn from its own run; name other systems")

    def fit(self, model: nn.Module, ctx: RecipeContext) -> RecipeResult:
        if ctx.options.teacher is not None:
            from ascbench.distill.recipe import distil

            return distil(model, ctx, self.config_for(ctx.profile, ctx.options))
        config = self.config_for(ctx.profile, ctx.options)
        result = train(
            model,
            training_data(ctx, config),
            config,
            workdir=ctx.workdir,
            seed=ctx.seed,
            device=ctx.device,
            progress=ctx.progress,
        )
        return RecipeResult(
            model=result.model,
            notes=training_notes(result),
        )
