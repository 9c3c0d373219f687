"""Scene classes as recipes, and the rendering of one recording: background + events + space.

A scene is coloured background noise with a class-specific spectral envelope and slow swells,
speech-shaped crowd babble, and events drawn from the class vocabulary at class rates, with
the events and crowd convolved with a room response (halls 0.8-2.2 s RT60, vehicles and
streets short). Neighbouring classes share most of their envelope and vocabulary (bus / tram /
metro; street_pedestrian / public_square; airport / shopping_mall), so they are told apart by
rates and by a few events whose shape, not average energy, is the cue; that is what makes
them confusable, as in TAU.

Each city shifts level, spectral tilt, reverberation and event rates a little, and each
location (never shared by training and test) perturbs the envelope and rates more, so a model
is always tested on places it has not heard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.signal import oaconvolve

from ascbench.data.layout import CITIES, SAMPLE_RATE as FS
from ascbench.data.synth.events import EVENTS, lowpass, place, smooth_random
from ascbench.data.synth.plan import CITY_STREAM, LOCATION_STREAM, RECORDING_STREAM, Recording

ANCHORS = np.array([31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000])
"""Octave centres (Hz) at which spectral envelopes are given, in dB."""
CROWD = (-30, -20, -8, -2, 0, -3, -8, -14, -22, -32)
"""Long-term spectrum of many talkers (dB at ANCHORS)."""
PREROLL = 1.0
"""Seconds rendered before the first captured second, so that it starts mid-scene (tails, ongoing events)."""
MARGIN = 0.25
"""Seconds of context kept on both sides of the captured span for the device filters."""


@dataclass(frozen=True)
class SceneRecipe:
    """How one scene class sounds. Levels of crowd, layers and events are dB re the background RMS."""

    level_db: float
    """Background RMS in dBFS at device a before city, location and recording variation."""
    background: tuple[float, ...]
    """Envelope at :data:`ANCHORS` (dB)."""
    swell: tuple[float, float]
    """(rate in Hz, depth in dB) of the slow modulation of the low band (< ~300 Hz)."""
    crowd_db: float
    rt60: tuple[float, float]
    wet_db: tuple[float, float]
    """Reverberant vs direct level of events (dB)."""
    layers: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Sources lasting the whole recording: name -> (probability, level low, level high)."""
    events: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Name -> (rate per minute, level low, level high)."""


_HALL = (-9, -5, -3, -2, 0, 0, -3, -8, -15, -26)
_VEHICLE = (0, 2, 1, -2, -4, -6, -9, -14, -21, -31)
_OUTDOOR = (-5, -3, -3, -4, -4, -5, -7, -11, -18, -28)

RECIPES: dict[str, SceneRecipe] = {
    "airport": SceneRecipe(
        -36, _HALL, (0.1, 2), -2, (1.2, 2.0), (-4, 2),
        layers={"music": (0.15, -14, -8)},
        events={"voice": (10, -6, 2), "footsteps": (8, -6, 2), "luggage": (8, -6, 3), "announcement": (3, -3, 4),
                "chime": (2.5, -8, 0)},
    ),
    "shopping_mall": SceneRecipe(
        -35, (-9, -5, -2, -1, 0, 0, -3, -8, -15, -26), (0.1, 2), 0, (0.9, 1.6), (-5, 1),
        layers={"music": (0.7, -12, -4)},
        events={"voice": (14, -6, 2), "footsteps": (10, -6, 2), "luggage": (2, -8, 0), "announcement": (0.5, -6, 2),
                "chime": (0.6, -10, -2)},
    ),
    "metro_station": SceneRecipe(
        -34, (-4, -2, -2, -3, -2, -3, -5, -10, -18, -28), (0.15, 3), -6, (1.2, 2.2), (-3, 3),
        events={"train_arrival": (2.5, 0, 8), "announcement": (2.5, -3, 4), "chime": (1, -8, 0), "footsteps": (8, -6, 2),
                "voice": (5, -8, 0), "squeal": (1, -8, 2), "rail_clatter": (1, -6, 2)},
    ),
    "metro": SceneRecipe(
        -28, (1, 3, 2, 0, -2, -4, -7, -12, -20, -30), (0.3, 7), -14, (0.3, 0.6), (-8, -3),
        layers={"whine": (0.8, -8, 0)},
        events={"rail_clatter": (8, -4, 4), "squeal": (2, -6, 4), "announcement": (1, -6, 2), "door_beep": (0.7, -6, 2),
                "voice": (3, -10, -2), "whine": (2, -6, 2)},
    ),
    "tram": SceneRecipe(
        -31, _VEHICLE, (0.25, 6), -12, (0.3, 0.5), (-8, -3),
        layers={"whine": (0.6, -10, -2)},
        events={"rail_clatter": (5, -6, 2), "squeal": (1.5, -6, 4), "door_beep": (1, -6, 2), "announcement": (1, -6, 2),
                "chime": (0.8, -8, 0), "voice": (4, -8, 0), "pass_by": (2, -10, -2), "whine": (1.5, -6, 2)},
    ),
    "bus": SceneRecipe(
        -31, (0, 2, 2, -1, -4, -6, -9, -14, -21, -31), (0.25, 6), -12, (0.25, 0.45), (-8, -3),
        layers={"diesel": (0.75, -6, 2), "whine": (0.2, -10, -2)},
        events={"door_beep": (1, -6, 2), "voice": (4, -8, 0), "squeal": (0.7, -8, 2), "pass_by": (2.5, -10, -2),
                "announcement": (0.5, -6, 2), "diesel": (1.5, -6, 2), "rail_clatter": (0.5, -10, -2)},
    ),
    "park": SceneRecipe(
        -44, (-8, -7, -8, -10, -12, -13, -14, -16, -22, -30), (0.1, 3), -18, (0.05, 0.15), (-15, -8),
        events={"bird": (14, -4, 8), "wind": (4, -4, 6), "voice": (2, -10, 0), "footsteps": (2, -10, -2),
                "pass_by": (0.5, -16, -8)},
    ),
    "public_square": SceneRecipe(
        -38, _OUTDOOR, (0.1, 3), -6, (0.3, 0.6), (-10, -4),
        events={"voice": (8, -6, 2), "footsteps": (8, -6, 2), "bird": (3, -8, 2), "wind": (2, -6, 4),
                "pass_by": (1.5, -10, -2), "music": (0.3, -10, -2), "luggage": (0.5, -10, -2)},
    ),
    "street_pedestrian": SceneRecipe(
        -36, _OUTDOOR, (0.15, 3), -5, (0.4, 0.8), (-10, -4),
        events={"voice": (10, -6, 2), "footsteps": (14, -4, 4), "pass_by": (3, -8, 0), "bird": (0.8, -10, 0),
                "wind": (1, -8, 2), "horn": (0.3, -6, 2), "luggage": (1, -10, -2)},
    ),
    "street_traffic": SceneRecipe(
        -30, (-2, 0, 0, -1, -2, -4, -6, -10, -17, -26), (0.2, 6), -15, (0.2, 0.5), (-12, -6),
        events={"pass_by": (16, -4, 6), "diesel": (2, -6, 2), "horn": (1, -4, 4), "squeal": (0.3, -10, 0),
                "footsteps": (1, -10, -2), "voice": (1, -10, -2), "wind": (1, -8, 2)},
    ),
}
"""Every scene class; keys are :data:`ascbench.data.layout.SCENES`."""


@dataclass(frozen=True)
class Place:
    """How a city, or a location within it, shifts a recipe."""

    level_db: float
    envelope_db: np.ndarray
    """Added to the recipe envelope at :data:`ANCHORS`."""
    rt60_scale: float
    rates: dict[str, float]
    """Event-rate multipliers by event name."""


def _place(rng: np.random.Generator, level: float, tilt: float, bumps: float, rt60: float, rates: float) -> Place:
    octaves = np.log2(ANCHORS / 1000.0)
    envelope = rng.normal(0, tilt) * octaves + rng.normal(0, bumps, len(ANCHORS))
    multipliers = {name: float(np.exp(rng.normal(0, rates))) for name in sorted(EVENTS)}
    return Place(float(rng.normal(0, level)), envelope, float(np.exp(rng.normal(0, rt60))), multipliers)


@lru_cache(maxsize=64)
def city(seed: int, name: str) -> Place:
    """A city: small shifts of level (±2 dB), tilt (±0.7 dB/octave), reverberation and rates."""
    return _place(np.random.default_rng([seed, CITY_STREAM, CITIES.index(name)]), 2.0, 0.7, 0.5, 0.1, 0.25)


@lru_cache(maxsize=4096)
def location(seed: int, name: str) -> Place:
    """A location: a bumpier envelope (±2 dB per octave), level, reverberation and rate shifts."""
    return _place(np.random.default_rng([seed, LOCATION_STREAM, int(name)]), 2.0, 0.3, 2.0, 0.15, 0.4)


def envelope_db(freqs: np.ndarray, anchors_db: np.ndarray) -> np.ndarray:
    """Interpolate an envelope given at :data:`ANCHORS` over ``freqs``, rolling off below 20 Hz and above 18 kHz."""
    log_f, rolloff = _grid(tuple(freqs)) if len(freqs) < 64 else _log_grid(freqs)
    return np.interp(log_f, np.log2(ANCHORS), anchors_db) - rolloff


def _log_grid(freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.maximum(freqs, 1.0)
    return np.log2(f), 40 * np.log10(np.maximum(20.0 / f, 1.0)) + 40 * np.log10(np.maximum(f / 18000.0, 1.0))


@lru_cache(maxsize=8)
def _grid(freqs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    return _log_grid(np.asarray(freqs))


@lru_cache(maxsize=8)
def _fft_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """log2 frequency and roll-off of an rfft of ``size`` samples (the few sizes used are reused)."""
    return _log_grid(np.fft.rfftfreq(size, 1.0 / FS))


def coloured_noise(rng: np.random.Generator, n: int, anchors_db: np.ndarray) -> np.ndarray:
    """Gaussian noise with the given spectral envelope, unit RMS, made in the frequency domain.

    float32 and a fast FFT length (then cut to ``n``): three times faster, and far below
    24-bit resolution in error.
    """
    size = scipy.fft.next_fast_len(n, real=True)
    bins = size // 2 + 1
    spectrum = np.empty(bins, np.complex64)
    spectrum.real = rng.standard_normal(bins, dtype=np.float32)
    spectrum.imag = rng.standard_normal(bins, dtype=np.float32)
    spectrum *= _amplitude(size, tuple(anchors_db))
    x = scipy.fft.irfft(spectrum, size)[:n]
    return x / np.sqrt(np.mean(x * x))


def _amplitude(size: int, anchors_db: tuple[float, ...]) -> np.ndarray:
    log_f, rolloff = _fft_grid(size)
    amplitude = (10 ** ((np.interp(log_f, np.log2(ANCHORS), anchors_db) - rolloff) / 20)).astype(np.float32)
    amplitude[0] = 0
    return amplitude


def room_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Exponentially decaying noise (highs decaying faster), unit energy, direct sound excluded."""
    n = int(min(1.2 * rt60, 2.5) * FS)
    t = np.arange(n) / FS
    noise = rng.standard_normal(n)
    low = lowpass(noise, 2000) * np.exp(-6.91 * t / rt60)
    high = (noise - lowpass(noise, 2000)) * np.exp(-6.91 * t / (0.6 * rt60))
    rir = (low + high) * np.minimum(t / 0.01, 1.0)  # a 10 ms gap before the reflections
    return rir / np.sqrt(np.sum(rir * rir))


def render_scene(recording: Recording, seed: int) -> np.ndarray:
    """The scene at device a's position, covering the captured span plus :data:`MARGIN` on both sides.

    Sample 0 is ``span[0] - MARGIN`` seconds into the recording.
    """
    recipe = RECIPES[recording.scene]
    here, there = city(seed, recording.city), location(seed, recording.location)
    rng = np.random.default_rng([seed, RECORDING_STREAM, recording.index])
    start, stop = recording.span
    n = int(round((stop - start + PREROLL + MARGIN) * FS))
    keep = int(round((stop - start + 2 * MARGIN) * FS))

    # Background: coloured noise whose low band swells (traffic, vehicle speed) more than its highs.
    anchors = np.asarray(recipe.background, float) + here.envelope_db + there.envelope_db + rng.normal(0, 1.0, len(ANCHORS))
    noise = coloured_noise(rng, n, anchors)
    low = lowpass(noise, 300)
    rate, depth = recipe.swell
    background = low * 10 ** (depth * smooth_random(rng, n, rate) / 20) + (noise - low) * 10 ** (
        depth / 3 * smooth_random(rng, n, rate) / 20
    )

    # Foreground: crowd babble, whole-recording layers and events, all in one reverberant track.
    track = np.zeros(n, np.float32)
    crowd_db = recipe.crowd_db + rng.normal(0, 2)
    crowd = coloured_noise(rng, n, np.asarray(CROWD, float)) * (1 + 0.3 * smooth_random(rng, n, 4.0))
    track += 10 ** (crowd_db / 20) * crowd
    for name, (probability, lo, hi) in recipe.layers.items():
        if rng.random() < probability:
            track += 10 ** (rng.uniform(lo, hi) / 20) * EVENTS[name](rng, n / FS)
    for name, (per_minute, lo, hi) in recipe.events.items():
        count = rng.poisson(per_minute * here.rates[name] * there.rates[name] * n / FS / 60)
        for _ in range(count):
            x = EVENTS[name](rng, 0.0)
            place(track, 10 ** (rng.uniform(lo, hi) / 20) * x, int(rng.integers(-len(x) // 2, n)))
    rt60 = rng.uniform(*recipe.rt60) * here.rt60_scale * there.rt60_scale
    wet = 10 ** (rng.uniform(*recipe.wet_db) / 20)
    track = track + wet * oaconvolve(track, room_response(rng, rt60).astype(np.float32))[:n]

    gain_db = recipe.level_db + here.level_db + there.level_db + rng.uniform(-3, 3)
    scene = (background + track) * 10 ** (gain_db / 20)
    return scene[n - keep :]
