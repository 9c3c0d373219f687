r"""ADIR: device impulse response augmentation from a parametric family of device responses.

The seed paper (§2.2.1, eq. 4 and 13) trains on ``x * h`` for device responses ``h`` drawn from
a distribution ``P(h)`` so that the model learns to ignore the recording channel. CP-JKU's DIR
augmentation draws ``h`` from measured microphone impulse responses (MicIRP); no such set can be
downloaded here, so ``h`` is drawn from a parametric family that covers what makes TAU's
devices differ (and what ``synth-tau22``'s devices are built from): a smooth random EQ and band
limits. A response is a cascade of RBJ-cookbook biquads designed at the waveform's sample rate:

* ``K ~ U{peaks[0], ..., peaks[1]}`` peaking filters, each with centre frequency
  ``f ~ LogU(peak_freq_hz)``, gain ``g ~ U(peak_gain_db)`` dB and quality ``Q ~ LogU(peak_q)``;
* with probability ``highpass_p`` a 2nd-order Butterworth high-pass (``Q = 1/sqrt 2``) at
  ``f ~ LogU(highpass_hz)`` (small phone microphones and their housings lose the bass);
* with probability ``lowpass_p`` a 2nd-order Butterworth low-pass at ``f ~ LogU(lowpass_hz)``
  (codec and anti-aliasing band limits).

A stage whose frequency is not below 0.45 of the sample rate is left out (identity), so one
response means the same physical filter at 16 and 32 kHz. The cascade is minimum-phase, so
it also perturbs the phase (the paper's ``Delta phi``) the way a real channel does; its
magnitude is the paper's ``Delta f``. Parameters are drawn in the fixed order above from a
``numpy.random.Generator``, so a seed fixes them on any device.

Where it applies (:func:`apply_to_waveforms` vs :func:`apply_to_features`): filtering the cached
waveform and recomputing the features is exact but costs a filter and a feature transform per
clip; multiplying each mel band's power by the band's
mean power gain ``g_m = sum_k W_{mk} |H(f_k)|^2 / sum_k W_{mk}`` is the cheap equivalent in the
feature domain. It is exact when the signal's spectrum is flat within a band and the response's
impulse response is short against the analysis window. Measured against the waveform path on
scene-like audio above 250 Hz (``tests/test_augment.py``): within 0.5-0.8 % of the change ADIR
makes for the baseline mel (96 ms window), 8-11 % for Kaldi fbanks (25 ms window, which blurs
narrow low-frequency peaks); below 250 Hz it attenuates high-pass stop bands more than window
leakage lets the waveform path do. It needs no waveform cache (32 kHz float32 is 128 kB
per clip: 29 GB for the full TAU development set) and costs next to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torchaudio

from ascbench.features.frontends import BaselineMel, Frontend, KaldiFbank

PEAK, HIGHPASS, LOWPASS = 1, 2, 3
"""Stage kinds (0 = identity)."""
NYQUIST_FRACTION = 0.45


@dataclass(frozen=True)
class DeviceResponses:
    """``n`` sampled responses as biquad stages: arrays ``[n, stages]`` of kind, Hz, dB, Q."""

    kind: np.ndarray
    freq_hz: np.ndarray
    gain_db: np.ndarray
    q: np.ndarray

    def __len__(self) -> int:
        return self.kind.shape[0]

    def biquads(self, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Normalised coefficients ``(b, a)``, each ``[n, stages, 3]`` float64, at ``sample_rate``."""
        w0 = 2 * np.pi * self.freq_hz / sample_rate
        cos, alpha = np.cos(w0), np.sin(w0) / (2 * self.q)
        amp = 10.0 ** (self.gain_db / 40)
        one, zero = np.ones_like(w0), np.zeros_like(w0)
        b = np.stack([one, zero, zero], -1)
        a = np.stack([one, zero, zero], -1)
        designs = {
            PEAK: ((1 + alpha * amp, -2 * cos, 1 - alpha * amp), (1 + alpha / amp, -2 * cos, 1 - alpha / amp)),
            LOWPASS: (((1 - cos) / 2, 1 - cos, (1 - cos) / 2), (1 + alpha, -2 * cos, 1 - alpha)),
            HIGHPASS: (((1 + cos) / 2, -(1 + cos), (1 + cos) / 2), (1 + alpha, -2 * cos, 1 - alpha)),
        }
        audible = self.freq_hz < NYQUIST_FRACTION * sample_rate
        for kind, (num, den) in designs.items():
            use = (self.kind == kind) & audible
            b[use] = np.stack(num, -1)[use]
            a[use] = np.stack(den, -1)[use]
        return b / a[..., :1], a / a[..., :1]

    def frequency_response(self, freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
        """Complex response ``H(f)`` of each cascade, ``[n, len(freqs_hz)]`` complex128."""
        b, a = self.biquads(sample_rate)
        z = np.exp(-2j * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate)  # z^-1, [K]
        response = np.ones((len(self), z.shape[0]), dtype=np.complex128)
        for stage in range(b.shape[1]):
            if np.all(self.kind[:, stage] == 0):
                continue
            (b0, b1, b2), (a0, a1, a2) = (b[:, stage, :, None].transpose(1, 0, 2), a[:, stage, :, None].transpose(1, 0, 2))
            response *= (b0 + z * (b1 + z * b2)) / (a0 + z * (a1 + z * a2))
        return response


@dataclass(frozen=True)
class DeviceResponseFamily:
    """The distribution ``P(h)`` of device responses (see the module docstring)."""

    peaks: tuple[int, int] = (2, 5)
    peak_freq_hz: tuple[float, float] = (100.0, 12_000.0)
    peak_gain_db: tuple[float, float] = (-10.0, 10.0)
    peak_q: tuple[float, float] = (0.5, 3.0)
    highpass_p: float = 0.5
    highpass_hz: tuple[float, float] = (50.0, 400.0)
    lowpass_p: float = 0.5
    lowpass_hz: tuple[float, float] = (4_000.0, 14_000.0)

    def sample(self, rng: np.random.Generator, n: int) -> DeviceResponses:
        """Draw ``n`` responses; stages ``[0, peaks[1])`` are peaks, then high-pass, then low-pass."""
        slots = self.peaks[1]
        count = rng.integers(self.peaks[0], self.peaks[1] + 1, size=n)
        freq = _log_uniform(rng, self.peak_freq_hz, (n, slots))
        gain = rng.uniform(*self.peak_gain_db, size=(n, slots))
        q = _log_uniform(rng, self.peak_q, (n, slots))
        kind = np.where(np.arange(slots) < count[:, None], PEAK, 0)
        has_hp = rng.random(n) < self.highpass_p
        hp = _log_uniform(rng, self.highpass_hz, n)
        has_lp = rng.random(n) < self.lowpass_p
        lp = _log_uniform(rng, self.lowpass_hz, n)
        butterworth = np.full((n, 1), 1 / np.sqrt(2))
        return DeviceResponses(
            kind=np.concatenate([kind, np.where(has_hp, HIGHPASS, 0)[:, None], np.where(has_lp, LOWPASS, 0)[:, None]], 1),
            freq_hz=np.concatenate([freq, hp[:, None], lp[:, None]], 1),
            gain_db=np.concatenate([gain, np.zeros((n, 2))], 1),
            q=np.concatenate([q, butterworth, butterworth], 1),
        )


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int | tuple[int, ...]) -> np.ndarray:
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size=size))


def select_clips(rng: np.random.Generator, devices: np.ndarray, p: float, source_device: str = "a") -> np.ndarray:
    """Positions of the clips ADIR filters: each ``source_device`` clip independently with prob. ``p``.

    Only clips of the reference device are filtered: they are what the other devices' clips
    would sound like through another channel; filtering a phone clip would stack two channels.
    One uniform is drawn per clip (whatever its device), so the draws do not depend on the mix.
    """
    coin = rng.random(len(devices)) < p
    return np.flatnonzero(coin & (np.asarray(devices) == source_device))


def apply_to_waveforms(waveforms: torch.Tensor, responses: DeviceResponses, sample_rate: float) -> torch.Tensor:
    """Filter each row of ``waveforms`` ``[n, samples]`` by its response; same shape and dtype.

    Direct IIR filtering (``torchaudio.functional.lfilter``, zero initial state, no clamping),
    one batched call per biquad stage, in float64: float32 recursion leaves errors near -85 dB,
    which is where a band-limited device's stop band lies.
    """
    if len(responses) != waveforms.shape[0]:
        raise ValueError(f"{len(responses)} responses for {waveforms.shape[0]} waveforms")
    b, a = responses.biquads(sample_rate)
    out = waveforms.double()
    for stage in range(b.shape[1]):
        if np.all(responses.kind[:, stage] == 0):
            continue
        a_stage = torch.from_numpy(a[:, stage]).to(out.device)
        b_stage = torch.from_numpy(b[:, stage]).to(out.device)
        out = torchaudio.functional.lfilter(out, a_stage, b_stage, clamp=False, batching=True)
    return out.to(waveforms.dtype)


def band_power_gains(frontend: Frontend, responses: DeviceResponses, waveform_rate: float) -> torch.Tensor:
    """Mean power gain of each response in each of ``frontend``'s mel bands, ``[n, bands]`` float32.

    ``g_m = sum_k W_mk |H(f_k)|^2 / sum_k W_mk`` over the frontend's own filterbank ``W`` and FFT
    grid; the responses are designed at ``waveform_rate`` (where the waveform path filters).
    """
    weights, freqs = _filterbank(frontend)
    power = torch.from_numpy(np.abs(responses.frequency_response(freqs, waveform_rate)) ** 2)  # [n, freqs]
    total = weights.sum(0)
    # torch, not numpy: OpenBLAS's own thread pool competes with torch's for the same cores
    gains = (power @ weights) / torch.where(total > 0, total, 1.0)
    return torch.where(total > 0, gains, 1.0).float()


@lru_cache(maxsize=8)
def _filterbank(frontend: Frontend) -> tuple[torch.Tensor, np.ndarray]:
    """``frontend``'s mel weights ``[fft bins, bands]`` (float64) and the bins' frequencies in Hz."""
    if isinstance(frontend, BaselineMel):
        n_freqs = frontend.n_fft // 2 + 1
        weights = torchaudio.functional.melscale_fbanks(
            n_freqs, frontend.f_min, frontend.f_max or frontend.sample_rate / 2, frontend.n_mels, frontend.sample_rate
        )
        return weights.double(), np.linspace(0, frontend.sample_rate / 2, n_freqs)
    if isinstance(frontend, KaldiFbank):  # torchaudio.compliance.kaldi.fbank's defaults
        padded = 1 << int(np.ceil(np.log2(frontend.sample_rate * frontend.frame_length_ms / 1000)))
        banks, _ = torchaudio.compliance.kaldi.get_mel_banks(
            frontend.num_mel_bins, padded, float(frontend.sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0
        )
        return banks.double().T.contiguous(), np.arange(padded // 2) * frontend.sample_rate / padded
    raise NotImplementedError(
        f"ADIR in the feature domain knows BaselineMel and KaldiFbank, not {type(frontend).__name__}; "
        "give the training data a waveform cache (RawWaveform(32000)) to filter waveforms instead"
    )


def apply_to_features(features: torch.Tensor, responses: DeviceResponses, frontend: Frontend, waveform_rate: float) -> torch.Tensor:
    """Apply the responses in the log-mel domain: each band's power times its mean power gain.

    ``features`` are ``[n, bands, frames]`` (BaselineMel) or ``[n, frames, bands]`` (KaldiFbank)
    as cached, or with a channel axis after the batch axis. The frontend's log and normalisation
    are undone, the power scaled, and the same log and normalisation applied again.
    """
    gains = band_power_gains(frontend, responses, waveform_rate).to(features.device)
    spectro = features.reshape(features.shape[0], *features.shape[-2:]).double()
    if isinstance(frontend, BaselineMel):
        power = (spectro.exp() - frontend.log_offset).clamp_min(0.0)
        out = torch.log(power * gains.double().unsqueeze(-1) + frontend.log_offset)
    else:  # KaldiFbank: log(max(P, eps)), then (x - mean) / (2 std)
        floor = torch.finfo(torch.float32).eps
        power = torch.exp(spectro * (2 * frontend.std) + frontend.mean)
        out = (torch.log((power * gains.double().unsqueeze(-2)).clamp_min(floor)) - frontend.mean) / (2 * frontend.std)
    return out.to(features.dtype).reshape(features.shape)
