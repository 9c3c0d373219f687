"""Student training over cached features: AdamW, cosine schedule with warm-up, augmentations, resume.

:func:`train` runs a supervised (or, through ``loss_fn``, any per-batch) objective over cached
features on the shared loop (:func:`ascbench.training.loop.fit`, which the teachers' fine-tuning
and pre-training run too); :func:`predict` returns logits. What a training call guarantees:

- **Deterministic.** Torch, numpy and Python are seeded from ``seed``; the data order comes from
  its own ``torch.Generator`` and every augmentation draw from its own numpy generator, so the
  same call on the same device gives bit-identical weights.
- **Resumable.** A checkpoint is written atomically at every ``config.checkpoint_every``-th epoch
  end; the next identical call (same config, seed, data, initial weights, loss) continues from it
  and ends with the weights an uninterrupted run would have had. A finished run's call returns
  the trained model without training.
- **Loud on divergence.** A NaN or infinite loss raises
  :class:`~ascbench.training.loop.TrainingDiverged` naming the epoch and step.

Speed on the CPU comes from channels-last inputs and keeping freed memory in the process, both
on by default (their ``TrainConfig`` fields say why); torch.compile and bf16 autocast stay off
for the students, since neither made their steps faster. The measurements behind these choices:
docs/experiments/training-speed.md and docs/experiments/precision.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ascbench.features.cache import CachedFeatures
from ascbench.training.allocator import reuse_freed_memory
from ascbench.training.checkpoint import CHECKPOINT_FILE
from ascbench.training.config import TrainConfig
from ascbench.training.inputs import InputPipeline
from ascbench.training.loop import Checkpointing, EpochHook, EpochStats, StepPlan, fit
from ascbench.training.precision import precision_tag, resolve_precision

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``loss_fn(model, inputs, labels, rows, step) -> scalar loss``; ``rows`` are the batch's cache rows."""


UNLABELED = -1
"""Label of an unlabeled pool clip in a batch: losses that use labels must skip these rows."""


@dataclass
class UnlabeledPool:
    """Clips without labels drawn into every epoch, for objectives that learn from a teacher alone.

    Each epoch draws ``per_epoch`` of them afresh (from the data-order generator, so resuming
    replays the draw), which spreads a large pool over a short run at a fixed cost per epoch.
    """

    rows: np.ndarray
    devices: np.ndarray | None
    per_epoch: int

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        if self.rows.ndim != 1 or len(self.rows) == 0:
            raise ValueError(f"UnlabeledPool.rows must be a non-empty 1-D array, got shape {self.rows.shape}")
        if not 0 < self.per_epoch <= len(self.rows):
            raise ValueError(f"UnlabeledPool.per_epoch must be in 1..{len(self.rows)} (the pool's size), got {self.per_epoch}")
        if self.devices is not None:
            self.devices = np.asarray(self.devices).astype(str)
            if self.devices.shape != self.rows.shape:
                raise ValueError(f"UnlabeledPool has {len(self.rows)} rows but devices of shape {self.devices.shape}")


@dataclass
class TrainingData:
    """The training set as rows of a feature cache, with labels and recording devices."""

    features: CachedFeatures
    rows: np.ndarray
    """int64 row of each training clip in ``features`` (and ``waveforms``)."""
    labels: np.ndarray
    """int64 class index of each clip."""
    devices: np.ndarray | None = None
    """Recording device of each clip ("a", "b", ...); ADIR needs it (it filters device-a clips)."""
    waveforms: CachedFeatures | None = None
    """Cached waveforms of the same data set, for ADIR on the waveform (``adir_domain="waveform"``)."""
    pool: UnlabeledPool | None = None
    """Unlabeled clips added to every epoch (labelled :data:`UNLABELED` in batches); None: none."""

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.rows.ndim != 1 or len(self.rows) == 0:
            raise ValueError(f"TrainingData.rows must be a non-empty 1-D array, got shape {self.rows.shape}")
        if self.labels.shape != self.rows.shape:
            raise ValueError(f"TrainingData has {len(self.rows)} rows but labels of shape {self.labels.shape}")
        if self.devices is not None:
            self.devices = np.asarray(self.devices).astype(str)
            if self.devices.shape != self.rows.shape:
                raise ValueError(f"TrainingData has {len(self.rows)} rows but devices of shape {self.devices.shape}")
        bad = (self.rows < 0) | (self.rows >= len(self.features))
        if bad.any():
            raise ValueError(
                f"TrainingData.rows[{int(np.flatnonzero(bad)[0])}] = {int(self.rows[bad][0])} is not a row of "
                f"{self.features.path} ({len(self.features)} clips)"
            )
        if self.labels.min() < 0:
            raise ValueError(f"TrainingData.labels must be class indices >= 0, found {int(self.labels.min())}")
        if self.pool is not None:
            if (self.devices is None) != (self.pool.devices is None):
                raise ValueError("TrainingData: give recording devices for both the labelled clips and the pool, or for neither")
            bad = (self.pool.rows < 0) | (self.pool.rows >= len(self.features))
            if bad.any():
                raise ValueError(f"UnlabeledPool.rows[{int(np.flatnonzero(bad)[0])}] is not a row of {self.features.path}")

    def __len__(self) -> int:
        """Clips per epoch: every labelled clip plus the pool's draw."""
        return len(self.rows) + (self.pool.per_epoch if self.pool is not None else 0)

    def epoch(self, order: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """This epoch's (rows, labels, devices) in training order.

        Without a pool this is one permutation of the labelled clips (the order every earlier
        release drew); with one, the pool's draw is appended before the shuffle.
        """
        rows, labels, devices = self.rows, self.labels, self.devices
        if self.pool is not None:
            drawn = torch.randperm(len(self.pool.rows), generator=order).numpy()[: self.pool.per_epoch]
            rows = np.concatenate([rows, self.pool.rows[drawn]])
            labels = np.concatenate([labels, np.full(len(drawn), UNLABELED, dtype=np.int64)])
            if devices is not None:
                devices = np.concatenate([devices, self.pool.devices[drawn]])
        permutation = torch.randperm(len(rows), generator=order).numpy()
        return rows[permutation], labels[permutation], devices[permutation] if devices is not None else None


@dataclass
class TrainResult:
    model: nn.Module
    """The trained model, on the CPU in eval mode (the same object that was passed in)."""
    history: list[EpochStats]
    epochs: int
    steps: int
    resumed_from: int
    """Epochs restored from a checkpoint (0: trained from scratch)."""
    seconds: float
    """Wall time of this call."""
    device: str
    precision: str
    """"fp32", "bf16" or "fp16": the autocast dtype of the forward pass."""
    workdir: Path
    notes: dict[str, object] = field(default_factory=dict)
    warmup_steps: int = 0
    """The warm-up the schedule used (its share of ``steps`` decides the warning a record keeps)."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA): call before building a model to fix its init."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def global_rng_preserved() -> Iterator[None]:
    """Run a block without moving Python's, numpy's or torch's global random state.

    Why: work that a cache may or may not skip (a teacher stage built now or read from disk) must
    not change the draws that follow it, or a run's result depends on what the cache held."""
    python, numpy_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def resolve_device(device: torch.device | str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as ``torch.device`` reads it."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (torch {torch.__version__})")
    return resolved


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``config.amp`` on ``device``; None means full fp32 (the CPU's "auto")."""
    return resolve_precision(config.amp, device)


def cross_entropy_loss(label_smoothing: float = 0.0) -> LossFn:
    """The default objective: cross-entropy of the model's logits (with optional label smoothing)."""

    def loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, step: int) -> torch.Tensor:
        return F.cross_entropy(model(inputs), labels, label_smoothing=label_smoothing)

    loss.__qualname__ = f"cross_entropy(label_smoothing={label_smoothing})"
    return loss


def train(
    model: nn.Module,
    data: TrainingData,
    config: TrainConfig,
    workdir: Path,
    seed: int,
    device: torch.device | str = "auto",
    progress: bool = True,
    loss_fn: LossFn | None = None,
    on_epoch_end: EpochHook | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` and return it with its history.

    ``workdir`` holds the resumable checkpoint (created if missing). ``loss_fn`` replaces the
    default cross-entropy (distillation adds terms; it is called inside autocast). ``on_epoch_end``
    runs after each epoch's checkpoint (see :class:`~ascbench.training.loop.EpochEnd`). ``log``
    receives one line per epoch.
    """
    started = time.perf_counter()
    workdir = Path(workdir)
    device = resolve_device(device)
    if loss_fn is None and data.pool is not None:
        raise ValueError("train: unlabeled pool clips need a loss_fn that learns from them (cross-entropy alone cannot)")
    loss_fn = loss_fn or cross_entropy_loss(config.label_smoothing)
    config = config.sized_for(len(data))
    seed_everything(seed)
    fingerprint = _fingerprint(model, data, config, seed, loss_fn)
    plan = StepPlan.of(len(data), config.batch_size, config.epochs, config.max_steps)
    precision = autocast_dtype(config, device)
    channels_last = config.channels_last if config.channels_last is not None else True
    cpu = device.type == "cpu"

    with _threads(config.num_threads if cpu else None), reuse_freed_memory(config.reuse_freed_memory and cpu):
        model.to(device)
        pipeline = InputPipeline(data.features, config, device, data.waveforms, channels_last=channels_last)
        if pipeline.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        order = torch.Generator().manual_seed(seed)
        augment_rng = np.random.default_rng(seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        forward_model = torch.compile(model) if config.compile else model
        checkpoint = Checkpointing(workdir / CHECKPOINT_FILE, fingerprint, {"order": order, "augment": augment_rng}, config.checkpoint_every)
        fitted = fit(
            model, optimizer, _batches(data, pipeline, order, augment_rng, config.batch_size, device),
            _batch_loss(loss_fn, forward_model), plan, config.warmup_steps, device=device, precision=precision,
            checkpoint=checkpoint, on_epoch_end=on_epoch_end, progress=progress, log=log, log_every=config.log_every,
        )  # fmt: skip

    model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        model=model,
        history=fitted.history,
        epochs=fitted.epochs,
        steps=fitted.steps,
        resumed_from=fitted.resumed_from,
        seconds=round(time.perf_counter() - started, 3),
        device=str(device),
        precision=precision_tag(precision),
        workdir=workdir,
        warmup_steps=config.warmup_steps,
    )


def _batches(
    data: TrainingData, pipeline: InputPipeline, order: torch.Generator, augment_rng: np.random.Generator, batch_size: int,
    device: torch.device,
) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:  # fmt: skip
    """The epoch's batches ``(inputs, labels, rows)``: ``data.epoch(order)`` in slices, through the
    augmenting input pipeline."""

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rows, labels, devices = data.epoch(order)
        for start in range(0, len(rows), batch_size):
            batch = slice(start, start + batch_size)
            inputs = pipeline.train_inputs(rows[batch], devices[batch] if devices is not None else None, augment_rng)
            yield inputs, torch.from_numpy(labels[batch]).to(device, non_blocking=True), torch.from_numpy(rows[batch])

    return batches


def _batch_loss(loss_fn: LossFn, model: nn.Module) -> Callable[[tuple, int], torch.Tensor]:
    """The engine's :data:`LossFn` as the loop calls it, on ``model`` (the compiled one when compiling)."""
    return lambda batch, step: loss_fn(model, *batch, step)


_NOT_FINGERPRINTED = ("log_every", "checkpoint_every", "reuse_freed_memory", "min_steps")
"""Config fields that cannot change a run's weights: a checkpoint resumes across them.
(``min_steps`` can, but only through the epochs it sets, which are fingerprinted: the config is
sized before it is fingerprinted, and leaving the field out keeps older checkpoints resumable.)"""


def _fingerprint(model: nn.Module, data: TrainingData, config: TrainConfig, seed: int, loss_fn: LossFn) -> str:
    """Identity of a training call: what must match for a checkpoint to be resumed from."""
    digest = hashlib.sha256()
    run_fields = {k: v for k, v in asdict(config).items() if k not in _NOT_FINGERPRINTED}
    digest.update(repr(sorted(run_fields.items())).encode())
    digest.update(f"seed={seed};loss={getattr(loss_fn, '__qualname__', type(loss_fn).__name__)}".encode())
    # the caches' content, not their path: a home copied or mounted elsewhere resumes
    digest.update(data.features.key.encode())
    digest.update(str(data.waveforms.key if data.waveforms is not None else None).encode())
    for array in (data.rows, data.labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(("\n".join(data.devices) if data.devices is not None else "").encode())
    if data.pool is not None:  # absent from the digest otherwise: earlier checkpoints stay resumable
        digest.update(f"pool={data.pool.per_epoch}".encode())
        digest.update(np.ascontiguousarray(data.pool.rows).tobytes())
    digest.update(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def training_threads(n: int | None) -> int:
    """The torch CPU threads a training call uses: ``n``, or else the process's own thread count
    (``torch.set_num_threads``; torch starts with one per core) capped at the cores it may run on.

    Honouring a lower count the caller set is what keeps a budget: a Ray task that reserved one
    CPU sets one thread. Training with every core instead puts more spinning OpenMP threads on the
    machine than it has cores, and each run slows down far more than in proportion
    (docs/experiments/training-speed.md).
    """
    return n or max(1, min(available_cores(), torch.get_num_threads()))


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with :func:`training_threads` torch CPU threads, restoring the old count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(training_threads(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def predict(
    model: nn.Module,
    features: CachedFeatures,
    rows: np.ndarray,
    device: torch.device | str = "auto",
    batch_size: int = 256,
) -> np.ndarray:
    """Logits ``[len(rows), classes]`` (float32) of ``model`` in eval mode for cache ``rows``.

    The model is moved to ``device`` for the call and back to where it was; its train/eval mode
    is restored.
    """
    device = resolve_device(device)
    rows = np.asarray(rows, dtype=np.int64)
    pipeline = InputPipeline(features, TrainConfig(adir_p=0.0), device)
    was_training = model.training
    home = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    model.to(device).eval()
    outputs = []
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                outputs.append(model(pipeline.inputs(rows[start : start + batch_size])).float().cpu())
    finally:
        model.to(home).train(was_training)
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, 0), dtype=np.float32)
