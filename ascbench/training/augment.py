"""Spectrogram augmentations of the DCASE 2024 baseline: Freq-MixStyle, time roll, frequency masks.

Every random choice is drawn from one ``numpy.random.Generator`` passed in by the caller (the
training engine checkpoints its state), never from torch's global RNG: the same seed then
gives the same augmentations on CPU and on CUDA, and a resumed run continues the exact sequence.
The draws are a few numbers per sample, so drawing them on the host costs nothing.

Spectrogram batches are ``[batch, channels, a, b]``; a :class:`SpecLayout` says which of the two
last axes is frequency (``BaselineMel`` caches ``[freq, time]``, ``KaldiFbank`` ``[time, freq]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ascbench.features.frontends import BaselineMel, Frontend, KaldiFbank

CLIP_SECONDS = 1.0
"""Every TAU22 clip is one second, so a feature's frame count is its frame rate."""


@dataclass(frozen=True)
class SpecLayout:
    """Which axes of a ``[B, C, a, b]`` batch are frequency and time, the frame rate, and silence."""

    freq_dim: int
    time_dim: int
    frames_per_second: float
    silence: float = 0.0
    """The feature value of zero power: what a masked bin becomes."""


def spec_layout(frontend: Frontend, feature_shape: tuple[int, ...]) -> SpecLayout:
    """Layout of ``frontend``'s cached features (``feature_shape`` is one clip's, without batch).

    Kaldi fbanks are time-major (``[frames, bins]``); every other 2-D frontend here is
    frequency-major like torchaudio's ``MelSpectrogram``.
    """
    if len(feature_shape) != 2:
        raise ValueError(f"{frontend.name}: spectrogram features must be 2-D per clip, got shape {feature_shape}")
    if isinstance(frontend, KaldiFbank):
        return SpecLayout(3, 2, feature_shape[0] / CLIP_SECONDS, silence_value(frontend))
    return SpecLayout(2, 3, feature_shape[1] / CLIP_SECONDS, silence_value(frontend))


def silence_value(frontend: Frontend) -> float:
    """The feature value of a bin with no power (the log floor, normalised as the frontend does).

    The baseline masks the mel *power* before its log, so a masked bin reads ``log(1e-5)``,
    not 0: silence, not a loud band that looks like a class cue.
    """
    if isinstance(frontend, BaselineMel):
        return float(np.log(frontend.log_offset))
    if isinstance(frontend, KaldiFbank):
        return float((np.log(np.finfo(np.float32).eps) - frontend.mean) / (2 * frontend.std))
    return 0.0


def _stat_dims(x: torch.Tensor, freq_dim: int) -> list[int]:
    """Every axis but batch and frequency: the statistics of Freq-MixStyle run over these."""
    return [d for d in range(1, x.dim()) if d != freq_dim]


def freq_mixstyle(
    x: torch.Tensor, rng: np.random.Generator, p: float, alpha: float, freq_dim: int = 2, eps: float = 1e-6
) -> torch.Tensor:
    r"""Freq-MixStyle (Schmid et al., DCASE 2022 workshop; CP-JKU's ``mixstyle``).

    With probability ``p`` for the whole batch (else ``x`` is returned unchanged), every sample
    ``i`` gets the per-frequency statistics of itself mixed with those of sample ``pi(i)``, for a
    random permutation ``pi`` of the batch and ``lambda_i ~ Beta(alpha, alpha)``:

    .. math::

        \mu_{i,f} = \operatorname{mean}_{c,t} x_{i,c,f,t}, \qquad
        \sigma_{i,f} = \sqrt{\operatorname{var}_{c,t} x_{i,c,f,t} + \epsilon}

        \tilde\mu_{i,f} = \lambda_i \mu_{i,f} + (1-\lambda_i)\mu_{\pi(i),f}, \qquad
        \tilde\sigma_{i,f} = \lambda_i \sigma_{i,f} + (1-\lambda_i)\sigma_{\pi(i),f}

        y_{i,c,f,t} = \frac{x_{i,c,f,t} - \mu_{i,f}}{\sigma_{i,f}}\,\tilde\sigma_{i,f} + \tilde\mu_{i,f}

    ``var`` is the unbiased variance over channels and time; the statistics are detached
    (no gradient flows through them), as in the reference. So sample ``i`` keeps its time-
    frequency pattern but takes on a mix of two recordings' spectral "style" (per-band level
    and spread), which is where a device's frequency response shows. Returns a new tensor.
    """
    if p <= 0 or rng.random() >= p:
        return x
    batch = x.shape[0]
    dims = _stat_dims(x, freq_dim)
    mu = x.mean(dim=dims, keepdim=True).detach()
    sig = (x.var(dim=dims, keepdim=True) + eps).sqrt().detach()
    lam = torch.from_numpy(rng.beta(alpha, alpha, size=batch).astype(np.float32)).to(x.device)
    lam = lam.view(batch, *([1] * (x.dim() - 1)))
    perm = torch.from_numpy(rng.permutation(batch)).to(x.device)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    return (x - mu) / sig * sig_mix + mu_mix


def time_roll(x: torch.Tensor, rng: np.random.Generator, max_shift: int, time_dim: int = 3) -> torch.Tensor:
    """Roll each sample circularly along time by its own shift, uniform in ``[-max_shift, max_shift]``.

    The spectrogram counterpart of the baseline's waveform roll (``roll_sec`` 0.1 s = 3,200
    samples at 32 kHz = 6.4 frames of the baseline mel). Returns a new tensor.
    """
    if max_shift <= 0:
        return x
    return roll_by(x, torch.from_numpy(rng.integers(-max_shift, max_shift + 1, size=x.shape[0])), time_dim)


def roll_by(x: torch.Tensor, shifts: torch.Tensor, time_dim: int) -> torch.Tensor:
    """Roll sample i of ``x`` circularly along ``time_dim`` by ``shifts[i]`` frames (a new tensor):
    output frame t is input frame (t - shift) mod T. Also used to move a teacher's frame sequence
    with its student's rolled input (front-end alignment)."""
    batch, frames = x.shape[0], x.shape[time_dim]
    index = (torch.arange(frames, device=x.device).unsqueeze(0) - shifts.to(x.device).unsqueeze(1)) % frames
    view = [batch] + [1] * (x.dim() - 1)
    view[time_dim] = frames
    return torch.gather(x, time_dim, index.view(view).expand_as(x))


def freq_mask(
    x: torch.Tensor, rng: np.random.Generator, max_width: int, freq_dim: int = 2, mask_value: float = 0.0
) -> torch.Tensor:
    """Mask one band of frequency bins per sample (SpecAugment), set to ``mask_value``.

    Exactly ``torchaudio.functional.mask_along_axis_iid`` (what the baseline's
    ``FrequencyMasking(freqm, iid_masks=True)`` calls) with its two uniforms drawn from ``rng``
    instead of torch's global RNG: per sample and channel, width ``w = u * max_width`` and
    start ``s = v * (F - w)`` with ``u, v ~ U[0, 1)``; bins ``[floor(s), floor(s) + floor(w))``
    are masked. Pass the frontend's :func:`silence_value` as ``mask_value``: the baseline masks
    the power spectrogram, so its masked bins are silent. Returns a new tensor.
    """
    if max_width <= 0:
        return x
    groups, bins = x.shape[:2], x.shape[freq_dim]
    width = rng.random(groups) * max_width
    start = np.floor(rng.random(groups) * np.maximum(bins - width, 0.0))
    lo = torch.from_numpy(start).to(x.device)
    hi = torch.from_numpy(start + np.floor(width)).to(x.device)
    position = torch.arange(bins, device=x.device, dtype=lo.dtype)
    masked = (position >= lo.unsqueeze(-1)) & (position < hi.unsqueeze(-1))  # [B, C, bins]
    view = list(groups) + [1] * (x.dim() - 2)
    view[freq_dim] = bins
    return x.masked_fill(masked.view(view), mask_value)
