"""Fine-tuning any :class:`~ascbench.distill.teachers.base.TeacherClassifier` on a split's labelled clips,
and computing the per-clip teacher outputs that distillation reads.

The loss is cross-entropy on the final logits plus ``layer_loss_weight`` times the mean
cross-entropy of the per-layer heads: the layer heads must be trained classifiers, since
hierarchical KD (paper eq. 17) distils their softened distributions. Encoder and heads are
trained together with AdamW (the encoder at a lower learning rate), a linear warm-up and a cosine
decay. Augmentation: a random time roll of the input, and Freq-MixStyle for spectrogram-like
``[B, T, F]`` inputs (BEATs' fbank; it has no meaning for HuBERT's waveform and is skipped there).

It runs on the one training loop (:func:`ascbench.training.loop.fit`), which the students and
the teachers' pre-training run too: this module contributes the sampler, the loss and the
parameter groups. Fine-tuning a teacher costs minutes to hours, so given a work directory it is
resumable as the students' training is: a checkpoint after every epoch (model, optimizer,
schedule, gradient scaler, every random generator, epoch and step counters, history; written
atomically, fingerprinted), from which a killed fine-tuning continues bit-for-bit instead of
starting over. The teacher stage deletes it once the fine-tuned stage is published.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ascbench.features.cache import CachedFeatures
from ascbench.distill.teachers.base import TeacherClassifier
from ascbench.training.checkpoint import CHECKPOINT_FILE
from ascbench.training.config import epochs_for_min_steps
from ascbench.training.loop import Checkpointing, StepPlan, fit, shuffled_batches
from ascbench.training.precision import autocast, precision_tag
from ascbench.progress import progress_bar, stderr_log


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning hyper-parameters (hashed into the fine-tuned teacher stage's key)."""

    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    """Learning rate of the classification heads."""
    encoder_lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 5.0
    layer_loss_weight: float = 0.5
    """Weight of the mean per-layer-head cross-entropy next to the final head's."""
    roll_max: float = 0.3
    """Random circular shift of the time axis by up to this fraction of it; 0 disables."""
    fms_p: float = 0.0
    """Freq-MixStyle probability (``[B, T, F]`` inputs only)."""
    fms_alpha: float = 0.3
    max_steps: int | None = None
    """Cap on optimiser steps (smoke tests); None = ``epochs`` full passes."""
    min_steps: int | None = None
    """Floor on optimiser steps: on a small split the epochs grow until they make this many
    (``TrainConfig.min_steps``, the same floor as the students'); None = ``epochs`` as given."""


FINETUNE_REVISION = 5
"""Bumped whenever the code changes what a given :class:`FinetuneConfig` produces; it is part of the
fine-tuned stage's cache key, so teachers cached by older code are rebuilt, not reused.
2: numpy's global RNG is seeded (HuBERT's SpecAugment reads it); 3: torch's is seeded before the
classification heads are built (``ascbench.distill.teacher_recipe``); 4: BEATs' ``cnn_features`` are
time steps (frequency patches averaged), not the token sequence; 5: the shared training loop
(:mod:`ascbench.training.loop`): the students' schedule (the first warm-up step at LR 0, where it
was at 1/warm-up) and history means over batches, not clips."""


TEACHER_FINETUNE = FinetuneConfig(epochs=12, lr=3e-3, encoder_lr=1e-3)
"""The seed teachers' fine-tuning. Measured on synth-tau22-small (25 % split, BEATs-small):
6 epochs at encoder lr 2e-4 left the teacher under-fitted (28.7 % test accuracy, 33 % on its
training clips); 20 epochs at 1e-3 gave 31.8 %; 30 epochs at 2e-3 without augmentation fitted
the training clips (80 %) but not the test (31.3 %). 12 epochs at 1e-3 is the compromise at CPU cost."""


def finetune_teacher(
    classifier: TeacherClassifier,
    features: CachedFeatures,
    rows: np.ndarray,
    labels: np.ndarray,
    config: FinetuneConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    history: list[dict] | None = None,
    precision: torch.dtype | None = None,
    workdir: Path | None = None,
) -> TeacherClassifier:
    """Train ``classifier`` (in place) on ``features`` rows ``rows`` with class ``labels``.

    ``features`` must be the cache of ``classifier.frontend``. Per-epoch loss and training
    accuracy are appended to ``history`` when given. ``precision``: the autocast dtype (None:
    fp32; :func:`ascbench.training.precision.resolve_precision`). ``workdir``: where the per-epoch
    checkpoint is kept and resumed from (None: not resumable); the caller deletes it once the
    result is safe elsewhere. Returns the classifier in eval mode.
    """
    if features.frontend.key() != classifier.frontend.key():
        raise ValueError(f"the teacher takes {classifier.frontend.name!r} features, got {features.frontend.name!r}")
    rows, labels = np.asarray(rows, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if len(rows) != len(labels) or len(rows) == 0:
        raise ValueError(f"need as many labels as rows (and at least one), got {len(rows)} rows and {len(labels)} labels")
    device = torch.device(device)
    torch.manual_seed(seed)
    # HubertModel's fine-tuning SpecAugment (transformers' _compute_mask_indices) draws from numpy's
    # global RNG: unseeded, the teacher depended on what ran earlier in the process (a pre-training
    # stage built in-process or read from cache gave different teachers from the same weights).
    np.random.seed(seed % 2**32)
    classifier.to(device).train()
    optimizer = torch.optim.AdamW(_param_groups(classifier, config), weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    order = np.random.default_rng(seed)
    loss_fn = _classification_loss(classifier, features, rows, labels, config, generator, device)
    n_epochs = epochs_for_min_steps(config.epochs, len(rows), config.batch_size, config.min_steps)
    plan = StepPlan.of(len(rows), config.batch_size, n_epochs, config.max_steps)
    checkpoint = None
    if workdir is not None:
        fingerprint = finetune_fingerprint(classifier, features, rows, labels, config, seed, n_epochs, precision)
        checkpoint = Checkpointing(Path(workdir) / CHECKPOINT_FILE, fingerprint, {"order": order, "augment": generator})
    fitted = fit(classifier, optimizer, shuffled_batches(len(rows), config.batch_size, order), loss_fn, plan,
                 round(config.warmup_fraction * plan.total), device=device, precision=precision, grad_clip=config.grad_clip,
                 checkpoint=checkpoint, progress=progress, description="teacher fine-tuning",
                 log=stderr_log(progress, "teacher fine-tuning"))  # fmt: skip
    if history is not None:
        history.extend(stats.brief() for stats in fitted.history)
    return classifier.eval()


def _param_groups(classifier: TeacherClassifier, config: FinetuneConfig) -> list[dict]:
    """The encoder at ``encoder_lr``, the heads at ``lr``: the pre-trained weights move less."""
    encoder_ids = {id(p) for p in classifier.encoder.parameters()}
    return [
        {"params": list(classifier.encoder.parameters()), "lr": config.encoder_lr},
        {"params": [p for p in classifier.parameters() if id(p) not in encoder_ids], "lr": config.lr},
    ]


def _classification_loss(
    classifier: TeacherClassifier,
    features: CachedFeatures,
    rows: np.ndarray,
    labels: np.ndarray,
    config: FinetuneConfig,
    generator: torch.Generator,
    device: torch.device,
) -> Callable[[np.ndarray, int], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The loop's loss for a batch of indices into ``rows``: cross-entropy of the final head plus
    ``layer_loss_weight`` times that of the layer heads (they must be trained classifiers for
    hierarchical KD), with the batch's training accuracy."""
    labels_t = torch.from_numpy(labels)

    def loss_fn(index: np.ndarray, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = augment(features.batch(rows[index]), config, generator).to(device)
        y = labels_t[index].to(device)
        logits, _, layer_logits = classifier(x)
        logits, layer_logits = logits.float(), layer_logits.float()
        layers = layer_logits.shape[1]
        loss = nn.functional.cross_entropy(logits, y)
        loss = loss + config.layer_loss_weight * nn.functional.cross_entropy(layer_logits.flatten(0, 1), y.repeat_interleave(layers))
        return loss, {"accuracy": (logits.argmax(-1) == y).float().mean()}

    return loss_fn


def finetune_fingerprint(
    classifier: TeacherClassifier,
    features: CachedFeatures,
    rows: np.ndarray,
    labels: np.ndarray,
    config: FinetuneConfig,
    seed: int,
    epochs: int,
    precision: torch.dtype | None,
) -> str:
    """Identity of a fine-tuning call: everything its weights depend on, the starting weights
    included (the pre-trained encoder and the freshly drawn heads), so that a checkpoint left by
    another configuration, seed, split, precision or code revision is never resumed from."""
    digest = hashlib.sha256()
    digest.update(f"revision={FINETUNE_REVISION};seed={seed};epochs={epochs};precision={precision_tag(precision)}".encode())
    digest.update(repr(sorted(asdict(config).items())).encode())
    digest.update(f"{features.frontend.key()}|{features.key}".encode())  # content, not path: a moved home resumes
    for array in (rows, labels):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    digest.update(f"{type(classifier).__qualname__}/{type(classifier.encoder).__qualname__}".encode())
    for name, tensor in classifier.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.flatten().view(torch.uint8).numpy().tobytes())  # bytes of any dtype, bf16 included
    return digest.hexdigest()


def augment(x: torch.Tensor, config: FinetuneConfig, generator: torch.Generator) -> torch.Tensor:
    """Time roll (axis 1: samples of a waveform, frames of a spectrogram) and Freq-MixStyle."""
    if config.roll_max > 0:
        limit = max(1, int(x.shape[1] * config.roll_max))
        shift = int(torch.randint(-limit, limit + 1, (1,), generator=generator))
        x = torch.roll(x, shifts=shift, dims=1)
    if config.fms_p > 0 and x.dim() == 3 and float(torch.rand(1, generator=generator)) < config.fms_p:
        x = freq_mixstyle(x, config.fms_alpha, generator)
    return x


def freq_mixstyle(x: torch.Tensor, alpha: float, generator: torch.Generator) -> torch.Tensor:
    """Freq-MixStyle (Schmid et al., 2022) on ``[B, T, F]``: mix per-frequency mean/std over time
    with those of another clip, which perturbs the device's frequency response."""
    mu = x.mean(dim=1, keepdim=True)
    sigma = (x.var(dim=1, keepdim=True) + 1e-6).sqrt()
    lam = torch.distributions.Beta(alpha, alpha).sample((x.shape[0], 1, 1))
    perm = torch.randperm(x.shape[0], generator=generator)
    mixed_mu = lam * mu + (1 - lam) * mu[perm]
    mixed_sigma = lam * sigma + (1 - lam) * sigma[perm]
    return (x - mu) / sigma * mixed_sigma + mixed_mu


@torch.inference_mode()
def teacher_outputs(
    classifier: TeacherClassifier,
    features: CachedFeatures,
    rows: np.ndarray | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    cnn_steps: int = 25,
    progress: bool = False,
    precision: torch.dtype | None = None,
) -> dict[str, np.ndarray]:
    """What distillation needs from the teacher for each clip of ``rows`` (all rows when None):

    - ``logits`` ``[N, classes]`` float32, the final head;
    - ``layer_logits`` ``[N, layers, classes]`` float32, the per-layer heads (eq. 17);
    - ``cnn_features`` ``[N, cnn_steps, C]`` float16, the front-end features average-pooled over
      time to ``cnn_steps`` steps (default 25: half of HuBERT's 49 frames per second, the 2x
      temporal down-sampling the paper's front-end alignment uses), for eq. 14-15.
    """
    rows = np.arange(len(features), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    device = torch.device(device)
    classifier.to(device).eval()
    parts: dict[str, list[np.ndarray]] = {"logits": [], "layer_logits": [], "cnn_features": []}
    with progress_bar(progress, "teacher outputs", math.ceil(len(rows) / batch_size)) as bar:
        for start in range(0, len(rows), batch_size):
            with autocast(device, precision):
                logits, out, layer_logits = classifier(features.batch(rows[start : start + batch_size]).to(device))
            cnn = nn.functional.adaptive_avg_pool1d(out.cnn_features.float().transpose(1, 2), cnn_steps).transpose(1, 2)
            parts["logits"].append(logits.float().cpu().numpy())
            parts["layer_logits"].append(layer_logits.float().cpu().numpy())
            parts["cnn_features"].append(cnn.cpu().numpy().astype(np.float16))
            bar.advance(1)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}
