"""Training configuration: one frozen dataclass, and the named profiles every recipe starts from.

A profile is a complete :class:`TrainConfig`; recipes derive theirs with
``dataclasses.replace(get_profile(name), ...)`` so that the record's config hash covers every
value that shaped a run.

- ``smoke``: a handful of optimizer steps, for tests and for checking that a pipeline runs.
- ``quick``: the CPU default. Sized for CP-Mobile on ``synth-tau22`` small at fraction 0.25
  (800 labelled clips): 20 epochs of batch 64 are 260 steps, 1-2 minutes on two cores. Smaller
  splits train at least as many steps (``min_steps``), so the 5 % split trains 84 epochs, not 20.
- ``dcase``: the official DCASE 2024 Task 1 baseline recipe (150 epochs, batch 256, AdamW
  lr 0.005 and weight decay 1e-4, 2,000 warm-up steps then cosine decay, Freq-MixStyle p 0.4
  alpha 0.3, time roll +-0.1 s, frequency masking up to 48 bins), meant for a GPU and the real
  data. The official baseline does not use device impulse responses, so ``adir_p`` is 0 in every
  profile; recipes that follow the seed paper switch it on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from ascbench.results.provenance import UNSET_LEAVES_IDENTITY

AmpMode = Literal["auto", "off", "bf16", "fp16"]
AdirDomain = Literal["auto", "waveform", "mel"]
RollDomain = Literal["frames", "waveform"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes one supervised training run (not where it runs)."""

    epochs: int = 150
    batch_size: int = 256
    lr: float = 0.005
    """Peak learning rate of AdamW, reached at the end of the warm-up."""
    weight_decay: float = 1e-4
    warmup_steps: int = 2000
    """Optimizer steps of linear warm-up from 0; then cosine decay to 0 at the last step."""
    label_smoothing: float = 0.0
    max_steps: int | None = None
    """Stop after this many optimizer steps in total (the schedule is sized to it); None: all epochs."""
    min_steps: int | None = None
    """Train at least this many optimizer steps: where ``epochs`` over a small training set make
    fewer, the epochs grow until they do (:meth:`sized_for`); None: ``epochs`` as given.

    Why: a profile fixes epochs, so its steps shrink with the split. ``quick``'s 20 epochs are
    260 steps at the 25 % split of synth-tau22 small but 60 at the 5 % split, which under-trained
    every student there (docs/experiments/split5.md). ``max_steps`` still caps the total."""

    # augmentation (see ascbench.training.augment / device_response)
    fms_p: float = 0.4
    """Probability that a batch gets Freq-MixStyle."""
    fms_alpha: float = 0.3
    """Beta(alpha, alpha) distribution of the per-sample mixing weight."""
    roll_s: float = 0.1
    """Roll each clip by up to +-roll_s seconds along time (circularly), as ``roll_domain`` says."""
    roll_domain: RollDomain = field(default="frames", metadata={UNSET_LEAVES_IDENTITY: True})
    """"frames": the cached spectrogram by whole frames (±6 of the baseline mel's 65: 13 shifts,
    never between frames; no waveform needed). "waveform": the cached 32 kHz waveform by whole
    samples (±3,200), then the frontend computes the rolled batch's features, as the official code
    rolls its waveform before the STFT (its 44.1 kHz samples are finer still); it reads the
    waveform cache, and costs a feature computation per batch (docs/experiments/time-roll.md)."""
    freq_mask: int = 48
    """Mask one band of up to this many frequency bins per sample; 0 switches it off."""
    adir_p: float = 0.0
    """Probability that a device-a clip is filtered by a random device response (ADIR)."""
    adir_domain: AdirDomain = "auto"
    """Where ADIR is applied: the cached waveform ("waveform", exact, one filter and feature
    transform per filtered clip), the log-mel ("mel": about 12x cheaper, needs no waveform cache,
    within 1 % of the waveform path on the baseline mel and about 10 % on Kaldi fbanks above
    250 Hz), or "auto": the waveform when the training data carries a waveform cache, else the mel."""

    # how it runs: fields that change speed, not what is learnt (amp, channels_last and compile
    # change the rounding, so runs differ in the last bits)
    num_threads: int | None = None
    """torch CPU threads; None: the process's torch thread count (one per core unless the caller,
    e.g. a Ray task with its CPU reservation, set fewer), capped at the cores it may use.

    On a machine whose cores other processes also want, fewer threads can be faster, because
    libgomp's idle threads spin for the cores the working ones need; ``OMP_WAIT_POLICY=PASSIVE``
    in the environment before torch loads recovers most of it, and the ``ascbench`` command line
    sets it unless the user chose a policy (docs/experiments/training-speed.md)."""
    amp: AmpMode = "auto"
    """Mixed precision: "auto" is bf16 (or fp16 + GradScaler) on CUDA and fp32 on CPU.

    fp32 on CPU even where it has native bf16: bf16 autocast did not make the students' training
    steps faster there (:mod:`ascbench.training.precision`, docs/experiments/precision.md)."""
    channels_last: bool | None = None
    """Channels-last memory format for 4-D inputs; None: on (CUDA and CPU).

    oneDNN's convolutions on x86 run natively in channels-last (NHWC) and reorder NCHW tensors
    on every call, so channels-last trains faster on the CPU (docs/experiments/training-speed.md),
    and it is deterministic."""
    compile: bool = False
    """torch.compile the model (inductor); pays a compile time up front on every run.

    Off by default: on CPU, inductor's fused batch-norm/ReLU kernels for CP-Mobile were no faster
    than eager ATen in channels-last, and the first compile takes minutes
    (docs/experiments/training-speed.md)."""
    reuse_freed_memory: bool = True
    """CPU, Linux (glibc): keep the memory of freed tensors in the process while training.

    glibc serves every large allocation with a fresh ``mmap`` and unmaps it on free, so each
    step's activations (tens of MB each at batch 256) are faulted in and zero-filled by the
    kernel page by page, again and again. With this on, :func:`ascbench.training.engine.train`
    sets ``mallopt`` (no mmap, no trimming) for its duration and restores glibc's defaults after
    (the gain: docs/experiments/training-speed.md). It changes where memory comes from, never a
    result, so it is not part of the checkpoint fingerprint. The peak resident memory grows:
    freed blocks of other sizes stay in the heap. No effect on CUDA."""
    cudnn_benchmark: bool = True
    checkpoint_every: int = 1
    """Save a resumable checkpoint every this many epochs (and always after the last)."""
    log_every: int = 10
    """Refresh the step progress bar's loss and throughput every this many steps."""

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.min_steps is not None and self.min_steps < 1:
            problems.append(f"min_steps must be >= 1 or None, got {self.min_steps}")
        for name in ("fms_p", "adir_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.fms_alpha <= 0:
            problems.append(f"fms_alpha must be > 0, got {self.fms_alpha}")
        if self.roll_domain not in ("frames", "waveform"):
            problems.append(f"roll_domain must be frames or waveform, got {self.roll_domain!r}")
        if self.roll_s < 0 or self.freq_mask < 0:
            problems.append(f"roll_s and freq_mask must be >= 0, got {self.roll_s} and {self.freq_mask}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            problems.append(f"amp must be one of auto, off, bf16, fp16, got {self.amp!r}")
        if self.adir_domain not in ("auto", "waveform", "mel"):
            problems.append(f"adir_domain must be one of auto, waveform, mel, got {self.adir_domain!r}")
        if self.checkpoint_every < 1 or self.log_every < 1:
            problems.append("checkpoint_every and log_every must be >= 1")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def replace(self, **changes: object) -> "TrainConfig":
        """A copy with ``changes`` applied (validated like a new config)."""
        return dataclasses.replace(self, **changes)

    def sized_for(self, clips_per_epoch: int) -> "TrainConfig":
        """The config that trains on ``clips_per_epoch`` clips: ``epochs`` raised until they make
        ``min_steps`` optimizer steps, and ``min_steps`` cleared.

        Clearing it makes sizing idempotent, so a recipe that splits the epochs between stages
        (two-stage distillation) sizes the whole run once and each stage keeps its share.
        """
        if self.min_steps is None:
            return self
        epochs = epochs_for_min_steps(self.epochs, clips_per_epoch, self.batch_size, self.min_steps)
        return dataclasses.replace(self, epochs=epochs, min_steps=None)


def epochs_for_min_steps(epochs: int, clips_per_epoch: int, batch_size: int, min_steps: int | None) -> int:
    """``epochs``, or more where they make fewer than ``min_steps`` optimizer steps over
    ``clips_per_epoch`` clips in batches of ``batch_size`` (the last batch of an epoch may be short)."""
    if min_steps is None:
        return epochs
    if clips_per_epoch < 1:
        raise ValueError(f"clips_per_epoch must be >= 1, got {clips_per_epoch}")
    return max(epochs, math.ceil(min_steps / math.ceil(clips_per_epoch / batch_size)))


QUICK_MIN_STEPS = 250
"""``quick``'s step floor, for the students and for the teachers' fine-tuning alike (a constant of
its own, so that a benchmark that changes the students' profile leaves the teachers as they are)."""

PROFILES: dict[str, TrainConfig] = {
    "smoke": TrainConfig(
        epochs=2, batch_size=16, lr=3e-3, warmup_steps=2, max_steps=4, fms_p=0.4, freq_mask=8
    ),
    "quick": TrainConfig(epochs=20, batch_size=64, lr=4e-3, weight_decay=1e-4, warmup_steps=40, min_steps=QUICK_MIN_STEPS),
    # the official baseline trains in fp32 (Lightning's --precision 32) on the GPU it is meant for
    "dcase": TrainConfig(amp="off", roll_domain="waveform"),
}
"""Named profiles; ``TrainConfig()`` itself is the official DCASE 2024 recipe, but for its
precision: ``dcase`` trains in fp32 on every device, as the official code does."""


def get_profile(name: str) -> TrainConfig:
    """The profile called ``name``; a ``ValueError`` listing the valid names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown training profile {name!r}; valid profiles: {', '.join(PROFILES)}") from None
