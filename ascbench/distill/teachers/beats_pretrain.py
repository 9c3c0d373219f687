"""BEATs self-supervised pre-training, first iteration: masked prediction of random-projection tokens.

BEATs (Chen et al., 2023) alternates between training an audio encoder to predict discrete labels
of masked patches and training a tokenizer from that encoder. Its *first* iteration needs no
teacher: labels come from a **random-projection tokenizer** (frozen and random, as in BEST-RQ):

    z(patch) = argmin_k || normalize(W s(patch)) - c_k ||,   c_k = normalize(random vector k)

where ``patch`` is the 16 x 16 block of fbank values under a token, ``s`` standardises each of its
256 values with statistics measured once on the training clips, ``W`` is a random 256 x d
projection and ``{c_k}`` a random codebook of ``K`` unit vectors (nearest neighbour of unit
vectors = largest cosine). Random projections preserve distances roughly (Johnson-Lindenstrauss),
so similar patches share labels: predicting them forces the encoder to model spectral content.

**Masked patch prediction.** About 75 % of each clip's patches are masked: their encoder input
tokens are replaced by one learnable mask embedding, the whole sequence goes through the encoder,
and a linear head on the outputs at the masked positions predicts their labels (cross-entropy).
(The official recipe instead drops masked patches from the encoder, MAE-style, and predicts
with a small transformer; the mask-token form keeps the encoder's input length fixed, which is
what the teacher sees later.) Only the encoder is kept: it is saved in the official checkpoint
format, so :func:`~ascbench.distill.teachers.beats.load_beats_checkpoint` and ``--teacher-checkpoint``
read it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import KaldiFbank
from ascbench.distill.teachers.beats import BEATS_BASE_RELPOS, BEATs, BEATsConfig, beats_macs, count_parameters
from ascbench.training.checkpoint import save_atomic
from ascbench.training.loop import Checkpointing, StepPlan, fit
from ascbench.training.precision import precision_tag
from ascbench.progress import stderr_log

CHECKPOINT_FILE = "beats_pretrained.pt"
"""The pre-trained encoder in the official format, written to ``workdir`` at the end."""
RESUME_FILE = "pretrain_state.pt"
"""Training state after each epoch, so that an interrupted run resumes there."""
LOG_FILE = "pretrain_log.json"

PRETRAIN_REVISION = 2
"""Bumped whenever the code changes what a given :class:`BEATsPretrainConfig` produces. It is a
field of the config, so it reaches the pre-trained stage's cache key (the config's hash) and
encoders cached by older code are rebuilt, not reused. 2: the shared training loop
(:mod:`ascbench.training.loop`): the students' warm-up (the first step at LR 0, where it was at
1/warm-up) and its checkpoint format."""


SMALL_MODEL = replace(
    BEATS_BASE_RELPOS,
    embed_dim=64,
    encoder_layers=3,
    encoder_embed_dim=96,
    encoder_ffn_embed_dim=192,
    encoder_attention_heads=4,
    conv_pos=32,
    conv_pos_groups=16,
    layer_wise_gradient_decay_ratio=1.0,
    dropout=0.0,
    attention_dropout=0.0,
)
"""A CPU-sized BEATs with the released architecture (gated relative bias, DeepNorm):
see :data:`PRETRAIN_CONFIGS` for its size and cost."""


@dataclass(frozen=True)
class BEATsPretrainConfig:
    """Masked-prediction pre-training of :attr:`model` on random-projection labels."""

    model: BEATsConfig = field(default_factory=lambda: SMALL_MODEL)
    codebook_size: int = 256
    codebook_dim: int = 16
    mask_ratio: float = 0.75
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    grad_clip: float = 2.0
    stats_clips: int = 512
    """Clips used to measure the per-value patch statistics of the tokenizer."""
    revision: int = field(default=PRETRAIN_REVISION, init=False)
    """:data:`PRETRAIN_REVISION`: the code's, not a setting (hashed with the config)."""

    def __post_init__(self) -> None:
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio={self.mask_ratio}: must be strictly between 0 and 1")
        if self.codebook_size < 2 or self.codebook_dim < 1:
            raise ValueError(f"codebook {self.codebook_size} x {self.codebook_dim}: need >= 2 codes of dimension >= 1")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}: must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


PRETRAIN_CONFIGS: dict[str, BEATsPretrainConfig] = {
    "small": BEATsPretrainConfig(),
    "base": BEATsPretrainConfig(
        model=replace(BEATS_BASE_RELPOS, layer_wise_gradient_decay_ratio=1.0),
        codebook_size=1024,
        epochs=30,
        batch_size=128,
        lr=5e-4,
        warmup_fraction=0.1,
    ),
}
"""``small``: for CPU (3 layers x 96, minutes on a few thousand clips); ``base``: BEATs base
(12 layers x 768, 90.3 M parameters), for a GPU."""


# -- tokenizer -----------------------------------------------------------------------------------


def fbank_patches(fbank: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, frames, mel]`` -> ``[B, T, patch_size**2]``, in the encoder's token order (time-major),
    leftover frames and bins dropped as the patch convolution does."""
    batch, frames, mels = fbank.shape
    nt, nf = frames // patch_size, mels // patch_size
    x = fbank[:, : nt * patch_size, : nf * patch_size].reshape(batch, nt, patch_size, nf, patch_size)
    return x.permute(0, 1, 3, 2, 4).reshape(batch, nt * nf, patch_size * patch_size)


class RandomProjectionTokenizer(nn.Module):
    """Frozen random projection + nearest neighbour in a random codebook -> one label per patch."""

    def __init__(self, patch_size: int, codebook_size: int, codebook_dim: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        values = patch_size * patch_size
        self.patch_size = patch_size
        self.register_buffer("projection", torch.randn(values, codebook_dim, generator=generator) / math.sqrt(values))
        self.register_buffer("codebook", F.normalize(torch.randn(codebook_size, codebook_dim, generator=generator), dim=-1))
        self.register_buffer("mean", torch.zeros(values))
        self.register_buffer("std", torch.ones(values))

    @torch.no_grad()
    def fit_statistics(self, fbank: torch.Tensor) -> None:
        """Standardise patch values with the mean and std of each of the 256 positions in ``fbank``."""
        patches = fbank_patches(fbank, self.patch_size).reshape(-1, self.patch_size**2)
        self.mean.copy_(patches.mean(dim=0))
        self.std.copy_(patches.std(dim=0).clamp_min(1e-5))

    @torch.no_grad()
    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        """``fbank`` [B, frames, mel] -> labels [B, T] (int64 in ``[0, codebook_size)``)."""
        patches = (fbank_patches(fbank, self.patch_size) - self.mean) / self.std
        projected = F.normalize(patches @ self.projection, dim=-1)
        return (projected @ self.codebook.T).argmax(dim=-1)


# -- masked prediction ---------------------------------------------------------------------------


def random_mask(batch: int, tokens: int, ratio: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[batch, tokens]`` bool, exactly ``round(ratio * tokens)`` (at least 1) True per row, uniformly."""
    count = min(tokens, max(1, round(ratio * tokens)))
    scores = torch.rand(batch, tokens, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return (ranks < count).to(device)


class MaskedPatchModel(nn.Module):
    """Encoder + learnable mask embedding + linear label head, for masked patch prediction."""

    def __init__(self, encoder: BEATs, codebook_size: int):
        super().__init__()
        dim = encoder.cfg.encoder_embed_dim
        self.encoder = encoder
        self.mask_embedding = nn.Parameter(torch.randn(dim) * 0.02)
        self.head = nn.Linear(dim, codebook_size)

    def forward(self, fbank: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[masked tokens, codebook_size]`` for the masked positions, in ``mask[mask]`` order."""
        _, tokens = self.encoder.embed(fbank)
        if mask.shape != tokens.shape[:2]:
            raise ValueError(f"mask {tuple(mask.shape)} does not match the {tuple(tokens.shape[:2])} tokens of this fbank")
        tokens = torch.where(mask.unsqueeze(-1), self.mask_embedding.to(tokens.dtype), tokens)
        features, _ = self.encoder.encode(tokens)
        return self.head(features[mask])

    def loss(self, fbank: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy, accuracy) of the masked patches' labels."""
        logits = self(fbank, mask)
        target = labels[mask]
        return F.cross_entropy(logits.float(), target), (logits.argmax(-1) == target).float().mean()


def build_pretraining(config: BEATsPretrainConfig, seed: int) -> tuple[MaskedPatchModel, RandomProjectionTokenizer]:
    """The model to train and its (unfitted) tokenizer, deterministic in ``seed``."""
    torch.manual_seed(seed)
    encoder = BEATs(replace(config.model, finetuned_model=False))
    tokenizer = RandomProjectionTokenizer(config.model.input_patch_size, config.codebook_size, config.codebook_dim, seed=seed + 1)
    return MaskedPatchModel(encoder, config.codebook_size), tokenizer


def describe(config: BEATsPretrainConfig) -> dict[str, int]:
    """Encoder parameters and MACs per 1-second clip (98 x 128 fbank) of ``config.model``."""
    with torch.device("meta"):
        encoder = BEATs(replace(config.model, finetuned_model=False))
    return {"params": count_parameters(encoder), "macs_per_clip": beats_macs(encoder.cfg)}


MaskedBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""One pre-training batch: fbank ``[B, frames, mel]``, its patch labels ``[B, T]`` and the mask ``[B, T]``."""


# -- training loop -------------------------------------------------------------------------------


def pretrain_beats(
    features: CachedFeatures,
    rows: Sequence[int] | np.ndarray,
    config: BEATsPretrainConfig,
    workdir: Path | str,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    precision: torch.dtype | None = None,
) -> BEATs:
    """Pre-train a BEATs encoder on the clips ``rows`` of ``features`` (a :class:`KaldiFbank` cache).

    Writes to ``workdir``: ``beats_pretrained.pt`` (official format plus a ``pretrain`` entry
    with the config, seed and per-epoch history), ``pretrain_log.json`` (the history), and, while
    running, ``pretrain_state.pt`` after every epoch: a run interrupted and restarted with the
    same data, config and seed resumes after its last finished epoch. Returns the encoder in eval
    mode on ``device``. ``precision``: the autocast dtype of the training steps (None: fp32; fp16
    adds a gradient scaler).
    """
    if not isinstance(features.frontend, KaldiFbank):
        raise ValueError(f"BEATs pre-training needs KaldiFbank features; the cache {features.path} holds {features.frontend.key()}")
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size < 1:
        raise ValueError("pretrain_beats: no clips to pre-train on (rows is empty)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    model, tokenizer = build_pretraining(config, seed)
    generator = np.random.default_rng(seed)
    stats_rows = np.sort(generator.choice(rows, size=min(config.stats_clips, rows.size), replace=False))
    tokenizer.fit_statistics(features.batch(stats_rows))
    model.to(device)
    tokenizer.to(device)

    plan = StepPlan.of(rows.size, config.batch_size, config.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    checkpoint = Checkpointing(workdir / RESUME_FILE, _run_identity(features, rows, config, seed, precision))
    fitted = fit(model, optimizer, _masked_batches(features, rows, tokenizer, config, seed, device), _masked_loss(model), plan,
                 round(config.warmup_fraction * plan.total), device=device, precision=precision, grad_clip=config.grad_clip,
                 checkpoint=checkpoint, progress=progress, description="BEATs pre-training",
                 log=stderr_log(progress, "BEATs pre-training"))  # fmt: skip

    encoder = model.encoder.eval()
    history = [{**stats.brief(), "seconds": stats.seconds} for stats in fitted.history]
    info = {"config": config.to_dict(), "seed": seed, "clips": int(rows.size), "history": history, **describe(config)}
    save_atomic(workdir / CHECKPOINT_FILE, encoder.checkpoint(pretrain=info))
    (workdir / LOG_FILE).write_text(json.dumps(info, indent=1))
    checkpoint.path.unlink(missing_ok=True)
    return encoder


def _masked_batches(features: CachedFeatures, rows: np.ndarray, tokenizer: RandomProjectionTokenizer, config: BEATsPretrainConfig,
                    seed: int, device: torch.device) -> Callable[[int], Iterator[MaskedBatch]]:  # fmt: skip
    """The epoch's batches ``(fbank, labels, mask)``: clips in an order and masks drawn from
    generators seeded by the epoch (so a resumed run needs no saved state for them), labelled by
    the tokenizer."""
    mask_generator = torch.Generator().manual_seed(seed + 2)

    def batches(epoch: int) -> Iterator[MaskedBatch]:
        mask_generator.manual_seed(seed * 100_003 + epoch)
        order = np.random.default_rng([seed, epoch]).permutation(rows)
        for first in range(0, order.size, config.batch_size):
            fbank = features.batch(order[first : first + config.batch_size]).to(device, non_blocking=True)
            labels = tokenizer(fbank)
            yield fbank, labels, random_mask(*labels.shape, config.mask_ratio, mask_generator, device)

    return batches


def _masked_loss(model: MaskedPatchModel) -> Callable[[MaskedBatch, int], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    def loss_fn(batch: MaskedBatch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, accuracy = model.loss(*batch)
        return loss, {"masked_accuracy": accuracy}

    return loss_fn


def _run_identity(features: CachedFeatures, rows: np.ndarray, config: BEATsPretrainConfig, seed: int, precision: torch.dtype | None) -> str:
    """What a resumable state must match: data (cache + rows), config (its revision included),
    seed and precision."""
    digest = hashlib.sha256(rows.tobytes())
    identity = {"cache": getattr(features, "key", str(features.path)), "config": config.to_dict(), "seed": seed,
                "precision": precision_tag(precision)}  # fmt: skip
    digest.update(json.dumps(identity, sort_keys=True).encode())
    return digest.hexdigest()
