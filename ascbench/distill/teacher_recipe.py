"""Teacher stages of the distillation recipes: self-supervised pre-training on the unlabeled pool,
fine-tuning on the split, and the per-clip teacher outputs every student reads.

Each stage is cached on disk (:mod:`ascbench.distill.teachers.stages`) by data fingerprint, teacher
configuration, teacher seed and (for the fine-tuned stage and the unlabeled pool it pre-trains
on) training fraction. Pre-training plays the part of a published checkpoint: one per recipe
(``TeacherConfig.seed``), reused by every run. Fine-tuning is drawn with the run's own seed
(``finetune_seed``, set by the runner), as a paper's repeated runs each fine-tune the public
model: a mean ± std over seeds then covers the teacher's draw as well as the student's, which
alone can move a student by points (docs/experiments/split25.md). Every system and ablation row
of one seed shares that seed's teacher, so comparisons stay paired; ``ascbench run
--teacher-seed N`` pins one teacher for every seed.

Pre-training audio: the training-pool clips that are *not* in the split (docs/distillation.md).
At fraction 1.0 that pool is empty; the teacher then pre-trains on the split's own audio,
without its labels (still self-supervised), and the stage's manifest says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ascbench.checkpoints import checkpoint_identity
from ascbench.evaluation.metrics import macro_class_accuracy
from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import Frontend, KaldiFbank, RawWaveform
from ascbench.recipes.base import RecipeContext
from ascbench.results.provenance import config_hash
from ascbench.distill.teachers.base import TeacherClassifier, TeacherEncoder
from ascbench.distill.teachers.finetune import FINETUNE_REVISION, FinetuneConfig, finetune_teacher, teacher_outputs
from ascbench.distill.teachers.stages import TeacherStageKey, get_or_build, load_outputs, load_state, read_manifest, save_outputs, save_state
from ascbench.training.config import AmpMode
from ascbench.training.engine import global_rng_preserved
from ascbench.training.precision import autocast, precision_tag, resolve_precision

TeacherKind = Literal["hubert", "beats"]
ROUTING_CLIPS = 256
"""Training clips whose pooled layer representations decide the hierarchical-KD routing."""
MIN_PRETRAIN_CLIPS = 64


@dataclass(frozen=True)
class TeacherConfig:
    """Which teacher, how it is pre-trained and fine-tuned (hashed into the stage keys)."""

    kind: TeacherKind
    size: str
    """``small`` (CPU default) or ``base`` (the published architecture, for a GPU)."""
    pretrain: Any
    """:class:`HubertPretrainConfig` or :class:`BEATsPretrainConfig`."""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = 0
    """Seed of the self-supervised pre-training (one pre-trained teacher per recipe)."""
    finetune_seed: int | None = None
    """Seed of the fine-tuning (heads, batches, augmentation); None: ``seed``. The runner sets it
    to the run's seed, or to ``--teacher-seed``."""
    amp: AmpMode = "auto"
    """Precision of pre-training, fine-tuning and the stored outputs: "auto" is bf16 autocast on
    CUDA (fp16 on a GPU without bf16), bf16 on a CPU with native bf16 where ``bf16_on_cpu``, and fp32
    on other CPUs; "off" is fp32 everywhere. The resolved precision is part of both stage keys,
    so an fp32 and a bf16 teacher are cached apart (:mod:`ascbench.training.precision`)."""
    bf16_on_cpu: bool = True
    """Whether "auto" picks bf16 on a CPU with native bf16 (AMX or AVX512-BF16): worth it for
    HuBERT-small (1.9-2.4x faster steps), not for BEATs-small (``baselines/beats_mobilenetv2.py``)."""

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.size}"

    @property
    def tuning_seed(self) -> int:
        return self.seed if self.finetune_seed is None else self.finetune_seed


@dataclass
class TeacherStage:
    """A fine-tuned teacher's per-clip outputs (rows of the data set's clips, memory-mapped)."""

    outputs: dict[str, np.ndarray]
    """logits [N, C], layer_logits [N, L, C], cnn_features [N, T, D] (fp16), route_rows [R], route_layers [R, L, D]."""
    directory: Path
    reused: dict[str, bool]
    info: dict[str, Any]
    seconds: dict[str, float]
    frontend: Frontend
    """The teacher's input features (routing re-reads them by clip)."""
    cnn_dim: int = 0
    name: str = ""
    """The teacher as recorded: ``hubert-small``, ``beats-base``, or ``hubert-checkpoint`` for a local one."""
    pretraining_audio: str = ""
    """What the encoder was pre-trained on (:data:`PRETRAINING_AUDIO`): the leaderboard's DCASE
    check reads it, since the pool is development audio outside the split."""


PRETRAINING_AUDIO = {
    "pool": "the unlabeled training-pool clips outside the split",
    "split": "the split's own audio, without its labels",
    "checkpoint": "whatever a local --teacher-checkpoint was trained on (external to this data set)",
}


def teacher_frontend(kind: TeacherKind) -> Frontend:
    return RawWaveform(16_000) if kind == "hubert" else KaldiFbank()


def new_encoder(config: TeacherConfig) -> TeacherEncoder:
    """A randomly initialised encoder of the configured architecture (weights are loaded into it)."""
    if config.kind == "hubert":
        from ascbench.distill.teachers.hubert import HubertTeacher, build_hubert, hubert_config

        return HubertTeacher(build_hubert(hubert_config(config.pretrain.size, **dict(config.pretrain.model_overrides))))
    from ascbench.distill.teachers.beats import BEATsTeacher

    return BEATsTeacher.from_config(config.pretrain.model)


def teacher_precision(config: TeacherConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype the teacher's stages run in on ``device`` (None: fp32)."""
    return resolve_precision(config.amp, device, bf16_on_cpu=config.bf16_on_cpu)


def _pretrain(config: TeacherConfig, features: CachedFeatures, rows: np.ndarray, workdir: Path, device: torch.device,
              progress: bool, precision: torch.dtype | None) -> TeacherEncoder:  # fmt: skip
    if config.kind == "hubert":
        from ascbench.distill.teachers.hubert import HubertTeacher
        from ascbench.distill.teachers.hubert_pretrain import pretrain_hubert

        return HubertTeacher(pretrain_hubert(features, rows, config.pretrain, workdir, config.seed, device, progress, precision))
    from ascbench.distill.teachers.beats import BEATsTeacher
    from ascbench.distill.teachers.beats_pretrain import pretrain_beats

    return BEATsTeacher(pretrain_beats(features, rows, config.pretrain, workdir, config.seed, device, progress, precision))


def load_teacher_checkpoint(kind: TeacherKind, path: Path) -> TeacherEncoder:
    """A user's local teacher as an encoder; ``ValueError`` (naming the file) when it is not one.

    The CLI calls it once before any training, so a broken checkpoint is reported once, not by
    every run of the grid."""
    if kind == "hubert":
        from ascbench.distill.teachers.hubert import HubertTeacher, hubert_normalizes_input, load_hubert

        return HubertTeacher(load_hubert(path), normalize_input=hubert_normalizes_input(path))
    from ascbench.distill.teachers.beats import BEATsTeacher

    return BEATsTeacher.from_checkpoint(path)


# -- stages ----------------------------------------------------------------------------------------


def prepare_teacher(ctx: RecipeContext, config: TeacherConfig, checkpoint: Path | None = None) -> TeacherStage:
    """The fine-tuned teacher stage for this run's split, building the stages that are missing.

    The global random state is left as it was found: what the student draws next (its
    training-only modules, W_p and the stage heads) must not depend on whether the teacher was
    built in this process or read from the cache."""
    with global_rng_preserved():
        return _prepare_teacher(ctx, config, checkpoint)


def _prepare_teacher(ctx: RecipeContext, config: TeacherConfig, checkpoint: Path | None) -> TeacherStage:
    features = ctx.features_for(teacher_frontend(config.kind))
    dataset = ctx.split.dataset
    # the stages learn from the audio: keyed by its content too, so audio rewritten in place (same
    # names and sizes, the same data set fingerprint) never reuses a teacher trained on the old audio
    data_identity = hashlib.sha256(f"{dataset.fingerprint}|{features.key}".encode()).hexdigest()[:16]
    seconds: dict[str, float] = {}
    reused: dict[str, bool] = {}
    name = config.name if checkpoint is None else f"{config.kind}-checkpoint"  # a local teacher has its own size
    precision = teacher_precision(config, ctx.device)
    # fp32 keeps the keys of the stages cached before precision was configurable
    in_precision = "" if precision is None else f"|precision {precision_tag(precision)}"

    if checkpoint is not None:
        source = f"checkpoint:{checkpoint_identity(checkpoint, '--teacher-checkpoint')}"
        pretraining_audio = "checkpoint"

        def pretrained() -> TeacherEncoder:
            return load_teacher_checkpoint(config.kind, Path(checkpoint))
    else:
        pool, pretraining_audio = _pretraining_rows(ctx, features)
        pre_hash = config_hash(config.pretrain)
        if in_precision:
            pre_hash = hashlib.sha256(f"{pre_hash}{in_precision}".encode()).hexdigest()
        pre_key = TeacherStageKey("pretrain", config.name, pre_hash, data_identity, config.seed, ctx.split.fraction)
        started = time.perf_counter()

        def build_pretrained(directory: Path) -> dict:
            ctx.log(f"teacher {config.name}: self-supervised pre-training on {len(pool)} unlabeled clips")
            encoder = _pretrain(config, features, pool, _workdir(ctx, pre_key), ctx.device, ctx.progress, precision)
            save_state(encoder, directory)
            return {"clips": int(len(pool)), "pool": "unlabeled" if pretraining_audio == "pool" else "split audio without labels",
                    "precision": precision_tag(precision)}

        pre_dir, reused["pretrain"] = get_or_build(pre_key, build_pretrained, ctx.home)
        seconds["teacher_pretrain_s"] = time.perf_counter() - started
        shutil.rmtree(_workdir(ctx, pre_key), ignore_errors=True)  # its resume checkpoints: the stage is published
        if reused["pretrain"]:  # said now: the fine-tuning's own line follows
            ctx.log(f"teacher {config.name}: reusing the cached pretrain stage")
        source = pre_dir.name

        def pretrained() -> TeacherEncoder:
            return load_state(new_encoder(config), pre_dir)

    # one digest of everything the fine-tuned teacher depends on: the stage directory is named by
    # its first 12 hex digits, so the source must change them (appended, it was cut off)
    fine_hash = hashlib.sha256(f"{config_hash(config.finetune)}|{source}|revision {FINETUNE_REVISION}{in_precision}".encode()).hexdigest()
    fine_key = TeacherStageKey("finetune", name, fine_hash, data_identity, config.tuning_seed, ctx.split.fraction)
    started = time.perf_counter()

    def build_finetuned(directory: Path) -> dict:
        # the heads' initial weights come from torch's global RNG: seed it here, or they depend on
        # whether the pre-training stage was just built in this process or read from the cache
        torch.manual_seed(config.tuning_seed)
        classifier = TeacherClassifier(pretrained())
        ctx.log(f"teacher {name}: fine-tuning on {len(ctx.split.train)} labelled clips")
        history: list[dict] = []
        finetune_teacher(classifier, features, features.rows([c.filename for c in ctx.split.train]), ctx.train_labels(),
                         config.finetune, config.tuning_seed, ctx.device, ctx.progress, history, precision,
                         workdir=_workdir(ctx, fine_key))  # fmt: skip
        save_state(classifier, directory)
        outputs = teacher_outputs(classifier, features, device=ctx.device, progress=ctx.progress, precision=precision)
        outputs.update(_routing_layers(classifier, features, ctx, precision))
        save_outputs(outputs, directory)
        return {"source": source, "history": history, "precision": precision_tag(precision),
                **_teacher_accuracy(outputs["logits"], features, ctx)}

    fine_dir, reused["finetune"] = get_or_build(fine_key, build_finetuned, ctx.home)
    seconds["teacher_finetune_s"] = time.perf_counter() - started
    shutil.rmtree(_workdir(ctx, fine_key), ignore_errors=True)  # its epoch checkpoints: the stage is published
    if reused["finetune"]:
        ctx.log(f"teacher {name}: reusing the cached finetune stage")
    outputs = load_outputs(fine_dir)
    info = dict(read_manifest(fine_dir).get("info") or {})
    return TeacherStage(outputs, fine_dir, reused, info, seconds, features.frontend,
                        cnn_dim=int(outputs["cnn_features"].shape[-1]), name=name, pretraining_audio=pretraining_audio)


def _pretraining_rows(ctx: RecipeContext, features: CachedFeatures) -> tuple[np.ndarray, str]:
    """The clips self-supervised pre-training reads, and which :data:`PRETRAINING_AUDIO` they are."""
    if len(ctx.split.unlabeled) >= MIN_PRETRAIN_CLIPS:
        clips, audio = ctx.split.unlabeled, "pool"
    else:
        clips, audio = ctx.split.train, "split"
    return np.sort(features.rows([c.filename for c in clips])), audio


def _workdir(ctx: RecipeContext, key: TeacherStageKey) -> Path:
    """Resumable scratch space of an unfinished pre-training or fine-tuning (outside the atomic
    stage dir, which exists only once complete)."""
    return ctx.home / "teachers" / "work" / key.slug()


@torch.inference_mode()
def _routing_layers(classifier: TeacherClassifier, features: CachedFeatures, ctx: RecipeContext,
                    precision: torch.dtype | None) -> dict[str, np.ndarray]:  # fmt: skip
    """Time-pooled hidden states of every teacher layer on the first training clips (for routing)."""
    rows = np.sort(features.rows([c.filename for c in ctx.split.train]))[:ROUTING_CLIPS]
    classifier.to(ctx.device).eval()
    pooled = []
    for start in range(0, len(rows), 64):
        with autocast(ctx.device, precision):
            out = classifier.encoder(features.batch(rows[start : start + 64]).to(ctx.device))
        pooled.append(torch.stack([h.mean(dim=1) for h in out.hidden_states], dim=1).float().cpu())
    return {"route_rows": rows, "route_layers": torch.cat(pooled).numpy()}


def _teacher_accuracy(logits: np.ndarray, features: CachedFeatures, ctx: RecipeContext) -> dict[str, float | None]:
    """The fine-tuned teacher's macro accuracy on test (reported only; nothing is selected on it)."""
    rows = features.rows([c.filename for c in ctx.split.test])
    labels = np.array([c.label for c in ctx.split.test])
    return {"teacher_test_accuracy": macro_class_accuracy(labels, logits[rows].argmax(axis=1))}


def with_profile(config: TeacherConfig, *, pretrain: dict | None = None, finetune: dict | None = None) -> TeacherConfig:
    """``config`` with fields of its pre-training/fine-tuning configs replaced (profiles)."""
    return dataclasses.replace(
        config,
        pretrain=dataclasses.replace(config.pretrain, **(pretrain or {})),
        finetune=dataclasses.replace(config.finetune, **(finetune or {})),
    )


