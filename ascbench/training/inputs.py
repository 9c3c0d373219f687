"""From cache rows to model inputs: shaping, device placement and the training augmentations.

Spectrogram features (2-D per clip) become ``[B, 1, a, b]``, waveform features (1-D) stay
``[B, samples]`` -- the shapes ``ascbench.systems.model_input_shape`` promises. During training a
batch goes through, in this order (the DCASE 2024 baseline's, with ADIR first as in the seed
paper's eq. 13 ``FMS(x (+) ADIR)``):

1. ADIR on device-a clips (:mod:`ascbench.training.device_response`), in the feature domain or
   on the cached waveform (then the clip's features are recomputed by its frontend);
2. spectrograms only: time roll, frequency masking, Freq-MixStyle (:mod:`ascbench.training.augment`).

With ``roll_domain="waveform"`` the roll comes first instead, on the cached waveform, and ADIR
filters the rolled waveform; the frontend then computes the batch's features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import BaselineMel, KaldiFbank, RawWaveform
from ascbench.training.augment import SpecLayout, freq_mask, freq_mixstyle, roll_by, spec_layout, time_roll
from ascbench.training.config import TrainConfig
from ascbench.training.device_response import (
    DeviceResponseFamily,
    apply_to_features,
    apply_to_waveforms,
    select_clips,
)

ADIR_WAVEFORM_RATE = 32_000
"""Sample rate the device responses are designed at when features are augmented directly."""


def adir_mode(config: TrainConfig, features: CachedFeatures, waveforms: CachedFeatures | None) -> str:
    """How ADIR runs for this data: "off", "input" (the model input is the waveform), "features" or "waveform"."""
    if config.adir_p <= 0:
        return "off"
    if isinstance(features.frontend, RawWaveform):
        return "input"
    in_features = isinstance(features.frontend, (BaselineMel, KaldiFbank))
    domain = config.adir_domain
    if domain == "mel" or (domain == "auto" and waveforms is None and in_features):
        if not in_features:
            raise ValueError(
                f"adir_domain 'mel' needs a BaselineMel or KaldiFbank frontend, not {features.frontend.name}; "
                "use adir_domain 'waveform' with a waveform cache"
            )
        return "features"
    if waveforms is None:
        raise ValueError(
            f"ADIR (adir_p={config.adir_p}) on {features.frontend.name} features filters waveforms: give "
            "TrainingData.waveforms = load_features(dataset, RawWaveform(32000))"
        )
    return "waveform"


@dataclass
class InputPipeline:
    """Builds (augmented) model inputs for batches of cache rows on ``device``."""

    features: CachedFeatures
    config: TrainConfig
    device: torch.device
    waveforms: CachedFeatures | None = None
    channels_last: bool = False
    family: DeviceResponseFamily = field(default_factory=DeviceResponseFamily)
    spectrogram: bool = field(init=False)
    layout: SpecLayout | None = field(init=False)
    adir: str = field(init=False)
    waveform_roll: bool = field(init=False)

    def __post_init__(self) -> None:
        shape = tuple(self.features.array.shape[1:])
        if len(shape) not in (1, 2):
            raise ValueError(f"{self.features.path}: features of shape {shape} per clip; expected 1-D or 2-D")
        self.spectrogram = len(shape) == 2
        self.layout = spec_layout(self.features.frontend, shape) if self.spectrogram else None
        self.adir = adir_mode(self.config, self.features, self.waveforms)
        if self.adir == "waveform":
            assert self.waveforms is not None
            if not isinstance(self.waveforms.frontend, RawWaveform):
                raise ValueError(f"waveform cache {self.waveforms.path} holds {self.waveforms.frontend.name}, not waveforms")
            if self.waveforms.filenames != self.features.filenames:
                raise ValueError(
                    f"waveform cache {self.waveforms.path} and feature cache {self.features.path} are of different "
                    "data sets (their clip lists differ)"
                )
        self.channels_last = self.channels_last and self.spectrogram
        self.waveform_roll = self.spectrogram and self.config.roll_domain == "waveform" and self.config.roll_s > 0
        if self.waveform_roll and (self.waveforms is None or not isinstance(self.waveforms.frontend, RawWaveform)):
            raise ValueError("roll_domain 'waveform' rolls cached waveforms: give TrainingData.waveforms = "
                             "load_features(dataset, RawWaveform(32000))")  # fmt: skip
        if self.waveform_roll and self.waveforms.filenames != self.features.filenames:
            raise ValueError(f"waveform cache {self.waveforms.path} and feature cache {self.features.path} are of different data sets")

    def inputs(self, rows: np.ndarray) -> torch.Tensor:
        """Model inputs for ``rows``, not augmented."""
        return self._shape(self.features.batch(rows).to(self.device, non_blocking=True))

    def train_inputs(self, rows: np.ndarray, devices: np.ndarray | None, rng: np.random.Generator) -> torch.Tensor:
        """Augmented model inputs for ``rows`` (whose recording devices are ``devices``)."""
        if self.waveform_roll:
            x = self._rolled_waveform_features(rows, devices, rng)
        else:
            x = self.features.batch(rows).to(self.device, non_blocking=True)
            if self.adir != "off":
                x = self._adir(x, rows, devices, rng)
        x = self._shape(x)
        if self.spectrogram:
            cfg, lay = self.config, self.layout
            assert lay is not None
            if not self.waveform_roll:
                x = time_roll(x, rng, int(round(cfg.roll_s * lay.frames_per_second)), lay.time_dim)
            x = freq_mask(x, rng, cfg.freq_mask, lay.freq_dim, lay.silence)
            x = freq_mixstyle(x, rng, cfg.fms_p, cfg.fms_alpha, lay.freq_dim)
        return x

    def _rolled_waveform_features(self, rows: np.ndarray, devices: np.ndarray | None, rng: np.random.Generator) -> torch.Tensor:
        """The batch's features computed from its waveforms rolled by whole samples (and filtered by
        ADIR where drawn), as the official code rolls before its STFT."""
        assert self.waveforms is not None
        rate = self.waveforms.frontend.sample_rate
        waves = self.waveforms.batch(rows).to(self.device, non_blocking=True)
        limit = int(round(self.config.roll_s * rate))
        waves = roll_by(waves, torch.from_numpy(rng.integers(-limit, limit + 1, size=len(rows))), time_dim=1)
        if self.adir != "off":
            if devices is None:
                raise ValueError("ADIR filters device-a clips only: TrainingData.devices is required when adir_p > 0")
            chosen = select_clips(rng, devices, self.config.adir_p)
            if len(chosen):
                index = torch.from_numpy(chosen).to(self.device)
                waves[index] = apply_to_waveforms(waves[index], self.family.sample(rng, len(chosen)), rate)
        return self.features.frontend.compute(waves, rate).to(torch.float32)

    def _shape(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spectrogram:
            return x
        x = x.unsqueeze(1)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _adir(self, x: torch.Tensor, rows: np.ndarray, devices: np.ndarray | None, rng: np.random.Generator) -> torch.Tensor:
        if devices is None:
            raise ValueError("ADIR filters device-a clips only: TrainingData.devices is required when adir_p > 0")
        chosen = select_clips(rng, devices, self.config.adir_p)
        if len(chosen) == 0:
            return x
        responses = self.family.sample(rng, len(chosen))
        index = torch.from_numpy(chosen).to(self.device)
        frontend = self.features.frontend
        if self.adir == "input":
            assert isinstance(frontend, RawWaveform)
            changed = apply_to_waveforms(x[index], responses, frontend.sample_rate)
        elif self.adir == "features":
            rate = self.waveforms.frontend.sample_rate if self.waveforms is not None else ADIR_WAVEFORM_RATE
            changed = apply_to_features(x[index], responses, frontend, rate)
        else:
            assert self.waveforms is not None
            rate = self.waveforms.frontend.sample_rate
            waves = self.waveforms.batch(rows[chosen]).to(self.device)
            changed = frontend.compute(apply_to_waveforms(waves, responses, rate), rate).to(x.dtype)
        x[index] = changed  # x is this batch's own copy (CachedFeatures.batch)
        return x
