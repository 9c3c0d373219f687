"""Device-specific fine-tuning: step 2 of the official DCASE 2025 Task 1 baseline, for any system.

The general model (step 1: the system's own recipe on the split) is copied once per training
device, and each copy fine-tunes all its parameters on that device's labelled clips of the split
with cross-entropy. The recipe is the official one at the ``dcase`` profile (50 epochs, batch 256,
AdamW lr 5e-4 and weight decay 1e-4, 200 warm-up steps then cosine decay, Freq-MixStyle off, time
roll 0.1 s, frequency mask 48); ``quick`` and ``smoke`` scale it the way their general profiles
scale the 2024 recipe.

Why cross-entropy for every system, the distilled ones too: step 2 of the official recipe has no
teacher, and a device's few hundred clips are what it adapts to; a teacher stage per device would
be a different method, which a plugin can bring as its own recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ascbench.data.dataset import DataSplit
from ascbench.features.cache import CachedFeatures
from ascbench.training import TrainConfig, TrainingData, TrainResult, get_profile, train
from ascbench.training.config import QUICK_MIN_STEPS

GENERAL_TO_DEVICE_EPOCHS = 50 / 150
"""The official step 2 trains 50 epochs after step 1's 150."""

FINE_TUNE_PROFILES: dict[str, TrainConfig] = {
    "smoke": dataclasses.replace(get_profile("smoke"), epochs=1, max_steps=2, lr=3e-4, warmup_steps=1, fms_p=0.0),
    "quick": dataclasses.replace(
        get_profile("quick"),
        epochs=math.ceil(get_profile("quick").epochs * GENERAL_TO_DEVICE_EPOCHS),
        min_steps=math.ceil(QUICK_MIN_STEPS * GENERAL_TO_DEVICE_EPOCHS),
        lr=get_profile("quick").lr / 10,
        warmup_steps=max(1, get_profile("quick").warmup_steps // 10),
        fms_p=0.0,
    ),
    "dcase": TrainConfig(epochs=50, batch_size=256, lr=5e-4, weight_decay=1e-4, warmup_steps=200, fms_p=0.0, roll_s=0.1, freq_mask=48,
                         amp="off", roll_domain="waveform"),  # fp32 and a waveform roll, as the official fine-tuning runs
}
"""Step 2's training per profile. ``quick`` keeps the ratios of the official recipe to its step 1:
a third of the general model's epochs and of its step floor (7 epochs, at least 84 steps), a
tenth of its peak learning rate and of its warm-up, Freq-MixStyle off."""


def fine_tune_config(profile: str) -> TrainConfig:
    """The device fine-tuning configuration of ``profile``; a ``ValueError`` naming the profiles."""
    try:
        return FINE_TUNE_PROFILES[profile]
    except KeyError:
        raise ValueError(f"no device fine-tuning recipe for profile {profile!r}; profiles: {', '.join(FINE_TUNE_PROFILES)}") from None


@dataclass
class DeviceModel:
    """One device's fine-tuned copy of the general model, and how it trained."""

    device: str
    model: nn.Module
    clips: int
    result: TrainResult

    def notes(self) -> dict[str, object]:
        last = self.result.history[-1] if self.result.history else None
        return {
            "clips": self.clips,
            "epochs": self.result.epochs,
            "steps": self.result.steps,
            "resumed_from_epoch": self.result.resumed_from,
            "final_train_loss": None if last is None else round(last.loss, 5),
            "seconds": round(self.result.seconds, 3),
        }


def fine_tune_devices(
    general: nn.Module,
    devices: Sequence[str],
    features: CachedFeatures,
    split: DataSplit,
    config: TrainConfig,
    workdir: Path,
    seed: int,
    device: torch.device | str = "auto",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[DeviceModel]:
    """A fine-tuned copy of ``general`` for each of ``devices`` that has labelled clips in the
    split (a device without any keeps the general model: there is nothing to adapt to).

    Each device trains under its own seed offset and work directory, so an interrupted stage
    resumes from the last finished epoch of the device it was on and the others are not retrained.
    """
    clip_devices = np.array([c.device for c in split.train])
    labels = np.array([c.label for c in split.train], dtype=np.int64)
    rows = features.rows([c.filename for c in split.train])
    trained = []
    for index, name in enumerate(devices):
        mine = np.flatnonzero(clip_devices == name)
        if len(mine) == 0:
            if log is not None:
                log(f"device {name}: no labelled clips in the split; its clips go through the general model")
            continue
        model = copy.deepcopy(general).train()
        data = TrainingData(features=features, rows=rows[mine], labels=labels[mine], devices=clip_devices[mine])
        result = train(model, data, config, workdir=workdir / f"device-{name}", seed=seed * 100 + index, device=device,
                       progress=progress, log=log)  # fmt: skip
        trained.append(DeviceModel(name, result.model.eval(), len(mine), result))
    return trained
