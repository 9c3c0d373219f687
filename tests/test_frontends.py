"""Frontends compute what their docstrings promise: shapes, frequency placement, BEATs parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ascbench.data.layout import CLIP_SAMPLES, SAMPLE_RATE
from ascbench.features.frontends import FRONTENDS, BaselineMel, KaldiFbank, RawWaveform
from shared_fixtures import shared_fixture


def _sine(freq: float, sample_rate: int = SAMPLE_RATE, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sample_rate * seconds), dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float().unsqueeze(0)


def _noise(batch: int, samples: int = CLIP_SAMPLES, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, samples, generator=generator)


@pytest.mark.parametrize(
    ("frontend", "shape"),
    [
        (BaselineMel(), (256, 65)),
        (KaldiFbank(), (98, 128)),
        (RawWaveform(16_000), (16_000,)),
        (RawWaveform(32_000), (32_000,)),
    ],
)
def test_one_second_clip_shapes(frontend, shape):
    features = frontend.compute(_noise(3), SAMPLE_RATE)
    assert features.shape == (3, *shape)
    assert features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert frontend.output_shape() == shape


def test_named_frontends_have_distinct_keys():
    keys = {frontend.key() for frontend in FRONTENDS.values()}
    assert len(keys) == len(FRONTENDS)
    assert BaselineMel().key() == BaselineMel().key()
    assert BaselineMel(n_mels=128).key() != BaselineMel().key()
    assert RawWaveform(16_000).name == "waveform-16k"


def _htk_mel(freq: float) -> float:
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def test_baseline_mel_puts_a_1khz_sine_in_the_1khz_bin():
    """Triangular HTK-mel filters centred at equal mel steps over [f_min, sr/2] (torchaudio's
    MelSpectrogram convention): the filter whose centre is nearest 1 kHz must take the most energy."""
    frontend = BaselineMel()
    features = frontend.compute(_sine(1000.0), SAMPLE_RATE)[0]
    top = _htk_mel(frontend.sample_rate / 2)
    centres = [(i + 1) * top / (frontend.n_mels + 1) for i in range(frontend.n_mels)]
    expected = min(range(frontend.n_mels), key=lambda i: abs(centres[i] - _htk_mel(1000.0)))
    energy = features.mean(dim=-1)
    assert int(energy.argmax()) == expected
    # a pure tone: bins an octave away are at least 40 dB (log: 9.2) below the peak
    far = torch.cat([energy[: expected // 2], energy[expected * 2 :]])
    assert float(energy.max() - far.max()) > 9.2


def test_kaldi_fbank_puts_a_1khz_sine_in_the_1khz_bin():
    """Kaldi mel bins: 1127 ln(1 + f/700), centred at equal steps between 20 Hz and Nyquist."""
    frontend = KaldiFbank()
    features = frontend.compute(_sine(1000.0), SAMPLE_RATE)[0]  # [frames, bins]

    def kaldi_mel(freq: float) -> float:
        return 1127.0 * math.log(1.0 + freq / 700.0)

    low, high = kaldi_mel(20.0), kaldi_mel(frontend.sample_rate / 2)
    step = (high - low) / (frontend.num_mel_bins + 1)
    centres = [low + (i + 1) * step for i in range(frontend.num_mel_bins)]
    expected = min(range(frontend.num_mel_bins), key=lambda i: abs(centres[i] - kaldi_mel(1000.0)))
    assert int(features.mean(dim=0).argmax()) == expected


def test_raw_waveform_keeps_a_sine_at_its_frequency():
    for rate in (16_000, 32_000):
        out = RawWaveform(rate).compute(_sine(1000.0), SAMPLE_RATE)[0]
        spectrum = torch.fft.rfft(out).abs()
        peak_hz = float(spectrum.argmax()) * rate / out.shape[-1]
        assert abs(peak_hz - 1000.0) <= 1.0
        assert out.abs().max() == pytest.approx(0.5, abs=0.01)


def test_mel_of_cached_32k_waveform_equals_mel_of_the_original():
    """Waveform-level augmentation of mel systems starts from the cached 32 kHz waveform; without
    augmentation it must reproduce the cached baseline mel of the 44.1 kHz file."""
    waveform = _noise(2, seed=3)
    direct = BaselineMel().compute(waveform, SAMPLE_RATE)
    via_cache = BaselineMel().compute(RawWaveform(32_000).compute(waveform, SAMPLE_RATE), 32_000)
    torch.testing.assert_close(via_cache, direct, rtol=0, atol=1e-5)


def test_kaldi_fbank_batch_equals_clip_by_clip():
    """No clip's features depend on the others in its batch. Equal to float32 rounding, not bit for
    bit: the mel-bank product of a batch takes another BLAS path than one clip's, which on aarch64
    moves a few log-energies by ~1.4e-6 (a 4e-6 relative gap) where x86_64 gives <1e-6; a leak
    between clips would be orders of magnitude larger."""
    waveform = _noise(3, seed=5)
    batched = KaldiFbank().compute(waveform, SAMPLE_RATE)
    single = torch.cat([KaldiFbank().compute(row.unsqueeze(0), SAMPLE_RATE) for row in waveform])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_batched_kaldi_fbank_equals_torchaudio_clip_by_clip():
    """The batched implementation is torchaudio's Kaldi fbank, step for step (incl. a silent clip:
    the log floor)."""
    import torchaudio

    from ascbench.features.frontends import kaldi_fbank_batch

    clips = torch.cat([_noise(2, seed=7)[:, :16_000] * 2**15, torch.zeros(1, 16_000)])
    clips[1, 4000:] *= torch.linspace(1.0, 0.0, 12_000)  # a fade: frames of every level
    batched = kaldi_fbank_batch(clips, 128, 16_000, 25.0, 10.0)
    for row, features in zip(clips, batched):
        reference = torchaudio.compliance.kaldi.fbank(row.unsqueeze(0), num_mel_bins=128, sample_frequency=16_000, frame_length=25.0, frame_shift=10.0)
        torch.testing.assert_close(features, reference, rtol=1e-4, atol=1e-3)


def test_kaldi_fbank_matches_official_beats_preprocessing():
    path = shared_fixture("beats/tiny_io.npz")
    with np.load(path) as fixture:
        wav = torch.from_numpy(fixture["wav"])
        expected = torch.from_numpy(fixture["fbank"])
    features = KaldiFbank().compute(wav, 16_000)
    assert features.shape == expected.shape == (2, 98, 128)
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-4)
