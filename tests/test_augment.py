"""Augmentations: Freq-MixStyle statistics, time roll, frequency masks, and ADIR (both domains)."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np
import pytest
import torch

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import BaselineMel, KaldiFbank, RawWaveform
from ascbench.training.augment import freq_mask, freq_mixstyle, spec_layout, time_roll
from ascbench.training.config import TrainConfig
from ascbench.training.device_response import (
    HIGHPASS,
    PEAK,
    DeviceResponseFamily,
    DeviceResponses,
    apply_to_features,
    apply_to_waveforms,
    select_clips,
)
from ascbench.training.inputs import InputPipeline

SR = 32_000


def styled_batch(batch: int = 6, freq: int = 12, time: int = 40, seed: int = 0) -> torch.Tensor:
    """Spectrogram-like batch whose samples differ in per-frequency level and spread."""
    g = torch.Generator().manual_seed(seed)
    level = torch.randn(batch, 1, freq, 1, generator=g) * 3
    spread = torch.rand(batch, 1, freq, 1, generator=g) * 2 + 0.5
    return level + spread * torch.randn(batch, 1, freq, time, generator=g)


@pytest.mark.parametrize("freq_dim", [2, 3])
def test_freq_mixstyle_output_has_the_mixed_per_frequency_statistics(freq_dim: int) -> None:
    x = styled_batch()
    if freq_dim == 3:  # time-major features (Kaldi fbank): [B, 1, T, F]
        x = x.transpose(2, 3).contiguous()
    out = freq_mixstyle(x, np.random.default_rng(3), p=1.0, alpha=0.3, freq_dim=freq_dim)

    replay = np.random.default_rng(3)  # the same draws, in the documented order
    replay.random()
    lam = torch.from_numpy(replay.beta(0.3, 0.3, size=x.shape[0]).astype(np.float32)).view(-1, 1)
    perm = torch.from_numpy(replay.permutation(x.shape[0]))
    time_dim = 5 - freq_dim
    mu, var = x.mean(dim=time_dim).squeeze(1), x.var(dim=time_dim).squeeze(1)  # [B, F]
    sig = (var + 1e-6).sqrt()
    expected_mu = lam * mu + (1 - lam) * mu[perm]
    expected_sig = lam * sig + (1 - lam) * sig[perm]
    got_mu, got_std = out.mean(dim=time_dim).squeeze(1), out.std(dim=time_dim).squeeze(1)
    assert torch.allclose(got_mu, expected_mu, atol=1e-4)
    # the output's spread is sig_mix * sqrt(var / (var + eps)): sig_mix up to the epsilon
    assert torch.allclose(got_std, expected_sig * var.sqrt() / sig, rtol=1e-4)
    assert not torch.allclose(got_mu, mu, atol=1e-2), "the statistics must actually change"
    # the normalised time-frequency pattern of each sample is kept
    norm = lambda t: (t - t.mean(dim=time_dim, keepdim=True)) / t.std(dim=time_dim, keepdim=True)  # noqa: E731
    assert torch.allclose(norm(out), norm(x), atol=1e-3)


def test_freq_mixstyle_skips_batches_with_probability_one_minus_p() -> None:
    x = styled_batch()
    rng = np.random.default_rng(0)
    applied = sum(not torch.equal(freq_mixstyle(x, rng, p=0.4, alpha=0.3), x) for _ in range(400))
    assert 120 < applied < 200  # 160 expected
    assert freq_mixstyle(x, rng, p=0.0, alpha=0.3) is x


def test_time_roll_is_a_per_sample_circular_shift_within_range() -> None:
    x = styled_batch(batch=16)
    out = time_roll(x, np.random.default_rng(1), max_shift=3, time_dim=3)
    shifts = np.random.default_rng(1).integers(-3, 4, size=16)
    for i, shift in enumerate(shifts):
        assert torch.equal(out[i], torch.roll(x[i], int(shift), dims=2))
    assert len(set(shifts.tolist())) > 1


def test_freq_mask_masks_one_contiguous_band_per_sample() -> None:
    x = styled_batch(batch=32, freq=64) + 10  # no zeros in the input
    out = freq_mask(x, np.random.default_rng(2), max_width=16, freq_dim=2)
    widths = []
    for i in range(32):
        zero_bins = torch.nonzero((out[i, 0] == 0).all(dim=1)).flatten().tolist()
        if zero_bins:
            assert zero_bins == list(range(zero_bins[0], zero_bins[-1] + 1)), "one contiguous band"
        widths.append(len(zero_bins))
        keep = torch.ones(64, dtype=torch.bool)
        keep[zero_bins] = False
        assert torch.equal(out[i, 0, keep], x[i, 0, keep])
    assert max(widths) < 16 and len(set(widths)) > 3


def test_spec_layout_knows_time_major_kaldi_fbanks() -> None:
    assert spec_layout(BaselineMel(), (256, 65)) == spec_layout(BaselineMel(), (256, 65))
    mel, kaldi = spec_layout(BaselineMel(), (256, 65)), spec_layout(KaldiFbank(), (98, 128))
    assert (mel.freq_dim, mel.time_dim, mel.frames_per_second) == (2, 3, 65)
    assert (kaldi.freq_dim, kaldi.time_dim, kaldi.frames_per_second) == (3, 2, 98)


# -- ADIR ----------------------------------------------------------------------------------------


def one_stage(kind: int, freq: float, gain_db: float = 0.0, q: float = 0.7071) -> DeviceResponses:
    return DeviceResponses(
        kind=np.array([[kind]]), freq_hz=np.array([[freq]]), gain_db=np.array([[gain_db]]), q=np.array([[q]])
    )


def test_device_responses_are_the_designed_filters() -> None:
    peak = one_stage(PEAK, 1000.0, gain_db=9.0, q=2.0)
    gain_db = 20 * np.log10(np.abs(peak.frequency_response(np.array([1000.0, 20.0, 15000.0]), SR)[0]))
    assert gain_db[0] == pytest.approx(9.0, abs=1e-6) and abs(gain_db[1]) < 0.1 and abs(gain_db[2]) < 0.1
    highpass = one_stage(HIGHPASS, 200.0)
    gain_db = 20 * np.log10(np.abs(highpass.frequency_response(np.array([200.0, 20.0, 5000.0]), SR)[0]))
    assert gain_db[0] == pytest.approx(-3.01, abs=0.02) and gain_db[1] < -35 and abs(gain_db[2]) < 0.01
    # a stage above 0.45 x the sample rate is left out
    assert np.allclose(one_stage(PEAK, 12_000.0, 9.0).frequency_response(np.array([7000.0]), 16_000), 1.0)


def test_waveform_filtering_is_convolution_with_the_response() -> None:
    responses = DeviceResponseFamily().sample(np.random.default_rng(4), 3)
    impulse = torch.zeros(3, SR)
    impulse[:, 0] = 1.0
    measured = np.fft.rfft(apply_to_waveforms(impulse, responses, SR).double().numpy())
    expected = responses.frequency_response(np.fft.rfftfreq(SR, 1 / SR), SR)
    assert np.abs(measured - expected).max() < 1e-5 * np.abs(expected).max()


def test_adir_sampling_is_deterministic_and_keeps_lengths() -> None:
    family = DeviceResponseFamily()
    a, b = family.sample(np.random.default_rng(7), 5), family.sample(np.random.default_rng(7), 5)
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("kind", "freq_hz", "gain_db", "q"))
    other = family.sample(np.random.default_rng(8), 5)
    assert not np.array_equal(a.freq_hz, other.freq_hz)
    wave = coloured_noise(5)
    out = apply_to_waveforms(wave, a, SR)
    assert out.shape == wave.shape and out.dtype == wave.dtype
    assert torch.equal(out, apply_to_waveforms(wave, b, SR))
    devices = np.array(["a", "b", "a", "s1", "a", "c"] * 50)
    chosen = select_clips(np.random.default_rng(0), devices, 0.5)
    assert set(devices[chosen]) == {"a"} and 50 < len(chosen) < 100
    assert np.array_equal(chosen, select_clips(np.random.default_rng(0), devices, 0.5))


def coloured_noise(n: int, seed: int = 0) -> torch.Tensor:
    """1-s clips at 32 kHz with a 1/f spectrum, a few tones and clicks: scene-like test audio."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.normal(size=(n, SR)))
    spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(SR, 1 / SR), 20.0))
    x = np.fft.irfft(spectrum, n=SR)
    t = np.arange(SR) / SR
    for row in x:
        row += sum(0.3 * np.sin(2 * np.pi * rng.uniform(50, 8000) * t) for _ in range(3))
        row[rng.integers(0, SR, 20)] += 3.0
    return torch.tensor(0.5 * x / np.abs(x).max(), dtype=torch.float32)


@pytest.mark.parametrize(
    ("frontend", "low_band", "frame_tolerance", "level_tolerance"),
    [(BaselineMel(), 25, 0.03, 0.01), (KaldiFbank(), 14, 0.2, 0.08)],
    ids=["baseline-mel", "kaldi-fbank"],
)
def test_adir_in_the_log_mel_domain_matches_filtering_the_waveform(
    frontend, low_band: int, frame_tolerance: float, level_tolerance: float
) -> None:
    """The cheap feature-domain ADIR against the exact one (filter, then recompute features).

    Compared away from the three edge frames (where the waveform filter starts from silence
    and the STFT reflects the signal) and above 250 Hz (``low_band``), where narrow peaks and
    the high-pass stop band are sharper than the analysis window resolves. Measured: the
    baseline mel (96 ms window) agrees to 0.5-0.8 % of the change ADIR makes, frame by frame,
    and 0.2 % in per-band level; Kaldi's 25 ms window to 8-11 % and 2-4 %.
    """
    wave = coloured_noise(6)
    responses = DeviceResponseFamily().sample(np.random.default_rng(1), 6)
    clean = frontend.compute(wave, SR)
    exact = frontend.compute(apply_to_waveforms(wave, responses, SR), SR)
    cheap = apply_to_features(clean, responses, frontend, SR)
    assert cheap.shape == clean.shape
    if isinstance(frontend, KaldiFbank):  # [frames, bins] -> [bins, frames]
        clean, exact, cheap = (t.transpose(1, 2) for t in (clean, exact, cheap))
    inner = (slice(None), slice(low_band, None), slice(3, -3))
    change, error = (exact - clean)[inner], (cheap - exact)[inner]
    assert change.abs().mean() > 0.02  # the responses do change the spectrum
    assert error.abs().mean() < frame_tolerance * change.abs().mean()
    # what Freq-MixStyle and the network's first layers mostly see: per-band levels over time
    assert error.mean(-1).abs().mean() < level_tolerance * change.mean(-1).abs().mean()


def tiny_caches(tmp_path: Path, n: int = 6) -> tuple[CachedFeatures, CachedFeatures]:
    """A BaselineMel cache and the matching 32 kHz waveform cache over ``n`` clips."""
    wave = coloured_noise(n, seed=5)
    names = tuple(f"audio/clip-{i}.wav" for i in range(n))
    mel = BaselineMel()
    feats = CachedFeatures(mel, tmp_path / "mel", mel.compute(wave, SR).numpy(), names)
    waves = CachedFeatures(RawWaveform(SR), tmp_path / "wave", wave.numpy(), names)
    return feats, waves


@pytest.mark.parametrize("domain", ["mel", "waveform"])
def test_adir_filters_only_device_a_clips(tmp_path: Path, domain: str) -> None:
    feats, waves = tiny_caches(tmp_path)
    config = TrainConfig(adir_p=1.0, adir_domain=domain, fms_p=0.0, roll_s=0.0, freq_mask=0)
    pipeline = InputPipeline(feats, config, torch.device("cpu"), waves)
    assert pipeline.adir == ("features" if domain == "mel" else "waveform")
    rows = np.arange(6)
    devices = np.array(["a", "b", "a", "s1", "c", "a"])
    out = pipeline.train_inputs(rows, devices, np.random.default_rng(0))
    clean = pipeline.inputs(rows)
    assert out.shape == clean.shape == (6, 1, 256, 65)
    changed = [not torch.allclose(out[i], clean[i]) for i in range(6)]
    assert changed == [d == "a" for d in devices]
    # the same seed gives the same augmentation
    assert torch.equal(out, pipeline.train_inputs(rows, devices, np.random.default_rng(0)))


def test_adir_on_features_needs_devices_and_waveform_mode_needs_a_cache(tmp_path: Path) -> None:
    feats, _ = tiny_caches(tmp_path, n=2)
    pipeline = InputPipeline(feats, TrainConfig(adir_p=0.5), torch.device("cpu"))
    with pytest.raises(ValueError, match="devices is required"):
        pipeline.train_inputs(np.arange(2), None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="RawWaveform"):
        InputPipeline(feats, TrainConfig(adir_p=0.5, adir_domain="waveform"), torch.device("cpu"))


def test_the_waveform_roll_shifts_whole_samples_and_recomputes_the_mel(tmp_path: Path) -> None:
    """roll_domain "waveform": the batch's mel is the frontend's mel of the rolled waveform, so a
    shift need not be a whole frame (500 samples), unlike the frame roll of the cached mel."""
    from ascbench.training.augment import roll_by

    feats, waves = tiny_caches(tmp_path)
    config = TrainConfig(roll_s=0.1, roll_domain="waveform", fms_p=0.0, freq_mask=0)
    pipeline = InputPipeline(feats, config, torch.device("cpu"), waves)
    rows = np.arange(6)
    out = pipeline.train_inputs(rows, None, np.random.default_rng(3))
    shifts = np.random.default_rng(3).integers(-3200, 3201, size=6)  # the draws the pipeline made
    expected = BaselineMel().compute(roll_by(torch.from_numpy(waves.array[rows]), torch.from_numpy(shifts), 1), SR)
    torch.testing.assert_close(out[:, 0], expected.float(), rtol=1e-5, atol=1e-5)
    assert any(s % 500 for s in shifts)  # sub-frame shifts: not any frame roll of the cached mel
    unrolled = pipeline.inputs(rows)
    assert not torch.allclose(out, unrolled)
    still = InputPipeline(feats, dataclasses.replace(config, roll_s=0.5 / SR), torch.device("cpu"), waves)  # shifts round to 0
    torch.testing.assert_close(still.train_inputs(rows, None, np.random.default_rng(0)), unrolled, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="rolls cached waveforms"):
        InputPipeline(feats, config, torch.device("cpu"))
