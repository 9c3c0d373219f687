r"""HuBERT masked-unit pre-training on the unlabeled clips (paper §3.1, eq. 6-8).

1. **Pseudo labels (eq. 6).** Frame features ``x_t`` are clustered with k-means,

   .. math:: \min_{\{\mu_c\}_{c=1}^{C}} \sum_t \lVert x_t - \mu_{z_t} \rVert^2 ,

   and each frame's unit ``z_t`` is its nearest centre. Iteration 1 clusters 39-dim MFCCs
   (13 + deltas + delta-deltas) computed with a 25 ms window and a **20 ms hop without centring**,
   so that frame ``t`` covers the same samples as frame ``t`` of the conv feature encoder (320-sample
   stride; 49 frames per 1-s clip). Iteration 2 (``iterations=2``) clusters layer ``second_layer``
   of the iteration-1 model instead and trains a fresh model on those units, as HuBERT does.
   scikit-learn's MiniBatchKMeans is fitted on a random sample of at most ``kmeans_frames`` frames.
2. **Span masking.** ``transformers``' ``_compute_mask_indices`` picks spans of ``mask_length``
   frames starting at ``mask_prob`` of the frames; HubertModel replaces the projected CNN features
   there by its learned ``masked_spec_embed``.
3. **Masked prediction (eq. 7-8).** With transformer output ``o_t``, a projection ``A`` and a
   learned embedding ``e_c`` per unit,

   .. math:: P(z_t = c) = \frac{\exp(\cos(A o_t, e_c)/\tau)}{\sum_{c'} \exp(\cos(A o_t, e_{c'})/\tau)},
             \qquad L_m = -\sum_{t \in M} \log P(z_t \mid \tilde X),

   with :math:`\tau = 0.1`, averaged over the masked frames ``M`` of the batch.

The projection and unit embeddings are discarded afterwards; the returned HubertModel is the
teacher encoder that fine-tuning starts from.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torchaudio
from rich.console import Console
from sklearn.cluster import MiniBatchKMeans
from torch import nn
from transformers import HubertModel
from transformers.models.hubert.modeling_hubert import _compute_mask_indices

from ascbench.features.cache import CachedFeatures
from ascbench.distill.teachers.hubert import HUBERT_SAMPLE_RATE, HubertTeacher, build_hubert, hubert_config, load_hubert, save_hubert
from ascbench.training.checkpoint import CHECKPOINT_FILE
from ascbench.training.loop import Checkpointing, StepPlan, fit, shuffled_batches
from ascbench.training.precision import precision_tag
from ascbench.progress import live_console, stderr_log

FRAME_SHIFT = 320
"""Samples per HuBERT frame at 16 kHz (product of the conv strides): 20 ms."""

PRETRAIN_REVISION = 2
"""Bumped whenever the code changes what a given :class:`HubertPretrainConfig` produces. It is a
field of the config, so it reaches the pre-trained stage's cache key (the config's hash) and the
identity of finished iterations: models of older code are rebuilt, not reused. 2: the shared
training loop (:mod:`ascbench.training.loop`): the students' warm-up (the first step at LR 0,
where it was at 1/warm-up)."""


@dataclass(frozen=True)
class HubertPretrainConfig:
    """Everything that determines a pre-trained HuBERT (its hash keys the teacher-stage cache)."""

    size: str = "small"
    """Architecture (:data:`ascbench.distill.teachers.hubert.HUBERT_SIZES`): ``small`` on CPU, ``base`` on GPU."""
    model_overrides: tuple[tuple[str, object], ...] = ()
    """HubertConfig fields changed from the named size, as (name, value) pairs (tests use tiny models)."""
    clusters: int = 100
    """k-means units of iteration 1 (MFCC), as HuBERT's first iteration."""
    iterations: int = 1
    """2 re-clusters ``second_layer``'s features of the iteration-1 model and trains a fresh model."""
    second_layer: int | None = None
    """1-based layer clustered in iteration 2; None = the middle layer (HuBERT-Base used 6 of 12)."""
    second_clusters: int = 100
    kmeans_frames: int = 100_000
    """At most this many frames (randomly drawn) fit the k-means."""
    mask_prob: float = 0.8
    mask_length: int = 10
    """Span length in frames (200 ms), HuBERT's value."""
    final_dim: int = 128
    """Width of the projected outputs ``A o_t`` and unit embeddings ``e_c`` (HuBERT-Base: 256)."""
    temperature: float = 0.1
    epochs: int = 4
    """Epochs per iteration over the unlabeled clips."""
    batch_size: int = 32
    lr: float = 5e-4
    warmup_fraction: float = 0.08
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    max_steps: int | None = None
    """Cap on optimiser steps per iteration (smoke tests); None = ``epochs`` full passes."""
    revision: int = field(default=PRETRAIN_REVISION, init=False)
    """:data:`PRETRAIN_REVISION`: the code's, not a setting (hashed with the config)."""


# -- pseudo labels (eq. 6) ------------------------------------------------------------------------

FrameFeatures = Callable[[torch.Tensor], torch.Tensor]
"""Waveforms ``[B, samples]`` -> frame features ``[B, frames, dims]``."""


def mfcc_frames(waves: torch.Tensor) -> torch.Tensor:
    """39-dim MFCC (+delta, +delta-delta) frames aligned with HuBERT's 20 ms conv frames."""
    mfcc = _mfcc_transform().to(waves.device)(waves)  # [B, 13, frames]
    delta = torchaudio.functional.compute_deltas(mfcc)
    feats = torch.cat([mfcc, delta, torchaudio.functional.compute_deltas(delta)], dim=1)
    return feats.transpose(1, 2)


_MFCC: torchaudio.transforms.MFCC | None = None


def _mfcc_transform() -> torchaudio.transforms.MFCC:
    global _MFCC
    if _MFCC is None:
        _MFCC = torchaudio.transforms.MFCC(
            sample_rate=HUBERT_SAMPLE_RATE,
            n_mfcc=13,
            melkwargs=dict(n_fft=400, win_length=400, hop_length=FRAME_SHIFT, n_mels=40, center=False),
        )
    return _MFCC


def layer_frames(model: HubertModel, layer: int) -> FrameFeatures:
    """Frame features = output of transformer layer ``layer`` (1-based) of ``model`` (eval mode)."""
    teacher = HubertTeacher(model).eval()

    def features(waves: torch.Tensor) -> torch.Tensor:
        return teacher(waves).hidden_states[layer - 1]

    return features


def fit_units(
    frame_features: FrameFeatures,
    waves: CachedFeatures,
    rows: np.ndarray,
    clusters: int,
    max_frames: int,
    seed: int,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, MiniBatchKMeans]:
    """Cluster frame features into ``clusters`` units; return units ``[len(rows), frames]`` (int16).

    k-means is fitted on the frames of a random subset of clips (``max_frames`` frames at most),
    then every clip is labelled in a second streaming pass, so memory stays bounded on large sets.
    """
    rng = np.random.default_rng(seed)
    frames_per_clip = _frames(frame_features, waves, rows[:1], device).shape[1]
    fit_clips = min(len(rows), max(1, max_frames // frames_per_clip))
    sample = np.sort(rng.choice(len(rows), size=fit_clips, replace=False))
    data = np.concatenate([f.reshape(-1, f.shape[-1]) for f in _stream(frame_features, waves, rows[sample], device, batch_size)])
    if len(data) < clusters:
        raise ValueError(f"k-means needs at least {clusters} frames, the {len(rows)} clips give {len(data)}")
    kmeans = MiniBatchKMeans(n_clusters=clusters, batch_size=4096, n_init=3, max_no_improvement=20, random_state=seed)
    kmeans.fit(data)
    units = [kmeans.predict(f.reshape(-1, f.shape[-1])).reshape(f.shape[:2]) for f in _stream(frame_features, waves, rows, device, batch_size)]
    return np.concatenate(units).astype(np.int16), kmeans


def _stream(frame_features: FrameFeatures, waves: CachedFeatures, rows: np.ndarray, device: torch.device, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), batch_size):
        yield _frames(frame_features, waves, rows[start : start + batch_size], device).astype(np.float32)


def _frames(frame_features: FrameFeatures, waves: CachedFeatures, rows: np.ndarray, device: torch.device) -> np.ndarray:
    with torch.inference_mode():
        return frame_features(waves.batch(rows).to(device)).cpu().numpy()


def align_units(units: torch.Tensor, frames: int) -> torch.Tensor:
    """Crop or edge-pad units ``[B, T_units]`` to the model's ``frames`` (they differ by at most
    a frame for clip lengths that are not a multiple of the 20 ms hop)."""
    if units.shape[1] >= frames:
        return units[:, :frames]
    return torch.cat([units, units[:, -1:].expand(-1, frames - units.shape[1])], dim=1)


# -- masked prediction (eq. 7-8) ------------------------------------------------------------------


class UnitPredictor(nn.Module):
    """The projection ``A`` and unit embeddings ``e_c`` of eq. 8."""

    def __init__(self, hidden_size: int, final_dim: int, clusters: int, temperature: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(hidden_size, final_dim)
        self.units = nn.Parameter(torch.empty(clusters, final_dim).normal_(0, final_dim**-0.5))
        self.temperature = temperature

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        """``outputs`` ``[..., hidden]`` -> logits ``cos(A o_t, e_c) / tau`` ``[..., clusters]``.

        Always in fp32, also under autocast: at tau = 0.1 the logits span [-10, 10], where bf16
        resolves steps of 0.06.
        """
        with torch.autocast(outputs.device.type, enabled=False):
            projected = nn.functional.normalize(self.proj(outputs.float()), dim=-1)
            return projected @ nn.functional.normalize(self.units, dim=-1).T / self.temperature


def masked_prediction_loss(
    predictor: UnitPredictor, outputs: torch.Tensor, units: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7: cross-entropy of the units at masked frames; returns (loss, accuracy) over them."""
    logits = predictor(outputs[mask])
    target = units[mask].long()
    loss = nn.functional.cross_entropy(logits, target)
    return loss, (logits.argmax(-1) == target).float().mean()


def span_mask(batch: int, frames: int, config: HubertPretrainConfig, device: torch.device) -> torch.Tensor:
    """HuBERT's span mask ``[batch, frames]`` (bool), from transformers' ``_compute_mask_indices``
    (which draws from numpy's global RNG: :func:`pretrain_hubert` seeds it)."""
    mask = _compute_mask_indices((batch, frames), mask_prob=config.mask_prob, mask_length=config.mask_length, min_masks=2)
    return torch.from_numpy(mask).to(device)


# -- the loop -------------------------------------------------------------------------------------


def pretrain_hubert(
    waves: CachedFeatures,
    rows: np.ndarray,
    config: HubertPretrainConfig,
    workdir: Path | str,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    precision: torch.dtype | None = None,
) -> HubertModel:
    """Pre-train a HuBERT from scratch on the clips ``rows`` of ``waves`` (16 kHz waveform cache).

    Each finished iteration is saved to ``workdir/iter<i>/`` (HF format, with the config, seed and
    clips it was trained on) and reused when the same call is repeated, so an interrupted
    two-iteration run resumes after its first; within an iteration, a checkpoint after every epoch
    (``workdir/iter<i>.train_state.pt``, deleted once the iteration is saved) lets an interrupted
    one resume after its last finished epoch. Returns the final model in eval mode, on ``device``.
    ``precision``: the autocast dtype of the training steps (None: fp32). Training log (loss and
    masked-unit accuracy per epoch): ``workdir/pretrain_log.json``.
    """
    if waves.frontend.name != f"waveform-{HUBERT_SAMPLE_RATE // 1000}k":
        raise ValueError(f"HuBERT pre-trains on 16 kHz waveforms, got features of {waves.frontend.name!r}")
    if len(rows) == 0:
        raise ValueError("no unlabeled clips to pre-train on")
    if config.iterations not in (1, 2):
        raise ValueError(f"iterations must be 1 or 2, got {config.iterations}")
    device = torch.device(device)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows, dtype=np.int64)
    # through JSON and back, as done.json will be read (tuples become lists), or it never matches
    identity = json.loads(json.dumps({"config": asdict(config), "seed": seed, "rows": hashlib.sha256(rows.tobytes()).hexdigest()[:16]}))
    # inside `ascbench run`'s live region, its console: a line printed past it breaks the region
    console = (live_console() if progress else None) or Console(stderr=True, quiet=not progress)
    log: list[dict] = []
    model: HubertModel | None = None
    for iteration in range(1, config.iterations + 1):
        directory = workdir / f"iter{iteration}"
        done = directory / "done.json"
        if done.is_file() and json.loads(done.read_text()).get("identity") == identity:
            console.print(f"HuBERT iteration {iteration}: reusing {directory}")
            model = load_hubert(directory).to(device)
            log.append(json.loads(done.read_text())["log"])
            continue
        started = time.perf_counter()
        if iteration == 1:
            frame_features, clusters = mfcc_frames, config.clusters
        else:
            layer = config.second_layer or max(1, model.config.num_hidden_layers // 2)
            frame_features, clusters = layer_frames(model, layer), config.second_clusters
        units, _ = fit_units(frame_features, waves, rows, clusters, config.kmeans_frames, seed + iteration, device)
        console.print(f"HuBERT iteration {iteration}: {clusters} units from {len(rows)} clips in {time.perf_counter() - started:.1f} s")
        model = build_hubert(hubert_config(config.size, **dict(config.model_overrides)), seed=seed + iteration).to(device)
        checkpoint = Checkpointing(workdir / f"iter{iteration}.{CHECKPOINT_FILE}", _iteration_fingerprint(identity, iteration, units, precision))
        history = _train_iteration(model, waves, rows, units, clusters, config, seed + iteration, device, progress, iteration, precision,
                                   checkpoint)  # fmt: skip
        log.append({"iteration": iteration, "clusters": clusters, "seconds": round(time.perf_counter() - started, 1), "epochs": history})
        save_hubert(model, directory)
        partial = done.with_suffix(".tmp")
        partial.write_text(json.dumps({"identity": identity, "log": log[-1]}))
        partial.replace(done)  # written last and whole: an interrupted save is retrained, never trusted
        checkpoint.path.unlink(missing_ok=True)
    (workdir / "pretrain_log.json").write_text(json.dumps(log, indent=2) + "\n")
    return model.eval()


def _iteration_fingerprint(identity: dict, iteration: int, units: np.ndarray, precision: torch.dtype | None) -> str:
    """What an iteration's epoch checkpoint must match: the call (config with its revision, seed,
    clips), the iteration, its units and the precision."""
    digest = hashlib.sha256(json.dumps({"identity": identity, "iteration": iteration, "precision": precision_tag(precision)},
                                       sort_keys=True).encode())  # fmt: skip
    digest.update(np.ascontiguousarray(units).tobytes())
    return digest.hexdigest()


def _train_iteration(
    model: HubertModel,
    waves: CachedFeatures,
    rows: np.ndarray,
    units: np.ndarray,
    clusters: int,
    config: HubertPretrainConfig,
    seed: int,
    device: torch.device,
    progress: bool,
    iteration: int,
    precision: torch.dtype | None = None,
    checkpoint: Checkpointing | None = None,
) -> list[dict]:
    """Masked-unit prediction of ``units`` for ``config.epochs`` on the shared loop, resumable from
    ``checkpoint``; returns per-epoch loss and masked-unit accuracy."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # _compute_mask_indices draws from numpy's global RNG
    teacher = HubertTeacher(model).train()
    predictor = UnitPredictor(model.config.hidden_size, config.final_dim, clusters, config.temperature).to(device)
    units_t = torch.from_numpy(units)

    def loss_fn(index: np.ndarray, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = waves.batch(rows[index]).to(device)
        frames = int(model._get_feat_extract_output_lengths(x.shape[1]))
        mask = span_mask(len(index), frames, config, device)
        out = teacher(x, mask_time_indices=mask)
        loss, accuracy = masked_prediction_loss(predictor, out.hidden_states[-1], align_units(units_t[index], frames).to(device), mask)
        return loss, {"accuracy": accuracy}

    trained = nn.ModuleDict({"encoder": teacher, "predictor": predictor})
    optimizer = torch.optim.AdamW([{"params": [*teacher.parameters(), *predictor.parameters()], "lr": config.lr}], weight_decay=config.weight_decay)
    order = np.random.default_rng(seed)
    if checkpoint is not None:
        checkpoint = replace(checkpoint, generators={"order": order})
    plan = StepPlan.of(len(rows), config.batch_size, config.epochs, config.max_steps)
    description = f"HuBERT pre-training, iteration {iteration}"
    fitted = fit(trained, optimizer, shuffled_batches(len(rows), config.batch_size, order), loss_fn, plan,
                 round(config.warmup_fraction * plan.total), device=device, precision=precision, grad_clip=config.grad_clip,
                 checkpoint=checkpoint, progress=progress, description=description, log=stderr_log(progress, description))  # fmt: skip
    return [stats.brief() for stats in fitted.history]
