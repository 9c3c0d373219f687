"""The training loop every recipe uses: AdamW, cosine schedule with warm-up, augmentations, resume.

:func:`train` runs a supervised (or, through ``loss_fn``, any per-batch) objective over cached
features; :func:`predict` returns logits. What the loop guarantees:

- **Deterministic.** Torch, numpy and Python are seeded from ``seed``; the data order comes from
  its own ``torch.Generator`` and every augmentation draw from its own numpy generator, so the
  same call on the same device gives bit-identical weights.
- **Resumable.** A checkpoint is written atomically at every ``config.checkpoint_every``-th epoch
  end; the next identical call (same config, seed, data, initial weights, loss) continues from it
  and ends with the weights an uninterrupted run would have had. A finished run's call returns
  the trained model without training.
- **Loud on divergence.** A NaN or infinite loss raises :class:`TrainingDiverged` naming the
  epoch and step.

Speed on CPU (CP-Mobile, batch 256, the project's shared two-core machine;
``benchmarks/bench_training.py``): channels-last and memory reuse (both on by default, see
their ``TrainConfig`` fields) take the step from ~23 to ~67 clips/s with two threads and from
~30 to ~127 with one. torch.compile stays off (it did not pay there), and so does bf16 on the
CPU: on a two-core Xeon with AMX it was no faster for CP-Mobile (267-268 clips/s against
267-275) and slower for the MobileNetV2 student (:mod:`ascbench.training.precision`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from ascbench.features.cache import CachedFeatures
from ascbench.training.allocator import reuse_freed_memory
from ascbench.training.checkpoint import CHECKPOINT_FILE, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from ascbench.training.config import TrainConfig
from ascbench.training.inputs import InputPipeline
from ascbench.training.precision import precision_tag, resolve_precision

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``loss_fn(model, inputs, labels, rows, step) -> scalar loss``; ``rows`` are the batch's cache rows."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


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


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    """1-based number of this epoch."""
    steps: int
    """Optimizer steps in total after this epoch."""
    loss: float
    """Mean training loss over the epoch's batches."""
    lr: float
    """Learning rate at the epoch's last step."""
    seconds: float
    clips_per_second: float


@dataclass
class EpochEnd:
    """What an ``on_epoch_end`` hook receives.

    Hooks may change the model or optimizer in place (e.g. switch to quantization-aware training
    after epoch N). On resume from a checkpoint written after epoch ``k``, the hooks of epochs
    ``1 .. k-1`` are replayed on the freshly built model with ``replay=True`` before the saved
    state is loaded, so structural changes are rebuilt, and the hook of epoch ``k`` then runs
    normally. A hook must therefore be a deterministic function of ``epoch`` and should skip
    side effects (evaluation, logging) when ``replay`` is set.
    """

    epoch: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    history: list[EpochStats]
    replay: bool = False


EpochHook = Callable[[EpochEnd], None]


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
    runs after each epoch's checkpoint (see :class:`EpochEnd`). ``log`` receives one line per epoch.
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

    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    precision = autocast_dtype(config, device)
    channels_last = config.channels_last if config.channels_last is not None else True
    cpu = device.type == "cpu"

    with _threads(config.num_threads if cpu else None), reuse_freed_memory(config.reuse_freed_memory and cpu):
        model.to(device)
        pipeline = InputPipeline(data.features, config, device, data.waveforms, channels_last=channels_last)
        if pipeline.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = _cosine_with_warmup(optimizer, config.warmup_steps, total_steps)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == torch.float16)
        order = torch.Generator().manual_seed(seed)
        augment_rng = np.random.default_rng(seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark

        checkpoint_path = workdir / CHECKPOINT_FILE
        history: list[EpochStats] = []
        step = start_epoch = 0
        state = load_checkpoint(checkpoint_path, fingerprint, map_location=device)
        if state is not None:
            for epoch in range(1, state["epoch"]):
                _call_hook(on_epoch_end, epoch, model, optimizer, scheduler, state_history(state), replay=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            restore_rng(state["rng"], order, augment_rng)
            history, step, start_epoch = state_history(state), state["step"], state["epoch"]
            if log:
                log(f"resumed from {checkpoint_path} after epoch {start_epoch}/{n_epochs} (step {step})")
            _call_hook(on_epoch_end, start_epoch, model, optimizer, scheduler, history, replay=False)
        elif log and config.warmup_steps >= total_steps:
            log(f"warm-up ({config.warmup_steps} steps) covers all {total_steps} steps: the LR never decays")

        forward_model = torch.compile(model) if config.compile else model
        with _progress(progress, n_epochs, start_epoch) as bar:
            for epoch in range(start_epoch, n_epochs):
                epoch_steps = min(steps_per_epoch, total_steps - step)
                bar.start_epoch(epoch + 1, n_epochs, epoch_steps)
                tick = time.perf_counter()
                losses = _train_epoch(
                    forward_model, data, pipeline, optimizer, scheduler, scaler, loss_fn, order, augment_rng,
                    config, device, precision, step, epoch_steps, epoch + 1, n_epochs, bar,
                )
                step += epoch_steps
                seconds = time.perf_counter() - tick
                clips = min(len(data), epoch_steps * config.batch_size)
                stats = EpochStats(
                    epoch=epoch + 1,
                    steps=step,
                    loss=float(np.mean(losses)),
                    lr=scheduler.get_last_lr()[0],
                    seconds=round(seconds, 3),
                    clips_per_second=round(clips / seconds, 1),
                )
                history.append(stats)
                if log:
                    log(
                        f"epoch {stats.epoch}/{n_epochs}: loss {stats.loss:.4f}, lr {stats.lr:.2e}, "
                        f"{stats.clips_per_second:.0f} clips/s, {stats.seconds:.1f} s"
                    )
                if (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == n_epochs:
                    save_checkpoint(
                        checkpoint_path,
                        {
                            "fingerprint": fingerprint,
                            "epoch": epoch + 1,
                            "step": step,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict(),
                            "rng": capture_rng(order, augment_rng),
                            "history": [asdict(h) for h in history],
                        },
                    )
                _call_hook(on_epoch_end, epoch + 1, model, optimizer, scheduler, history, replay=False)
                bar.end_epoch()

    model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        model=model,
        history=history,
        epochs=n_epochs,
        steps=step,
        resumed_from=start_epoch,
        seconds=round(time.perf_counter() - started, 3),
        device=str(device),
        precision=precision_tag(precision),
        workdir=workdir,
    )


def _train_epoch(
    model: nn.Module,
    data: TrainingData,
    pipeline: InputPipeline,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    loss_fn: LossFn,
    order: torch.Generator,
    augment_rng: np.random.Generator,
    config: TrainConfig,
    device: torch.device,
    precision: torch.dtype | None,
    first_step: int,
    n_steps: int,
    epoch: int,
    n_epochs: int,
    bar: "_Bar",
) -> list[float]:
    """One (possibly truncated) epoch of ``n_steps`` optimizer steps; returns the batch losses."""
    model.train()
    epoch_rows, epoch_labels, epoch_devices = data.epoch(order)
    pending: list[torch.Tensor] = []  # losses not yet read back (reading syncs a GPU)
    losses: list[float] = []
    tick, seen = time.perf_counter(), 0
    for i in range(n_steps):
        batch = slice(i * config.batch_size, (i + 1) * config.batch_size)
        rows = epoch_rows[batch]
        devices = epoch_devices[batch] if epoch_devices is not None else None
        inputs = pipeline.train_inputs(rows, devices, augment_rng)
        labels = torch.from_numpy(epoch_labels[batch]).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=precision, enabled=precision is not None):
            loss = loss_fn(model, inputs, labels, torch.from_numpy(rows), first_step + i)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        pending.append(loss.detach())
        seen += len(rows)
        if (i + 1) % config.log_every == 0 or i + 1 == n_steps:
            values = torch.stack(pending).float().cpu().tolist()
            for offset, value in enumerate(values):
                if not math.isfinite(value):
                    at = first_step + i + 1 - len(values) + offset
                    raise TrainingDiverged(
                        f"training loss is {value} at epoch {epoch}/{n_epochs}, step {at + 1} "
                        f"(lr {scheduler.get_last_lr()[0]:.3g}); lower the learning rate or check the inputs for NaN/inf"
                    )
            losses += values
            pending.clear()
            elapsed = time.perf_counter() - tick
            bar.advance(i + 1, float(np.mean(losses[-config.log_every :])), seen / max(elapsed, 1e-9))
    return losses


def _call_hook(
    hook: EpochHook | None,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    history: list[EpochStats],
    replay: bool,
) -> None:
    if hook is not None:
        hook(EpochEnd(epoch=epoch, model=model, optimizer=optimizer, scheduler=scheduler, history=list(history), replay=replay))


def state_history(state: dict) -> list[EpochStats]:
    return [EpochStats(**h) for h in state["history"]]


def _cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0, then half-cosine decay to 0, per step: the official baseline's schedule."""
    from transformers import get_cosine_schedule_with_warmup  # heavy import, only when training

    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)


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
    CPU sets one thread, and training with every core instead put two spinning OpenMP threads per
    run on a two-core machine, 3-5x slower per run with two runs side by side.
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


class _Bar:
    """Rich progress: an epochs bar and a steps bar with the running loss and clips/s (blank until
    a step has run: a resumed run's bars would otherwise read "loss nan")."""

    def __init__(self, progress: Progress | None, n_epochs: int, done: int) -> None:
        self.progress = progress
        if progress is not None:
            self.epochs = progress.add_task("epochs", total=n_epochs, completed=done, status="")
            self.steps = progress.add_task("steps", total=1, status="")

    def start_epoch(self, epoch: int, n_epochs: int, n_steps: int) -> None:
        if self.progress is not None:
            self.progress.reset(self.steps, total=n_steps, description=f"epoch {epoch}/{n_epochs}")

    def advance(self, completed: int, loss: float, speed: float) -> None:
        if self.progress is not None:
            status = f"loss {loss:.3f} {speed:.0f} clips/s"
            self.progress.update(self.steps, completed=completed, status=status)
            self.progress.update(self.epochs, status=status)

    def end_epoch(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.epochs)


@contextlib.contextmanager
def _progress(enabled: bool, n_epochs: int, done: int) -> Iterator[_Bar]:
    if not enabled:
        yield _Bar(None, n_epochs, done)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield _Bar(progress, n_epochs, done)
