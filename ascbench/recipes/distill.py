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
once per split (cached, see :mod:`ascbench.recipes.teachers`); students read its stored outputs,
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
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ascbench.distill.features import FeatureTaps, pooled_taps, tap_channels
from ascbench.distill.losses import DistillConfig, DistillObjective, resample_frames
from ascbench.distill.qat import attach_fake_quant, detach_fake_quant, has_fake_quant
from ascbench.distill.routing import Routing, route
from ascbench.features.cache import CachedFeatures
from ascbench.recipes.base import RecipeContext, RecipeResult
from ascbench.recipes.supervised import training_data, training_notes
from ascbench.recipes.teachers import TeacherConfig, TeacherStage, prepare_teacher
from ascbench.results.provenance import config_hash
from ascbench.systems.registry import model_input_shape
from ascbench.training import EpochEnd, TrainConfig, TrainingData, UnlabeledPool, get_profile, train
from ascbench.training.augment import roll_by, spec_layout
from ascbench.training.config import QUICK_MIN_STEPS


@dataclass(frozen=True)
class DistillRecipeConfig:
    """Everything that shapes a distilled student (hashed into its record)."""

    train: TrainConfig
    distill: DistillConfig
    teacher: TeacherConfig
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
    layer_logits: torch.Tensor
    cnn_features: np.ndarray
    """[N, T, D] float16, memory-mapped; batches are converted on the fly."""

    @classmethod
    def from_stage(cls, stage: TeacherStage) -> "TeacherTargets":
        return cls(
            # copies: the stage's arrays are read-only memory maps
            logits=torch.from_numpy(np.array(stage.outputs["logits"], dtype=np.float32)),
            layer_logits=torch.from_numpy(np.array(stage.outputs["layer_logits"], dtype=np.float32)),
            cnn_features=stage.outputs["cnn_features"],
        )

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

    @property
    def teacher_name(self) -> str:
        """Stage-sharing key for executors (the same teacher for every profile's kind)."""
        return next(iter(self.configs.values())).teacher.kind

    def config_for(self, profile: str, ablate: frozenset[str] = frozenset()) -> DistillRecipeConfig:
        """The configuration a run really trains with: components in ``ablate`` switched off."""
        config = self.config(profile)
        distill = config.distill.ablated(ablate)
        train = dataclasses.replace(
            config.train,
            fms_p=config.train.fms_p if distill.fms else 0.0,
            adir_p=config.train.adir_p if distill.adir else 0.0,
        )
        return dataclasses.replace(config, train=train, distill=distill)

    def fit(self, model: nn.Module, ctx: RecipeContext) -> RecipeResult:
        config = self.config_for(ctx.profile, ctx.ablate)
        distill, train_config = config.distill, config.train
        teacher = config.teacher
        if ctx.extra.get("teacher_seed") is not None:  # the runner's choice (the run's seed unless pinned)
            teacher = dataclasses.replace(teacher, finetune_seed=int(ctx.extra["teacher_seed"]))
        stage = targets = None
        if distill.teacher_signal:
            stage = prepare_teacher(ctx, teacher, ctx.extra.get("teacher_checkpoint"))
            targets = TeacherTargets.from_stage(stage)
        else:
            ctx.log(f"{ctx.spec.name}: no teacher term (front, hier, kd) is on, so no teacher is prepared")
        data = training_data(ctx, train_config)
        pool_kd = float(ctx.extra.get("pool_kd") or 0.0)
        if pool_kd > 0:
            data = with_unlabeled_pool(data, ctx, pool_kd, distill)
        front_tap = getattr(model, "front_tap", None)
        stage_taps = tuple(model.stage_taps()) if hasattr(model, "stage_taps") else ()
        if (distill.front and front_tap is None) or (distill.hier and not stage_taps):
            raise ValueError(f"{ctx.spec.name}: front alignment / hierarchical KD need a student with front_tap and stage_taps()")
        shape = model_input_shape(ctx.spec)[1:]
        timings = dict(stage.seconds) if stage is not None else {}
        notes: dict[str, object] = (_teacher_notes(stage, teacher) if stage is not None else {}) | {"ablate": sorted(ctx.ablate)}
        if data.pool is not None:
            notes["pool_kd"] = {"ratio": pool_kd, "pool_clips": len(data.pool.rows), "per_epoch": data.pool.per_epoch}

        roll = aligned_roll(ctx.features, train_config) if distill.front else None
        if roll is not None:  # the loss rolls the inputs, and the teacher's frames with them
            train_config = dataclasses.replace(train_config, roll_s=0.0)
            notes["time_roll"] = f"inputs and the teacher's frames rolled together, up to ±{roll.max_shift} input frames"
        stage_name = stage.directory.name if stage is not None else "none"
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
    run is recorded under its own name. (On synth-tau22 it adds nothing over the same number of
    steps on the split alone; see the README.)
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


