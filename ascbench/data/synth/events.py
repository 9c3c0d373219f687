"""Sound events: short synthetic sources that give each scene class its time structure.

Each function draws one event from ``rng`` and returns its samples at 44.1 kHz, normalised to
unit RMS over the event (the scene decides its level). They are cheap caricatures of real
sources, chosen so that what separates scene classes is partly *when and how* energy appears
(a 2-Hz footstep pattern, a Doppler sweep, a chirp) and not only the average spectrum:
- voice: formant-filtered glottal pulse trains, syllable by syllable (talkers, announcements);
- footsteps: decaying noise impulses near 2 Hz; luggage: wheel clicks over tile joints;
- pass_by: band noise with a distance envelope and a Doppler-like engine sweep;
- diesel / whine: engine harmonics (20-60 Hz firing) vs electric inverter whine (300-1,000 Hz);
- squeal (2-5 kHz tones), chime, door_beep, horn, music, bird chirps, wind gusts, rail clatter,
  and train_arrival (a metro pulling into a station).
Several are shared between classes on purpose; see :mod:`ascbench.data.synth.scenes`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt

from ascbench.data.layout import SAMPLE_RATE as FS

CONTROL_RATE = 200.0
"""Hz: resolution of random envelopes."""

Event = Callable[[np.random.Generator, float], np.ndarray]
"""(rng, duration in seconds or 0 for the event's natural length) -> unit-RMS samples."""

VOWELS = np.array([(730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (660, 1720, 2410),
                   (300, 870, 2240), (570, 840, 2410), (440, 1020, 2240), (490, 1350, 1690)], dtype=float)
"""(F1, F2, F3) of English vowels (Peterson & Barney), the formants a syllable is filtered with."""


@lru_cache(maxsize=512)
def _sos(kind: str, low: float, high: float = 0.0, order: int = 2) -> np.ndarray:
    """Butterworth sections; frequencies are rounded by callers so that designs are reused."""
    edges = low if kind in ("lowpass", "highpass") else [low, high]
    return butter(order, edges, btype=kind, fs=FS, output="sos")


def band(x: np.ndarray, low: float, high: float, order: int = 2) -> np.ndarray:
    low, high = round(max(low, 10.0), -1), round(min(high, 0.45 * FS), -1)
    return sosfilt(_sos("bandpass", low, high, order), x)


def lowpass(x: np.ndarray, cutoff: float, order: int = 2) -> np.ndarray:
    return sosfilt(_sos("lowpass", round(cutoff, -1), 0.0, order), x)


def _unit(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(x * x))
    return x / rms if rms > 0 else x


def _n(seconds: float) -> int:
    return max(1, int(round(seconds * FS)))


def smooth_random(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """A random curve with about ``rate`` independent values per second, ~N(0, 1), smooth.

    Cosine interpolation (no kinks) on a 200-Hz grid, then linear up to the sample rate:
    an envelope needs no more, and the full-rate cosine would cost more than the event.
    """
    points = int(n / FS * rate) + 3
    values = rng.standard_normal(points)
    grid = int(n / FS * CONTROL_RATE) + 2
    x = np.linspace(0.0, points - 2.0, grid)
    i = x.astype(int)
    w = 0.5 - 0.5 * np.cos(np.pi * (x - i))
    curve = values[i] * (1 - w) + values[i + 1] * w
    return np.interp(np.linspace(0.0, grid - 1.0, n), np.arange(grid), curve)


def fade(n: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = min(_n(attack), n // 2), min(_n(release), n // 2)
    env[:a] = np.linspace(0, 1, a)
    env[n - r :] = np.linspace(1, 0, r)
    return env


@lru_cache(maxsize=64)
def _wavetable(harmonics: tuple[float, ...], size: int = 4096) -> np.ndarray:
    x = np.arange(size) / size
    return sum(a * np.sin(2 * np.pi * (k + 1) * x) for k, a in enumerate(harmonics))


def tone(freq: np.ndarray | float, n: int, harmonics: tuple[float, ...] = (1.0,), phase: float = 0.0) -> np.ndarray:
    """A harmonic tone following ``freq`` (Hz, scalar or per sample), by wavetable lookup."""
    f = np.broadcast_to(np.asarray(freq, dtype=float), (n,))
    cycles = phase + np.cumsum(f) / FS
    table = _wavetable(harmonics)
    return table[((cycles % 1.0) * len(table)).astype(np.int64)]


def pulses(f0: np.ndarray, rng: np.random.Generator, jitter: float = 0.1) -> np.ndarray:
    """An impulse train at instantaneous rate ``f0`` with random pulse amplitudes."""
    cycles = np.cumsum(f0) / FS
    where = np.flatnonzero(np.diff(np.floor(cycles), prepend=0.0) > 0)
    out = np.zeros(len(f0))
    out[where] = 1.0 + jitter * rng.standard_normal(len(where))
    return out


def decaying_noise(rng: np.random.Generator, seconds: float, tau: float) -> np.ndarray:
    n = _n(seconds)
    return rng.standard_normal(n) * np.exp(-np.arange(n) / (tau * FS))


def place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    """Add ``x`` into ``out`` at ``start`` (clipped at both ends)."""
    lo, hi = max(start, 0), min(start + len(x), len(out))
    if lo < hi:
        out[lo:hi] += x[lo - start : hi - start]


# --- events --------------------------------------------------------------------------------------


def voice(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A talker: syllables of formant-filtered pulses, some with a fricative onset."""
    n = _n(seconds or rng.uniform(1.0, 3.0))
    out = np.zeros(n)
    f0 = rng.uniform(90, 240)
    t = int(rng.uniform(0, 0.1) * FS)
    while t < n:
        length = _n(rng.uniform(0.12, 0.3))
        contour = np.linspace(f0 * rng.uniform(0.9, 1.15), f0 * rng.uniform(0.8, 1.05), length)
        source = pulses(contour, rng, 0.05)
        f1, f2, f3 = VOWELS[rng.integers(len(VOWELS))] * rng.uniform(0.9, 1.15)
        syllable = band(source, f1 * 0.8, f1 * 1.25) + 0.5 * band(source, f2 * 0.9, f2 * 1.1) + 0.25 * band(source, f3 * 0.93, f3 * 1.07)
        syllable *= np.hanning(length) ** 0.5
        if rng.random() < 0.35:
            burst = band(rng.standard_normal(_n(0.06)), 2500, 7000) * 0.3 * np.hanning(_n(0.06))
            place(out, burst, t)
            t += len(burst)
        place(out, syllable, t)
        t += length + (_n(rng.uniform(0.15, 0.5)) if rng.random() < 0.15 else _n(rng.uniform(0, 0.05)))
    return _unit(out)


def announcement(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A voice through a public-address system: telephone band, slightly overdriven."""
    x = band(voice(rng, seconds or rng.uniform(2.0, 4.5)), 300, 3400, order=3)
    return _unit(np.tanh(1.5 * x))


def footsteps(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """One walker: heel-toe impulses near 2 Hz, each a decaying noise burst shaped by the floor."""
    n = _n(seconds or rng.uniform(2.0, 5.0))
    rate, low, high, tau = rng.uniform(1.6, 2.4), rng.uniform(80, 400), rng.uniform(1500, 6000), rng.uniform(0.008, 0.025)
    out = np.zeros(n)
    t = rng.uniform(0, 0.3)
    while t * FS < n:
        place(out, decaying_noise(rng, 0.08, tau) * rng.uniform(0.6, 1.0), int(t * FS))
        place(out, 0.4 * decaying_noise(rng, 0.05, tau * 0.7), int((t + rng.uniform(0.06, 0.1)) * FS))
        t += rng.normal(1.0 / rate, 0.03 / rate)
    return _unit(band(out, low, high) * fade(n, 0.3, 0.3))


def luggage(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A wheeled suitcase or trolley: clicks over tile joints plus rolling noise, passing by."""
    n = _n(seconds or rng.uniform(2.0, 5.0))
    rate = rng.uniform(6.0, 14.0)
    clicks = pulses(np.full(n, rate) * (1 + 0.05 * smooth_random(rng, n, 2)), rng, 0.3)
    clicks = band(np.convolve(clicks, decaying_noise(rng, 0.01, 0.002))[:n], 1000, 6000)
    rolling = band(rng.standard_normal(n), 150, 1500)
    x = _unit(clicks) + 0.5 * _unit(rolling)
    return _unit(x * np.hanning(n) ** 0.5)


def pass_by(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A vehicle passing: tyre noise under a 1/distance envelope, brighter approaching, plus a Doppler-swept engine tone."""
    n = _n(seconds or rng.uniform(3.0, 7.0))
    t = (np.arange(n) - n / 2) / FS
    distance, speed = rng.uniform(3, 15), rng.uniform(8, 20)
    r = np.sqrt(distance**2 + (speed * t) ** 2)
    gain = distance / r
    noise = rng.standard_normal(n)
    bright, dull = band(noise, 300, 5000), lowpass(noise, 700)
    approach = 0.5 + 0.5 * np.tanh(-speed * t / distance)
    tyres = (approach * bright + (1 - approach) * dull) * gain
    radial = speed * (speed * t) / r  # positive when receding
    engine = tone(rng.uniform(60, 150) / (1 + radial / 343.0), n, (1.0, 0.6, 0.3)) * gain**1.3
    return _unit(_unit(tyres) + 10 ** (rng.uniform(-14, -4) / 20) * _unit(engine))


def diesel(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A diesel engine: firing pulses at 20-60 Hz through a resonant body, accelerating in ramps."""
    n = _n(seconds or rng.uniform(3.0, 8.0))
    idle = rng.uniform(20, 35)
    profile = np.ones(n)
    t = 0
    while t < n:  # idle, then ramps up (acceleration) with drops (gear changes)
        length = _n(rng.uniform(1.0, 3.5))
        top = rng.uniform(1.3, 2.0) if rng.random() < 0.6 else 1.0
        profile[t : t + length] = np.linspace(1.0, top, length)[: n - t]
        t += length
    f0 = idle * profile
    source = pulses(f0, rng, 0.2)
    body = lowpass(source, rng.uniform(300, 800)) + 0.5 * band(source, rng.uniform(60, 90), rng.uniform(150, 250))
    rumble = lowpass(rng.standard_normal(n), 400) * 0.3
    return _unit((_unit(body) + rumble) * profile**1.5)


def whine(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """An electric traction motor: inverter tones at 300-1,000 Hz rising and falling with speed."""
    n = _n(seconds or rng.uniform(3.0, 8.0))
    speed = np.clip(0.6 + 0.4 * smooth_random(rng, n, 0.4) + np.linspace(0, rng.uniform(-0.3, 0.3), n), 0.2, 1.4)
    base = rng.uniform(300, 1000)
    x = tone(base * speed, n, (1.0, 0.3)) + 0.5 * tone(base * 1.5 * speed, n, (1.0,))
    if rng.random() < 0.5:  # stepped PWM whine of older trains: a scale of discrete tones
        steps = np.floor(speed * 6) / 6
        x += 0.7 * tone(base * 0.5 * (1 + steps), n, (1.0, 0.5))
    return _unit(x * (0.4 + np.abs(np.gradient(speed)) * FS * 0.5 + 0.3 * speed))


def squeal(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """Brake or wheel squeal: a narrow 2-5 kHz tone with vibrato and flutter."""
    n = _n(seconds or rng.uniform(0.4, 2.5))
    f = rng.uniform(2000, 5000) * (1 + 0.003 * np.sin(2 * np.pi * rng.uniform(4, 9) * np.arange(n) / FS))
    flutter = np.clip(1 + 0.5 * smooth_random(rng, n, 8), 0.1, None)
    return _unit(tone(f, n, (1.0, 0.3)) * flutter * fade(n, 0.05, rng.uniform(0.05, 0.4)))


def chime(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A ding-dong before announcements: 2-4 bell notes with inharmonic partials."""
    base = rng.uniform(450, 900)
    intervals = rng.choice([1.0, 1.26, 1.5, 2.0, 0.75], size=rng.integers(2, 5))
    step, tau = rng.uniform(0.35, 0.6), rng.uniform(0.3, 0.8)
    n = _n(step * len(intervals) + 3 * tau)
    out = np.zeros(n)
    for i, ratio in enumerate(intervals):
        m = n - _n(step * i)
        note = tone(base * ratio, m, (1.0,)) + 0.4 * tone(base * ratio * 2.76, m, (1.0,)) + 0.2 * tone(base * ratio * 5.4, m, (1.0,))
        place(out, note * np.exp(-np.arange(m) / (tau * FS)), _n(step * i))
    return _unit(out)


def door_beep(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """Door-closing beeps (square-ish tone on/off), often followed by a pneumatic hiss."""
    f, on, count = rng.uniform(1000, 3000), rng.uniform(0.12, 0.25), int(rng.integers(3, 7))
    n = _n(2 * on * count + 1.2)
    out = np.zeros(n)
    beep = tone(f, _n(on), (1.0, 0.0, 0.33, 0.0, 0.2)) * fade(_n(on), 0.005, 0.005)
    for i in range(count):
        place(out, beep, _n(2 * on * i))
    if rng.random() < 0.6:
        place(out, 0.5 * band(decaying_noise(rng, 1.0, 0.3), 2000, 8000), _n(2 * on * count))
    return _unit(out)


def horn(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A car horn: two close harmonic-rich tones."""
    n = _n(seconds or rng.uniform(0.2, 1.0))
    f = rng.uniform(350, 500)
    rich = (1.0, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1)
    return _unit((tone(f, n, rich) + tone(f * 1.25, n, rich)) * fade(n, 0.01, 0.03))


def music(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """Background music through ceiling speakers: chords changing on a beat, band-limited."""
    n = _n(seconds or rng.uniform(4.0, 10.0))
    root = rng.uniform(130, 260)
    beat = rng.uniform(0.4, 0.9)
    scale = np.array([1, 9 / 8, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 15 / 8, 2])
    freq = np.zeros((3, n))
    for start in range(0, n, _n(beat)):
        chord = rng.choice(len(scale), 3, replace=False)
        freq[:, start : start + _n(beat)] = (root * scale[chord])[:, None]
    pulse = 0.6 + 0.4 * np.exp(-(np.arange(n) % _n(beat)) / (0.15 * FS))
    x = sum(tone(freq[i], n, (1.0, 0.5, 0.25)) for i in range(3)) * pulse
    if rng.random() < 0.5:  # a drum beat
        kick = band(decaying_noise(rng, 0.1, 0.03), 40, 200)
        for start in range(0, n, _n(beat)):
            place(x, 3 * kick, start)
    return _unit(band(x, 150, 6000) * fade(n, 0.5, 0.5))


def bird(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A bird song: a few fast frequency sweeps (chirps) or a trill, 2-7 kHz."""
    notes, trill = int(rng.integers(3, 11)), rng.random() < 0.3
    f, ratio = rng.uniform(2500, 6000), rng.uniform(0.6, 1.6)
    parts = []
    for _ in range(notes):
        m = _n(rng.uniform(0.015, 0.03) if trill else rng.uniform(0.04, 0.15))
        sweep = np.geomspace(f, f * ratio, m) * rng.uniform(0.95, 1.05)
        parts.append(tone(sweep, m, (1.0, 0.25)) * np.hanning(m))
        parts.append(np.zeros(_n(rng.uniform(0.02, 0.05) if trill else rng.uniform(0.03, 0.15))))
    return _unit(np.concatenate(parts))


def wind(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A wind gust on the microphone: turbulent low-frequency noise with a slow swell, plus leaf rustle."""
    n = _n(seconds or rng.uniform(1.0, 4.0))
    turbulence = np.abs(1 + smooth_random(rng, n, rng.uniform(5, 15)))
    rumble = lowpass(rng.standard_normal(n), rng.uniform(100, 400)) * turbulence
    rustle = band(rng.standard_normal(n), 1500, 7000) * np.abs(smooth_random(rng, n, 20))
    return _unit((_unit(rumble) + rng.uniform(0.05, 0.4) * _unit(rustle)) * np.hanning(n))


def rail_clatter(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """Wheels over rail joints: pairs of double thumps (two axles, two bogies) every rail length."""
    n = _n(seconds or rng.uniform(2.0, 6.0))
    period, axle, bogie = rng.uniform(0.6, 1.5), rng.uniform(0.08, 0.2), rng.uniform(0.4, 0.8)
    out = np.zeros(n)
    t = rng.uniform(0, period)
    while t * FS < n:
        for offset in (0.0, axle, bogie, bogie + axle):
            thump = lowpass(decaying_noise(rng, 0.12, rng.uniform(0.02, 0.04)), 1500)
            ring = 0.3 * band(decaying_noise(rng, 0.05, 0.01), 1000, 3000)
            thump[: len(ring)] += ring
            place(out, thump * rng.uniform(0.7, 1.0), int((t + offset) * FS))
        t += period * rng.uniform(0.95, 1.05)
    return _unit(out)


def train_arrival(rng: np.random.Generator, seconds: float = 0.0) -> np.ndarray:
    """A metro pulling in: swelling rumble, a falling whine, slowing clatter, often a squeal."""
    n = _n(seconds or rng.uniform(6.0, 12.0))
    swell = np.minimum(np.linspace(0, 1.6, n), 1.0) ** 2 * np.linspace(1, 0.5, n)
    rumble = lowpass(band(rng.standard_normal(n), 40, 2000), 800) * swell
    falling = tone(rng.uniform(400, 900) * np.linspace(1.0, 0.4, n), n, (1.0, 0.3)) * swell
    x = _unit(rumble) + 0.3 * _unit(falling) + 0.5 * rail_clatter(rng, n / FS) * swell
    if rng.random() < 0.7:
        s = squeal(rng)
        place(x, 0.8 * s, n - len(s) - _n(0.3))
    return _unit(x)


EVENTS: dict[str, Event] = {
    f.__name__: f
    for f in (voice, announcement, footsteps, luggage, pass_by, diesel, whine, squeal, chime, door_beep,
              horn, music, bird, wind, rail_clatter, train_arrival)
}
"""Every event type by name; scene recipes refer to these names."""
