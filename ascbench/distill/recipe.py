"""Distillation recipes: a self-supervised teacher's knowledge into a DCASE-sized student.

Two uses, one recipe (paper §3.3, eq. 14–19):

- ``beats-mobilenetv2`` [BASE_III]: logit KD only (KL at temperature T(t) plus CE), one stage.
- ``hubert-mobilenetv2`` [H_M], two stages:

  1. *front-end alignment* (eq. 14–15): the student's stem features are pulled towards the
     frozen teacher's projected CNN features by a cosine loss, together with CE (α1·L_front +
     α3·L_CE). Inputs are augmented with FMS and ADIR (eq. 13).
  2. *hierarchical semantic KD* (eq. 16–17): each student stage is routed to its three most
     similar teacher layers (linear CKA of time-pooled representations, computed on training clips
     with the stage-1 student; with ``--ablate front`` there is no stage 1, and the routing is
     computed with the freshly initialised student), and a training-only head on the stage is
     distilled towards their softened layer distributions at T(t) = Tmax·e^(−βt) + Tmin, with
     final-logit KD and the alignment term kept: the full eq. 19, α1·L_front + α2·L_KD + α3·L_CE.
     Quantization-aware training (eq. 18: per-channel int8 fake-quantised weights, straight-
     through gradients) runs in the last ``1 − qat_start`` of stage 2's epochs; the runner then
     converts the QAT-trained weights into the real int8 artifact whose size is reported.

Every component can be switched off (``--ablate fms,adir,front,hier,qat``). The teacher runs
once per split (cached, see :mod:`ascbench.distill.teacher_recipe`); students read its stored outputs,
computed on clean inputs, so augmentation perturbs only the student side (as in CP-JKU's
ensemble distillation). One exception: eq. 15 compares the student's frame i with the teacher's
frame i, so when front alignment is on the profile's time roll (up to ±0.1 s) is applied by the
loss, to the input and to the teacher's frames alike (:func:`aligned_roll`), not by the engine to
the input alone.

Not in the paper, opt-in (``--pool-kd R``): each epoch also draws R unlabeled training-pool clips
per labelled clip, on which the student learns from the teacher terms alone (no CE). The teacher
pre-trained on that pool, so this is how what it learnt there can reach the student; the audio is
outside the split, which DCASE forbids, and the leaderboard marks such rows as failing its rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ascbench.distill.features import FeatureTaps, pooled_taps, tap_channels
from ascbench.distill.losses import DistillConfig, DistillObjective, resample_frames
from ascbench.distill.qat import attach_fake_quant, detach_fake_quant, has_fake_quant
from ascbench.distill.routing import Routing, route
from ascbench.features.cache import CachedFeatures
from ascbench.distill.sources import SELF_SUPERVISED, parse_teacher
from ascbench.recipes.base import RecipeContext, RecipeResult, with_run_options
from ascbench.recipes.options import SOURCE_SEPARATOR, RunOptions
from ascbench.recipes.supervised import training_data, training_notes
from ascbench.distill.teacher_recipe import TeacherConfig, TeacherStage, prepare_teacher
from ascbench.results.provenance import config_hash
from ascbench.systems.registry import model_input_shape
from ascbench.training import EpochEnd, TrainConfig, TrainingData, UnlabeledPool, get_profile, train
from ascbench.training.augment import roll_by, spec_layout
from ascbench.training.config import QUICK_MIN_STEPS


POOL_KD_HELP = (
    "Distilled students also learn from the teacher on the split's unlabeled training-pool clips: "
    "R pool clips per labelled clip each epoch (teacher targets only; cross-entropy stays on the split). "
    "This is development audio outside the split, which the DCASE rules forbid; recorded as SYSTEM@pool-kdR. "
    "Default 0: the split's clips only."
)


@dataclass(frozen=True)
class DistillOptions(RunOptions):
    """A distilled system's run options: the teacher source (by default the self-supervised one
    the harness pre-trains), its fine-tuning seed, and pool KD."""

    teacher: str | None = field(default=SELF_SUPERVISED, metadata=dataclasses.fields(RunOptions)[0].metadata)
    teacher_seed: int | None = field(default=None, metadata={"label": lambda v: f"{SOURCE_SEPARATOR}teacher-seed{v}", "help": (
        "Fine-tune the pre-trained teacher with this seed in every run (recorded as SYSTEM@teacher-seedN); "
        "none: each run fine-tunes it with its own seed, so a mean over seeds covers the teacher's draw too")})
    pool_kd: float = field(default=0.0, metadata={"label": lambda v: f"{SOURCE_SEPARATOR}pool-kd{v:g}", "help": POOL_KD_HELP})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.teacher_seed is not None and self.teacher_seed < 0:
            raise ValueError(f"teacher_seed={self.teacher_seed}: expected a non-negative integer")
        if not math.isfinite(self.pool_kd) or self.pool_kd < 0:
            raise ValueError(f"pool_kd={self.pool_kd}: expected a non-negative number of pool clips per labelled clip, e.g. 1")


@dataclass(frozen=True)
class DistillRecipeConfig:
    """Everything that shapes a distilled student (hashed into its record)."""

    train: TrainConfig
    distill: DistillConfig
    teacher: TeacherConfig | None
    """The teacher network the recipe pre-trains or loads; None for a teacher that gives logits only."""
    two_stage: bool = True
    """Stage 1 front-end alignment, then stage 2 hierarchical KD; False: one KD stage."""
    stage1_fraction: float = 0.3
    """Share of the epochs (and of ``max_steps``) spent in stage 1."""


class StudentWithObjective(nn.Module):
    """The student and its training-only modules (W_p, stage heads), trained by one optimizer.

    Only ``student`` is deployed and measured; ``objective`` is dropped after training.
    """

    def __init__(self, student: nn.Module, objective: DistillObjective) -> None:
        super().__init__()
        self.student = student
        self.objective = objective

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


@dataclass
class TeacherTargets:
    """The teacher's stored outputs as tensors, indexed by feature-cache row."""

    logits: torch.Tensor
    layer_logits: torch.Tensor | None
    cnn_features: np.ndarray | None
    """[N, T, D] float16, memory-mapped; batches are converted on the fly (None: logits only)."""
    name: str = ""
    """What the engine's resume fingerprint calls the teacher."""

    @classmethod
    def from_stage(cls, stage: TeacherStage) -> "TeacherTargets":
        return cls(
            # copies: the stage's arrays are read-only memory maps
            logits=torch.from_numpy(np.array(stage.outputs["logits"], dtype=np.float32)),
            layer_logits=torch.from_numpy(np.array(stage.outputs["layer_logits"], dtype=np.float32)),
            cnn_features=stage.outputs["cnn_features"],
            name=stage.directory.name,
        )

    @classmethod
    def from_logits(cls, ctx: RecipeContext, data: TrainingData) -> "TeacherTargets":
        """The logits of a teacher that gives logits only, at the rows the student trains on (its
        labelled clips and any pool clips); the other rows are never read."""
        if ctx.teacher_logits is None:
            raise ValueError(f"{ctx.spec.name}: the run has no teacher logits (the runner resolves --teacher logits:/runs:)")
        rows = np.asarray(data.rows) if data.pool is None else np.concatenate([data.rows, data.pool.rows])
        logits = np.asarray(ctx.teacher_logits([ctx.features.filenames[r] for r in rows]), dtype=np.float32)
        table = np.zeros((len(ctx.features.filenames), logits.shape[1]), dtype=np.float32)
        table[rows] = logits
        digest = hashlib.sha256(logits.tobytes()).hexdigest()[:12]
        return cls(logits=torch.from_numpy(table), layer_logits=None, cnn_features=None, name=f"logits-{digest}")

    def front(self, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.cnn_features[rows.numpy()], dtype=np.float32)).to(device)


@dataclass
class DistillRecipe:
    """Train a student from a teacher; ``configs`` maps a profile name to the recipe config."""

    name: str
    configs: dict[str, DistillRecipeConfig] = field(default_factory=dict)

    def config(self, profile: str) -> DistillRecipeConfig:
        if profile not in self.configs:
            raise ValueError(f"recipe {self.name!r} has no profile {profile!r}; valid profiles: {', '.join(self.configs)}")
        return self.configs[profile]

    options_type = DistillOptions

    @property
    def teacher_name(self) -> str:
        """The teacher network (``hubert``, ``beats``) of the recipe's layered sources."""
        return next(iter(self.configs.values())).teacher.kind

    def config_for(self, profile: str, options: RunOptions = DistillOptions()) -> DistillRecipeConfig:
        """The configuration a run really trains with: ablated components switched off, and the
        teacher the source gives (a checkpoint's architecture is its own; a logits source has no
        teacher network), so the record never shows the harness's teacher where none was used."""
        config = self.config(profile)
        distill = config.distill.ablated(options.ablated)
        train = dataclasses.replace(
            with_run_options(config.train, options),
            fms_p=config.train.fms_p if distill.fms else 0.0,
            adir_p=config.train.adir_p if distill.adir else 0.0,
        )
        source = options.source
        teacher = config.teacher
        if source is not None and source.kind == "checkpoint":
            teacher = dataclasses.replace(teacher, size="checkpoint", pretrain=None)
        elif source is not None and not source.layered:
            teacher = None
        return dataclasses.replace(config, train=train, distill=distill, teacher=teacher)

    def validate(self, options: DistillOptions, profile: str, system: str, fractions: Sequence[float] = ()) -> None:
        """Refuse, with a sentence, what this recipe cannot train (before anything runs)."""
        distill = self.config_for(profile, options).distill
        source = options.source
        if source is None:
            if distill.teacher_signal:
                raise ValueError("teacher=none: its recipe distils from a teacher; give one with --teacher, or switch "
                                 "every teacher term off (--ablate front,hier,kd)")
        elif not source.layered:
            layered = [name for name, on in (("front-end alignment (front)", distill.front), ("hierarchical KD (hier)", distill.hier)) if on]
            if layered:
                raise ValueError(f"{' and '.join(layered)} read the teacher's layers, and --teacher {source.spec} gives logits "
                                 f"only; switch {'them' if len(layered) > 1 else 'it'} off with --ablate "
                                 f"{','.join(n.split('(')[1][:-1] for n in layered)} (the final-logit KD stays), or use a "
                                 "self-supervised or checkpoint: teacher")
            if options.teacher_seed is not None:
                raise ValueError(f"--teacher-seed fine-tunes a pre-trained teacher, and --teacher {source.spec} has none to fine-tune")
        elif source.kind == "checkpoint":
            check_teacher_checkpoint(source.path, self.teacher_name, system)
        if options.pool_kd > 0:
            if any(f >= 1.0 for f in fractions):
                raise ValueError(f"--pool-kd {options.pool_kd:g}: the 100 % split leaves no unlabeled training-pool clips; "
                                 "choose a smaller --fraction")
            if not distill.teacher_signal:
                what = f" without {', '.join(options.ablate)}" if options.ablate else ""
                raise ValueError(f"--pool-kd {options.pool_kd:g}: {system}{what} keeps no teacher term, so the pool clips "
                                 "would teach nothing (they have no labels); keep on one of front, hier, kd that its recipe uses")

    def fit(self, model: nn.Module, ctx: RecipeContext) -> RecipeResult:
        config = self.config_for(ctx.profile, ctx.options)
        teacher_seed = getattr(ctx.options, "teacher_seed", None)
        if config.teacher is not None:  # the run's seed unless pinned: each seed re-draws the teacher's fine-tuning too
            config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, finetune_seed=ctx.seed if teacher_seed is None else teacher_seed))
        return distil(model, ctx, config, getattr(ctx.options, "pool_kd", 0.0))


def distil(model: nn.Module, ctx: RecipeContext, config: DistillRecipeConfig, pool_kd: float = 0.0) -> RecipeResult:
    """Train ``model`` from the run's teacher under ``config``: the one distillation loop of every
    recipe (H_M's two stages, BASE_III's logit KD, a supervised system given ``--teacher``)."""
    distill, train_config = config.distill, config.train
    source = parse_teacher(ctx.options.teacher) if ctx.options.teacher else None
    data = training_data(ctx, train_config)
    if pool_kd > 0:
        data = with_unlabeled_pool(data, ctx, pool_kd, distill)
    stage = targets = None
    notes: dict[str, object] = {}
    if not distill.teacher_signal:
        ctx.log(f"{ctx.spec.name}: no teacher term (front, hier, kd) is on, so no teacher is prepared")
    elif source is not None and source.layered:
        stage = prepare_teacher(ctx, config.teacher, source.path if source.kind == "checkpoint" else None)
        targets = TeacherTargets.from_stage(stage)
        notes = _teacher_notes(stage, config.teacher)
    else:
        targets = TeacherTargets.from_logits(ctx, data)
        notes = {"teacher": source.spec if source else None, **ctx.teacher_info}
    notes["ablate"] = sorted(ctx.ablate)
    front_tap = getattr(model, "front_tap", None)
    stage_taps = tuple(model.stage_taps()) if hasattr(model, "stage_taps") else ()
    if (distill.front and front_tap is None) or (distill.hier and not stage_taps):
        raise ValueError(f"{ctx.spec.name}: front alignment / hierarchical KD need a student with front_tap and stage_taps()")
    shape = model_input_shape(ctx.spec)[1:]
    timings = dict(stage.seconds) if stage is not None else {}
    if data.pool is not None:
        notes["pool_kd"] = {"ratio": pool_kd, "pool_clips": len(data.pool.rows), "per_epoch": data.pool.per_epoch}

    roll = aligned_roll(ctx.features, train_config) if distill.front else None
    if roll is not None:  # the loss rolls the inputs, and the teacher's frames with them
        train_config = dataclasses.replace(train_config, roll_s=0.0)
        notes["time_roll"] = f"inputs and the teacher's frames rolled together, up to ±{roll.max_shift} input frames"
    stage_name = stage.directory.name if stage is not None else (targets.name if targets is not None else "none")
    stage1_config, stage2_config = split_stages(train_config, len(data), config.stage1_fraction if config.two_stage and distill.front else 0.0)
    front_module = None
    if stage1_config is not None:
        objective = DistillObjective(
            dataclasses.replace(distill, hier=False, final_kd=False),
            teacher_front_dim=stage.cnn_dim,
            student_front_channels=tap_channels(model, [front_tap], shape)[0],
            unlabeled=data.pool is not None,
            label_smoothing=train_config.label_smoothing,
        )
        wrapper = StudentWithObjective(model, objective)
        started = time.perf_counter()
        result = train(wrapper, data, stage1_config, ctx.workdir / "stage1", ctx.seed, ctx.device, ctx.progress,
                       loss_fn=_loss_fn(targets, distill, stage1_config, len(data), front_tap, (), stage_name, roll))  # fmt: skip
        timings["stage1_align_s"] = time.perf_counter() - started
        notes["stage1"] = training_notes(result)
        front_module = objective.front

    routing = _routing(model, stage, ctx, stage_taps, distill) if distill.hier else None
    if routing is not None:
        notes["routing"] = {"taps": list(stage_taps), "layers": [list(r) for r in routing.layers]}
    objective = DistillObjective(
        distill,
        teacher_front_dim=stage.cnn_dim if distill.front else None,
        student_front_channels=tap_channels(model, [front_tap], shape)[0] if distill.front else None,
        stage_channels=tap_channels(model, stage_taps, shape) if distill.hier else (),
        routing=routing,
        unlabeled=data.pool is not None,
        label_smoothing=train_config.label_smoothing,
    )
    if front_module is not None:
        objective.front = front_module  # W_p keeps what stage 1 learned
    if distill.qat_active(0, stage2_config.epochs):  # a stage too short for the epoch hook to reach
        attach_fake_quant(model)
    wrapper = StudentWithObjective(model, objective)
    started = time.perf_counter()
    result = train(
        wrapper, data, stage2_config, ctx.workdir / "stage2", ctx.seed, ctx.device, ctx.progress,
        loss_fn=_loss_fn(targets, distill, stage2_config, len(data), front_tap if distill.front else None,
                         stage_taps if distill.hier else (), stage_name, roll),
        on_epoch_end=_qat_hook(distill, stage2_config.epochs) if distill.qat else None,
    )  # fmt: skip
    timings["stage2_kd_s"] = time.perf_counter() - started
    notes["stage2"] = training_notes(result)
    student = wrapper.student
    if has_fake_quant(student):
        detach_fake_quant(student, bake=True)
        notes["qat"] = "int8-grid weights from quantization-aware training"
    return RecipeResult(model=student.eval(), stage_seconds=timings, notes=notes)


LOGIT_KD = DistillConfig(front=False, hier=False, qat=False, fms=True, adir=True)
"""The objective a supervised system trains with when given a teacher: BASE_III's, final-logit KL at
the adaptive temperature plus cross-entropy, weighted equally (eq. 19 with α1 unused)."""


def logit_kd_config(train_config: TrainConfig) -> DistillRecipeConfig:
    """A supervised recipe's configuration with a teacher that gives logits: its own training
    configuration (same profile, steps and augmentations) and :data:`LOGIT_KD`, in one stage."""
    return DistillRecipeConfig(train_config, LOGIT_KD, teacher=None, two_stage=False)


def check_teacher_checkpoint(path: Path, kind: str, system: str) -> None:
    """A local teacher must be of the recipe's kind and load (read once here, so a broken file is
    one error before any run, not one per run)."""
    from ascbench.checkpoints import teacher_checkpoint_format
    from ascbench.distill.teacher_recipe import load_teacher_checkpoint

    try:
        held = teacher_checkpoint_format(path)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    if held != kind:
        raise ValueError(f"--teacher-checkpoint {path} holds a {held} teacher, not the {kind} teacher of {system}: "
                         "run it without that checkpoint, or in a separate command")
    try:
        load_teacher_checkpoint(held, path)
    except OSError as error:
        raise ValueError(f"--teacher-checkpoint: {error}") from None


def _teacher_notes(stage: TeacherStage, teacher: TeacherConfig) -> dict[str, object]:
    return {
        "teacher": stage.name,
        "teacher_stage": stage.directory.name,
        "teacher_seed": teacher.tuning_seed,
        "teacher_reused": stage.reused,
        "teacher_test_accuracy": stage.info.get("teacher_test_accuracy"),
        "teacher_precision": stage.info.get("precision", "fp32"),  # stages built before it was recorded were fp32
        "teacher_pretraining_audio": stage.pretraining_audio,
    }


def with_unlabeled_pool(data: TrainingData, ctx: RecipeContext, ratio: float, distill: DistillConfig) -> TrainingData:
    """``data`` plus the split's unlabeled training-pool clips, ``ratio`` of them per labelled clip
    in each epoch (``ascbench run --pool-kd``).

    Why: to test whether a teacher pre-trained on the pool knows more than the labelled clips
    show, which a student meeting its outputs on those clips alone could never learn. The pool
    clips carry the teacher's targets (every KD and alignment term) and no cross-entropy. It is
    development audio outside the split, which the DCASE rules do not allow: opt-in only, and the
    run is recorded under its own name. (Measured against the same number of steps on the split
    alone in docs/experiments/split5.md and docs/experiments/split25.md.)
    """
    if not distill.teacher_signal:  # the recipe's own choices count, not only --ablate
        raise ValueError("--pool-kd: every teacher term is switched off, so the unlabeled pool clips would teach nothing")
    clips = ctx.split.unlabeled
    if not clips:
        raise ValueError(f"--pool-kd: the {ctx.split.fraction:.0%} split leaves no unlabeled training-pool clips to distil on")
    per_epoch = min(len(clips), max(1, round(ratio * len(data.rows))))
    if per_epoch < round(ratio * len(data.rows)):
        ctx.log(f"--pool-kd {ratio:g}: the pool has {len(clips)} clips, so each epoch draws all of them")
    pool = UnlabeledPool(
        rows=ctx.features.rows([c.filename for c in clips]),
        devices=np.array([c.device for c in clips]) if data.devices is not None else None,
        per_epoch=per_epoch,
    )
    return dataclasses.replace(data, pool=pool)


def split_stages(config: TrainConfig, clips_per_epoch: int, stage1_fraction: float) -> tuple[TrainConfig | None, TrainConfig]:
    """Stage 1 and stage 2 configs sharing the profile's epochs (and step cap).

    The run is sized for its training set first, so a step floor (``min_steps``) covers both
    stages together, as it does a one-stage student's run: H_M trains no more steps than the
    students it is compared with."""
    config = config.sized_for(clips_per_epoch)
    if stage1_fraction <= 0:
        return None, config
    first = max(1, round(config.epochs * stage1_fraction))
    second = max(1, config.epochs - first)
    steps = (None, None)
    if config.max_steps is not None:
        s1 = max(1, round(config.max_steps * stage1_fraction))
        steps = (s1, max(1, config.max_steps - s1))
    return (
        dataclasses.replace(config, epochs=first, max_steps=steps[0]),
        dataclasses.replace(config, epochs=second, max_steps=steps[1]),
    )


@dataclass(frozen=True)
class AlignedRoll:
    """The profile's time roll, applied by the distillation loss instead of the engine."""

    max_shift: int
    """Largest shift, in frames of the student's input."""
    time_dim: int
    """The time axis of the student's ``[B, C, F, T]``-style input batch."""


def aligned_roll(features: CachedFeatures, config: TrainConfig) -> AlignedRoll | None:
    """The time roll of ``config`` for a student whose early features are aligned frame by frame
    with the teacher's (eq. 15); None when there is none to apply.

    Why: the engine rolls each input by its own random shift, while the teacher's frames, stored
    from the clean clip, stay put: frame i of the student would be compared with another instant's
    teacher frame i. Rolled in the loss, the same shift moves both."""
    shape = tuple(features.array.shape[1:])
    if config.roll_s <= 0 or len(shape) != 2:
        return None
    layout = spec_layout(features.frontend, shape)
    shift = int(round(config.roll_s * layout.frames_per_second))
    return AlignedRoll(shift, layout.time_dim) if shift > 0 else None


def _loss_fn(targets: TeacherTargets, distill: DistillConfig, config: TrainConfig, n_clips: int,
             front_tap: str | None, stage_taps: tuple[str, ...], teacher_stage: str, roll: AlignedRoll | None = None):  # fmt: skip
    """The engine's loss hook: eq. 19 over one batch, teacher targets looked up by cache row.

    With ``roll`` each input is rolled here, by a shift drawn from torch's generator (saved with
    every epoch checkpoint), and the teacher's CNN frames, brought to the input's frame rate, by
    the same shift.

    Its ``__qualname__`` names the teacher stage, hashes ``distill`` and states the roll: the
    engine's resume fingerprint includes it, so an epoch checkpoint distilled from another teacher,
    or under other α's, temperatures, routing or roll, is never resumed from."""
    steps_per_epoch = max(1, math.ceil(n_clips / config.batch_size))
    names = ([front_tap] if front_tap else []) + list(stage_taps)

    def loss(wrapper: StudentWithObjective, inputs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, step: int) -> torch.Tensor:
        objective = wrapper.objective
        device = inputs.device
        teacher_front = targets.front(rows, device) if objective.front is not None else None
        if roll is not None:
            shifts = torch.randint(-roll.max_shift, roll.max_shift + 1, (inputs.shape[0],))
            inputs = roll_by(inputs, shifts, roll.time_dim)
            if teacher_front is not None:
                teacher_front = roll_by(resample_frames(teacher_front, inputs.shape[roll.time_dim]), shifts, 1)
        with FeatureTaps(wrapper.student, names) as taps:
            logits = wrapper(inputs)
        temperature = distill.temperature(step // steps_per_epoch, config.epochs)
        terms = objective(
            logits,
            labels,
            temperature,
            teacher_logits=targets.logits[rows].to(device) if objective.config.final_kd else None,
            teacher_layer_logits=targets.layer_logits[rows].to(device) if objective.hier is not None else None,
            stage_features=taps.take(stage_taps) if stage_taps else (),
            teacher_front=teacher_front,
            student_front=taps[front_tap] if objective.front is not None else None,
        )
        return terms.total

    loss.__qualname__ = (f"distill(teacher={teacher_stage}, taps={names}, config={config_hash(distill)[:16]}, "
                         f"roll={roll.max_shift if roll else 0})")
    return loss


def _routing(student: nn.Module, stage: TeacherStage, ctx: RecipeContext, taps: tuple[str, ...], distill: DistillConfig) -> Routing:
    """Route each student stage to its top-k CKA-similar teacher layers on the routing clips."""
    teacher_features = ctx.features_for(stage.frontend)
    filenames = [teacher_features.filenames[r] for r in np.asarray(stage.outputs["route_rows"])]
    inputs = ctx.features.batch(ctx.features.rows(filenames))
    if len(model_input_shape(ctx.spec)) == 4:
        inputs = inputs.unsqueeze(1)
    student_pooled = pooled_taps(student.cpu(), taps, inputs)
    teacher_pooled = torch.from_numpy(np.array(stage.outputs["route_layers"], dtype=np.float32))  # a copy: the stage is a read-only memory map
    return route(student_pooled, teacher_pooled, k=min(distill.top_k, teacher_pooled.shape[1]))


def _qat_hook(distill: DistillConfig, epochs: int):
    """Attach weight fake-quantization once the late epochs begin (deterministic in the epoch,
    so the engine can replay it when resuming)."""

    def hook(end: EpochEnd) -> None:
        # end.epoch is 1-based and finished; the next epoch (0-based index end.epoch) runs with QAT
        if end.epoch < epochs and distill.qat_active(end.epoch, epochs) and not has_fake_quant(end.model.student):
            attach_fake_quant(end.model.student)

    return hook


def teacher_profiles(
    make_teacher: Callable[[str], TeacherConfig], smoke_pretrain: dict, quick_pretrain: dict | None = None
) -> dict[str, TeacherConfig]:
    """Teacher configs per profile: the small teacher at ``quick`` (its pre-training cut by
    ``quick_pretrain`` so that a whole CPU run stays in minutes, its fine-tuning held to the
    students' step floor so that a small split does not under-train it either), a base-size one at
    ``dcase`` (for a GPU), and at ``smoke`` the small one with its loops cut to a few steps."""
    small = make_teacher("small")
    quick = dataclasses.replace(
        small,
        pretrain=dataclasses.replace(small.pretrain, **(quick_pretrain or {})),
        finetune=dataclasses.replace(small.finetune, min_steps=QUICK_MIN_STEPS),
    )
    smoke = dataclasses.replace(
        small,
        pretrain=dataclasses.replace(small.pretrain, **smoke_pretrain),
        finetune=dataclasses.replace(small.finetune, max_steps=2),
    )
    return {"smoke": smoke, "quick": quick, "dcase": make_teacher("base")}


def distill_configs(teachers: dict[str, TeacherConfig], distill: DistillConfig, two_stage: bool, adir_p: float) -> dict[str, DistillRecipeConfig]:
    """One recipe config per training profile, with the paper's augmentations on."""
    configs = {}
    for profile, teacher in teachers.items():
        train_config = dataclasses.replace(get_profile(profile), adir_p=adir_p)
        configs[profile] = DistillRecipeConfig(train_config, distill, teacher, two_stage=two_stage)
    return configs


