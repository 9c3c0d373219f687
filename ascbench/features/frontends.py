"""Frontends: waveform -> model input, the part every system of one family shares.

The harness, not the plugin, computes features, so that two systems that declare the same
frontend are fed byte-identical inputs from one cache. A frontend is a frozen dataclass: its
fields are its whole configuration, and :meth:`Frontend.key` (a hash of them) keys the cache.

- :class:`BaselineMel`: the DCASE 2024 Task 1 baseline log-mel (32 kHz, n_fft 4096, window
  3072, hop 500, 256 bins, ``log(x + 1e-5)``) -> 256 x 65 for a 1-s clip.
- :class:`KaldiFbank`: the BEATs/AST convention (16 kHz, x 2^15, Kaldi fbank 128 bins, 25/10 ms,
  normalised with BEATs' mean 15.41663 and 2 x std 6.55582) -> 98 x 128 for a 1-s clip.
- :class:`RawWaveform`: resampled waveform (16 kHz for HuBERT; 32 kHz for waveform-level
  augmentation of mel systems).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
import torchaudio

from ascbench.data.layout import CLIP_SAMPLES, SAMPLE_RATE


@lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig_freq=orig, new_freq=new)


def resample(waveform: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Band-limited sinc resampling (torchaudio's default kernel), batched over leading dims."""
    if orig == new:
        return waveform
    return _resampler(orig, new).to(waveform.device)(waveform)


@dataclass(frozen=True)
class Frontend:
    """Base class: a named, hashable waveform -> feature transform."""

    @property
    def name(self) -> str:
        raise NotImplementedError

    def key(self) -> str:
        """Stable identity of this configuration (class name + every field), for caches."""
        payload = json.dumps({"class": type(self).__name__, **asdict(self)}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"

    def output_shape(self, num_samples: int = CLIP_SAMPLES, sample_rate: int = SAMPLE_RATE) -> tuple[int, ...]:
        """Shape of one clip's features, found by running the transform on silence."""
        with torch.no_grad():
            return tuple(self.compute(torch.zeros(1, num_samples), sample_rate).shape[1:])

    def compute(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``waveform`` [batch, samples] at ``sample_rate`` -> features [batch, ...] (float32)."""
        raise NotImplementedError


@dataclass(frozen=True)
class BaselineMel(Frontend):
    """The DCASE 2024 Task 1 baseline log-mel spectrogram."""

    sample_rate: int = 32_000
    n_fft: int = 4096
    win_length: int = 3072
    hop_length: int = 500
    n_mels: int = 256
    f_min: float = 0.0
    f_max: float | None = None
    log_offset: float = 1e-5

    @property
    def name(self) -> str:
        return "baseline-mel"

    def _transform(self, device: torch.device) -> torchaudio.transforms.MelSpectrogram:
        return _mel_transform(self).to(device)

    def compute(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        x = resample(waveform.float(), sample_rate, self.sample_rate)
        mel = self._transform(x.device)(x)
        return torch.log(mel + self.log_offset)


@lru_cache(maxsize=8)
def _mel_transform(cfg: BaselineMel) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate,
        n_fft=cfg.n_fft,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        f_min=cfg.f_min,
        f_max=cfg.f_max,
        power=2.0,
    )


@dataclass(frozen=True)
class KaldiFbank(Frontend):
    """Kaldi-compatible log-mel fbank with BEATs' preprocessing and normalisation."""

    sample_rate: int = 16_000
    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    mean: float = 15.41663
    std: float = 6.55582

    @property
    def name(self) -> str:
        return "kaldi-fbank"

    def compute(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        x = resample(waveform.float(), sample_rate, self.sample_rate)
        flat = x.reshape(-1, x.shape[-1]) * 2**15
        out = kaldi_fbank_batch(flat, self.num_mel_bins, self.sample_rate, self.frame_length_ms, self.frame_shift_ms)
        out = out.reshape(*x.shape[:-1], *out.shape[1:])
        return (out - self.mean) / (2 * self.std)


@lru_cache(maxsize=4)
def _kaldi_constants(num_mel_bins: int, padded: int, window_size: int, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Kaldi's povey window and mel banks (torchaudio's own), computed once, not per clip."""
    window = torch.hann_window(window_size, periodic=False, dtype=torch.float32).pow(0.85)  # as torchaudio, in float32
    banks, _ = torchaudio.compliance.kaldi.get_mel_banks(num_mel_bins, padded, float(sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
    return window, torch.nn.functional.pad(banks, (0, 1)).float()  # [bins, padded // 2 + 1]


def kaldi_fbank_batch(
    waveforms: torch.Tensor, num_mel_bins: int, sample_rate: int, frame_length_ms: float, frame_shift_ms: float
) -> torch.Tensor:
    """``torchaudio.compliance.kaldi.fbank`` (its defaults: povey window, DC removal, pre-emphasis
    0.97, no dither, power spectrum, snip edges, log floored at float eps) on a batch [N, T] at once.

    torchaudio's function takes one clip per call and rebuilds its window and mel banks each
    time (~60-200 ms per 1-s clip on a 2-core CPU: 6 minutes for the 5,460 clips of
    synth-tau22-small); this runs the same steps on the whole batch with torchaudio's banks.
    A test checks it against torchaudio clip by clip.
    """
    window_size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    padded = 1 << (window_size - 1).bit_length()
    window, banks = _kaldi_constants(num_mel_bins, padded, window_size, sample_rate)
    frames = waveforms.float().unfold(-1, window_size, shift)  # [N, m, window]
    frames = frames - frames.mean(-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = (frames - 0.97 * previous) * window
    power = torch.fft.rfft(frames, n=padded).abs().pow(2)
    mel = power @ banks.T
    return mel.clamp_min(torch.finfo(torch.float32).eps).log()


@dataclass(frozen=True)
class RawWaveform(Frontend):
    """The waveform itself, resampled: HuBERT's input, and the source for waveform augmentation."""

    sample_rate: int = 16_000

    @property
    def name(self) -> str:
        return f"waveform-{self.sample_rate // 1000}k"

    def compute(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return resample(waveform.float(), sample_rate, self.sample_rate)


FRONTENDS: dict[str, Frontend] = {
    "baseline-mel": BaselineMel(),
    "kaldi-fbank": KaldiFbank(),
    "waveform-16k": RawWaveform(16_000),
    "waveform-32k": RawWaveform(32_000),
}
"""The frontends known by name on the command line."""
