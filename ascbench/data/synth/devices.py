"""Recording devices as channels: frequency response, band limits, self-noise, non-linearity.

- a: a good binaural microphone: near-flat (±1 dB ripple), 20 Hz - 19 kHz, very quiet.
- b, c: phones: high-pass 100-300 Hz, a presence peak, low-pass 8-12 kHz, dynamic range
  compression, audible self-noise.
- s1-s3: simulated devices seen in training: random parametric EQs (three ±6-10 dB peaks),
  band limits 50-200 Hz / 9-15 kHz, noise floor, mild soft clipping.
- s4-s6: simulated devices never seen in training, drawn from a region of that space no
  training device covers: narrower band (200-450 Hz / 6-8 kHz), stronger and narrower EQ peaks (±8-12 dB),
  a higher noise floor and harder clipping. This is what makes unseen-device attenuation real.

Filtering is zero-phase in the frequency domain (log-mel features see magnitudes only), applied
to the captured span with a margin on each side, so circular wrap-around never reaches a clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from ascbench.data.layout import DEVICES, SAMPLE_RATE as FS
from ascbench.data.synth.plan import DEVICE_STREAM

FULL_SCALE = 1.0 - 2.0**-23
"""Largest 24-bit sample value."""


@dataclass(frozen=True)
class DeviceChannel:
    name: str
    highpass_hz: float
    lowpass_hz: float
    lowpass_order: int
    peaks: tuple[tuple[float, float, float], ...]
    """(centre Hz, gain dB, width in octaves) of Gaussian-in-log-frequency EQ bumps."""
    tilt_db_per_octave: float
    gain_db: float
    noise_dbfs: float
    """RMS of the self-noise in dBFS (white before the channel's band limits)."""
    compression: tuple[float, float] | None
    """(threshold dBFS, ratio) of a dynamic range compressor, or None."""
    drive: float
    """Soft clipping ``tanh(drive * x) / drive``; 0 for none."""

    def response_db(self, freqs: np.ndarray) -> np.ndarray:
        f = np.maximum(freqs, 1.0)
        db = -10 * np.log10(1 + (self.highpass_hz / f) ** 4)
        db -= 10 * np.log10(1 + (f / self.lowpass_hz) ** (2 * self.lowpass_order))
        db += self.tilt_db_per_octave * np.log2(f / 1000.0)
        for centre, gain, width in self.peaks:
            db += gain * np.exp(-0.5 * (np.log2(f / centre) / (width / 2)) ** 2)
        return db


def _peaks(rng: np.random.Generator, count: int, low: float, high: float, gains: tuple[float, float], widths: tuple[float, float]) -> tuple:
    centres = np.exp(rng.uniform(np.log(low), np.log(high), count))
    signs = rng.permutation(np.resize([1.0, -1.0], count))
    return tuple(
        (float(c), float(s * rng.uniform(*gains)), float(rng.uniform(*widths))) for c, s in zip(centres, signs)
    )


@lru_cache(maxsize=16)
def device_channels(seed: int) -> dict[str, DeviceChannel]:
    """All nine devices of a data set, drawn once from its seed."""
    rng = np.random.default_rng([seed, DEVICE_STREAM])
    u = rng.uniform
    devices = {
        "a": DeviceChannel("a", 20.0, u(18500, 19500), 4, _peaks(rng, 2, 200, 8000, (0.5, 1.0), (1.0, 2.0)),
                           0.0, 0.0, -88.0, None, 0.0),
    }
    for name in ("b", "c"):
        devices[name] = DeviceChannel(
            name, u(100, 300), u(8000, 12000), 6,
            ((u(1800, 4000), u(4, 7), u(0.8, 1.5)), (u(300, 800), -u(2, 4), u(1.0, 2.0))),
            u(-0.5, 0.5), u(-3, 3), u(-72, -66), (u(-40, -34), u(2.5, 4.0)), 0.0,
        )
    for name in ("s1", "s2", "s3"):
        devices[name] = DeviceChannel(
            name, u(50, 200), u(9000, 15000), int(rng.integers(2, 7)), _peaks(rng, 3, 200, 8000, (6, 10), (0.4, 1.2)),
            u(-1, 1), u(-3, 3), u(-70, -60), (u(-38, -30), u(2.0, 3.0)) if rng.random() < 0.5 else None, u(2, 4),
        )
    for name in ("s4", "s5", "s6"):
        devices[name] = DeviceChannel(
            name, u(200, 450), u(6000, 8000), int(rng.integers(3, 7)), _peaks(rng, 3, 300, 5000, (8, 12), (0.3, 0.8)),
            u(-1.5, 1.5), u(-3, 3), u(-62, -54), (u(-40, -30), u(3.0, 5.0)) if rng.random() < 0.5 else None, u(3, 6),
        )
    assert tuple(devices) == DEVICES
    return devices


def capture(device: DeviceChannel, scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The scene as ``device`` records it (same length), clipped to the 24-bit range."""
    n = len(scene)
    size = scipy.fft.next_fast_len(n, real=True)
    # Self-noise: white at the channel's input (RMS = noise_dbfs), then shaped like the signal.
    noisy = scene.astype(np.float32) + rng.standard_normal(n, dtype=np.float32) * np.float32(10 ** (device.noise_dbfs / 20))
    y = scipy.fft.irfft(scipy.fft.rfft(noisy, size) * _response(device, size), size)[:n]
    if device.compression is not None:
        y = compress(y, *device.compression)
    if device.drive:
        y = np.tanh(device.drive * y) / device.drive
    return np.clip(y * 10 ** (device.gain_db / 20), -FULL_SCALE, FULL_SCALE)


@lru_cache(maxsize=64)
def _response(device: DeviceChannel, size: int) -> np.ndarray:
    return (10 ** (device.response_db(np.fft.rfftfreq(size, 1.0 / FS)) / 20)).astype(np.float32)


def compress(x: np.ndarray, threshold_db: float, ratio: float, frame: int = 441) -> np.ndarray:
    """A feed-forward compressor on 10-ms frame RMS, gain smoothed over ~50 ms."""
    frames = len(x) // frame + 1
    padded = np.zeros(frames * frame)
    padded[: len(x)] = x
    level = 10 * np.log10(np.mean(padded.reshape(frames, frame) ** 2, axis=1) + 1e-12)
    gain = -np.maximum(level - threshold_db, 0.0) * (1 - 1 / ratio)
    gain = np.convolve(gain, np.ones(5) / 5, mode="same")
    centres = (np.arange(frames) + 0.5) * frame
    return x * 10 ** (np.interp(np.arange(len(x)), centres, gain) / 20)
