"""The one training loop: student training, teacher fine-tuning and teacher pre-training all run :func:`fit`.

Why one loop: three had grown apart -- two warm-up/cosine schedules a step out of phase, two
checkpoint formats (both read onto the training device, which on CUDA hands CUDA tensors to
``torch.set_rng_state``), three progress bars. What really differs between the callers is
passed in:

- ``batches(epoch)``: the epoch's batches in training order (the caller's sampler and input
  pipeline), drawn lazily, outside autocast, one per optimizer step;
- ``loss_fn(batch, step)``: the objective, run under autocast; it returns the loss, or the loss
  and per-batch metrics (``{"accuracy": ...}``) averaged into the epoch's history;
- the optimizer (the caller's parameter groups and AdamW settings), ``grad_clip``, and
  ``on_epoch_end`` hooks (:class:`EpochEnd`).

What the loop owns, the same for every caller:

- **the schedule**: :func:`warmup_cosine` per optimizer step, linear warm-up from 0 then a
  half-cosine to 0 at the last step (the official DCASE baseline's);
- **precision**: autocast to ``precision`` and, for fp16, a gradient scaler (gradients are
  unscaled before clipping);
- **divergence**: a NaN or infinite loss raises :class:`TrainingDiverged` naming epoch and step
  (losses are read back every ``log_every`` steps, so a GPU is not synchronised at every step);
- **resume** (:class:`Checkpointing`): after every ``every``-th epoch (and the last) model,
  optimizer, schedule, scaler, every random generator (the global ones and the caller's named
  ones), counters and history are written atomically with the call's fingerprint
  (:mod:`ascbench.training.checkpoint`); the next call with that fingerprint continues after it
  and ends with the weights an uninterrupted call gives (same device and thread count), and a
  checkpoint of another fingerprint is refused with a warning;
- **display**: one progress bar over the steps (:mod:`ascbench.progress`) and a
  ``log`` line per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ascbench.training.checkpoint import Generator, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from ascbench.training.precision import autocast
from ascbench.progress import ProgressBar, progress_bar

LossOutput = torch.Tensor | tuple[torch.Tensor, Mapping[str, torch.Tensor]]
"""A batch's scalar loss, or the loss and scalar metrics to average into the epoch's history."""
StepLoss = Callable[[Any, int], LossOutput]
"""``loss_fn(batch, step) -> loss`` or ``(loss, metrics)``; ``step`` counts from 0 over the run."""
Batches = Callable[[int], Iterable[Any]]
"""``batches(epoch)`` (0-based): the epoch's batches in order, each an array of item indices or a
tuple of tensors whose first holds the clips (:func:`_clips`)."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps a run makes: ``per_epoch`` a full epoch, ``total`` in all."""

    per_epoch: int
    total: int

    @classmethod
    def of(cls, clips: int, batch_size: int, epochs: int, max_steps: int | None = None) -> StepPlan:
        """``epochs`` passes over ``clips`` clips in batches of ``batch_size`` (the last one may be
        short), cut at ``max_steps`` when given."""
        per_epoch = math.ceil(clips / batch_size)
        total = per_epoch * epochs
        return cls(per_epoch, total if max_steps is None else min(total, max_steps))

    @property
    def epochs(self) -> int:
        """Epochs that run at least one step (the last may be cut short by ``max_steps``)."""
        return math.ceil(self.total / self.per_epoch)

    def steps_in(self, epoch: int) -> int:
        """Steps of the 0-based ``epoch``."""
        return min(self.per_epoch, self.total - epoch * self.per_epoch)


WARMUP_SHARE_LIMIT = 0.25
"""The official recipe's 2,000 warm-up steps are about 10 % of its ~20.5k steps on TAU split25
(``quick`` has 16 % at its step floor); well above that, a run spends its budget climbing and
decays little, or never (the ``dcase`` profile on a small split)."""


def warmup_share(warmup_steps: int, total_steps: int) -> float:
    """The share of a run's optimizer steps spent warming up (1.0: the LR never decays)."""
    return min(1.0, warmup_steps / max(1, total_steps))


def warmup_warning(warmup_steps: int, total_steps: int) -> str:
    """The line a run prints (and records) when its warm-up does not fit its length."""
    share = warmup_share(warmup_steps, total_steps)
    if share >= 1.0:
        return (f"WARNING: warm-up ({warmup_steps} steps) covers all {total_steps} steps: the LR reaches "
                f"{total_steps / max(1, warmup_steps):.0%} of its peak and never decays "
                f"(--set warmup_steps={max(1, round(0.1 * total_steps))} gives 10 %)")  # fmt: skip
    return (f"WARNING: warm-up ({warmup_steps} steps) is {share:.0%} of this run's {total_steps} steps, not the ~10 % "
            "the official recipe has on TAU split25: this split is too small for the profile's warm-up "
            f"(--set warmup_steps={max(1, round(0.1 * total_steps))} gives 10 %)")  # fmt: skip


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The LR multiplier of optimizer step ``step`` (0-based): ``step / warmup_steps`` during the
    warm-up, then a half-cosine from 1 to 0 at ``total_steps``.

    The one schedule of every training here. Callers that size the warm-up as a fraction of the
    run convert it at their call site (``round(fraction * total)``). The values are those of
    ``transformers.get_cosine_schedule_with_warmup``, which the students trained with before."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return float(step) / float(max(1, warmup_steps))
        progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    return factor


def shuffled_batches(items: int, batch_size: int, order: np.random.Generator) -> Batches:
    """``batches`` of item indices: a fresh permutation of ``range(items)`` from ``order`` every
    epoch, in slices of ``batch_size`` (the teachers' sampler; ``order`` goes into the checkpoint)."""

    def batches(epoch: int) -> Iterator[np.ndarray]:
        permutation = order.permutation(items)
        for start in range(0, items, batch_size):
            yield permutation[start : start + batch_size]

    return batches


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    """1-based number of this epoch."""
    steps: int
    """Optimizer steps in total after this epoch."""
    loss: float
    """Mean training loss over the epoch's batches."""
    lr: float
    """Learning rate (of the first parameter group) at the epoch's last step."""
    seconds: float
    clips_per_second: float
    metrics: dict[str, float] = field(default_factory=dict)
    """Means over the epoch's batches of the metrics the loss callable returned."""

    def brief(self) -> dict[str, float | int]:
        """Epoch, loss and metrics, rounded to 4 digits: the reproducible part (no timings), as the
        teachers' stage manifests and logs keep it."""
        return {"epoch": self.epoch, "loss": round(self.loss, 4), **{name: round(value, 4) for name, value in self.metrics.items()}}


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


@dataclass(frozen=True)
class Checkpointing:
    """Where and as what :func:`fit` checkpoints its epochs, and what else it must restore."""

    path: Path
    """The checkpoint file (replaced whole at each save)."""
    fingerprint: str
    """Identity of the training call (config, seed, data, initial weights, loss, code revision):
    a checkpoint with another one is never resumed from."""
    generators: Mapping[str, Generator] = field(default_factory=dict)
    """The caller's own random generators (data order, augmentation), saved and restored by name."""
    every: int = 1
    """Save after every this many epochs (and always after the last)."""


@dataclass
class FitResult:
    history: list[EpochStats]
    """Every epoch's statistics, those restored from a checkpoint included."""
    steps: int
    epochs: int
    resumed_from: int
    """Epochs restored from a checkpoint (0: trained from scratch)."""


@dataclass
class _Run:
    """One :func:`fit` call's training state and fixed settings, passed between its parts."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    plan: StepPlan
    device: torch.device
    precision: torch.dtype | None
    grad_clip: float | None
    checkpoint: Checkpointing | None
    on_epoch_end: EpochHook | None
    log: Callable[[str], None] | None
    log_every: int
    history: list[EpochStats] = field(default_factory=list)
    step: int = 0


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    loss_fn: StepLoss,
    plan: StepPlan,
    warmup_steps: int,
    *,
    device: torch.device,
    precision: torch.dtype | None = None,
    grad_clip: float | None = None,
    checkpoint: Checkpointing | None = None,
    on_epoch_end: EpochHook | None = None,
    progress: bool = False,
    description: str = "training",
    log: Callable[[str], None] | None = None,
    log_every: int = 10,
) -> FitResult:
    """Train ``model`` in place for ``plan`` with ``optimizer`` under the :func:`warmup_cosine`
    schedule, resuming from and writing ``checkpoint`` when given (see the module docstring).

    ``model`` is the module whose state (parameters and buffers) is the training's: the caller
    has put it on ``device``; ``loss_fn`` may run a compiled or wrapped view of it. ``log``
    receives a line per epoch (and one on resume)."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, plan.total))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == torch.float16)
    run = _Run(model, optimizer, scheduler, scaler, plan, device, precision, grad_clip, checkpoint, on_epoch_end, log, log_every)
    start_epoch = _resume(run)
    if start_epoch == 0 and log and warmup_share(warmup_steps, plan.total) > WARMUP_SHARE_LIMIT:
        log(warmup_warning(warmup_steps, plan.total))
    with torch.enable_grad(), progress_bar(progress, description, plan.total, completed=run.step) as bar:
        for epoch in range(start_epoch, plan.epochs):
            bar.describe(f"{description} {epoch + 1}/{plan.epochs}")
            run.history.append(_train_epoch(run, batches(epoch), loss_fn, epoch, bar))
            _report(run, run.history[-1])
            if checkpoint is not None and ((epoch + 1) % checkpoint.every == 0 or epoch + 1 == plan.epochs):
                _save(run, epoch + 1)
            _call_hook(run, epoch + 1, replay=False)
    return FitResult(run.history, run.step, plan.epochs, start_epoch)


def _train_epoch(run: _Run, batches: Iterable[Any], loss_fn: StepLoss, epoch: int, bar: ProgressBar) -> EpochStats:
    """One (possibly cut short) epoch of optimizer steps over ``batches``."""
    run.model.train()
    planned = run.plan.steps_in(epoch)
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    pending: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []  # not yet read back (reading syncs a GPU)
    losses: list[float] = []
    metrics: dict[str, list[float]] = {}
    started, clips, done = time.perf_counter(), 0, 0
    for done, batch in enumerate(islice(batches, planned), start=1):
        with autocast(run.device, run.precision):
            loss, batch_metrics = _split(loss_fn(batch, run.step))
        _optimizer_step(run, loss, params)
        run.step += 1
        pending.append((loss.detach(), {name: value.detach() for name, value in batch_metrics.items()}))
        clips += _clips(batch)
        if done % run.log_every == 0 or done == planned:
            recent = _read_back(run, pending, losses, metrics, epoch)
            bar.advance(len(recent), f"loss {np.mean(losses[-run.log_every :]):.3f} {clips / _elapsed(started):.0f} clips/s")
    if done != planned:
        raise RuntimeError(f"batches(epoch={epoch}) yielded {done} batches, the plan has {planned} steps in this epoch")
    seconds = _elapsed(started)
    return EpochStats(
        epoch=epoch + 1,
        steps=run.step,
        loss=float(np.mean(losses)),
        lr=run.scheduler.get_last_lr()[0],
        seconds=round(seconds, 3),
        clips_per_second=round(clips / seconds, 1),
        metrics={name: float(np.mean(values)) for name, values in metrics.items()},
    )


def _clips(batch: Any) -> int:
    """Clips in a batch, for the clips/s shown: the length of a tuple's first element (the inputs),
    else of the batch itself (indices)."""
    return len(batch[0]) if isinstance(batch, tuple) else len(batch)


def _split(output: LossOutput) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
    return (output, {}) if isinstance(output, torch.Tensor) else output


def _optimizer_step(run: _Run, loss: torch.Tensor, params: list[torch.Tensor]) -> None:
    """Backward, (unscale and clip,) step the optimizer and the schedule."""
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(params, run.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()


def _read_back(run: _Run, pending: list, losses: list[float], metrics: dict[str, list[float]], epoch: int) -> list[float]:
    """Move the pending losses and metrics to the host, raise on a non-finite loss; return the losses read."""
    values = torch.stack([loss for loss, _ in pending]).float().cpu().tolist()
    for offset, value in enumerate(values):
        if not math.isfinite(value):
            at = run.step - len(values) + offset
            raise TrainingDiverged(
                f"training loss is {value} at epoch {epoch + 1}/{run.plan.epochs}, step {at + 1} "
                f"(lr {run.scheduler.get_last_lr()[0]:.3g}); lower the learning rate or check the inputs for NaN/inf"
            )
    for name in pending[0][1]:
        metrics.setdefault(name, []).extend(torch.stack([m[name] for _, m in pending]).float().cpu().tolist())
    losses += values
    pending.clear()
    return values


def _elapsed(since: float) -> float:
    return max(time.perf_counter() - since, 1e-9)


def _report(run: _Run, stats: EpochStats) -> None:
    if run.log:
        shown = "".join(f", {name} {value:.4f}" for name, value in stats.metrics.items())
        run.log(f"epoch {stats.epoch}/{run.plan.epochs}: loss {stats.loss:.4f}{shown}, lr {stats.lr:.2e}, "
                f"{stats.clips_per_second:.0f} clips/s, {stats.seconds:.1f} s")  # fmt: skip


def _save(run: _Run, epoch: int) -> None:
    checkpoint = run.checkpoint
    save_checkpoint(checkpoint.path, {
        "fingerprint": checkpoint.fingerprint,
        "epoch": epoch,
        "step": run.step,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": capture_rng(checkpoint.generators),
        "history": [asdict(h) for h in run.history],
    })  # fmt: skip


def _resume(run: _Run) -> int:
    """Continue from the run's checkpoint, if it has one of its fingerprint; return the epochs it holds."""
    checkpoint = run.checkpoint
    state = load_checkpoint(checkpoint.path, checkpoint.fingerprint) if checkpoint is not None else None
    if state is None:
        return 0
    epoch = int(state["epoch"])
    run.history = [EpochStats(**h) for h in state["history"]]
    for replayed in range(1, epoch):
        _call_hook(run, replayed, replay=True)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"], checkpoint.generators)
    run.step = int(state["step"])
    if run.log:
        run.log(f"resumed from {checkpoint.path} after epoch {epoch}/{run.plan.epochs} (step {run.step})")
    _call_hook(run, epoch, replay=False)
    return epoch


def _call_hook(run: _Run, epoch: int, replay: bool) -> None:
    if run.on_epoch_end is not None:
        run.on_epoch_end(EpochEnd(epoch, run.model, run.optimizer, run.scheduler, list(run.history), replay))
