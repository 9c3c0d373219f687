"""Which recordings exist, which devices captured which seconds of them, and the splits.

The plan is cheap (no audio) and fully decided by the config, so the main process can write the
csv files while workers render audio, and a test can check the layout without rendering.
Locations are never shared between training and test (as in TAU), so a model is always tested
on places it has not heard; cities appear on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ascbench.data.layout import CITIES, DEVICES, SCENES, SEGMENTS_PER_RECORDING, SPLIT_FILES, ClipName
from ascbench.data.synth.config import SynthConfig

PARALLEL_DEVICES: tuple[str, ...] = ("b", "c", "s1", "s2", "s3")
"""Training devices other than a: each captures a few of device a's recordings in parallel."""
SPLIT_FRACTIONS: dict[str, float] = dict(zip(SPLIT_FILES, (0.05, 0.10, 0.25, 0.50, 1.0)))

# Stream numbers for np.random.default_rng([seed, stream, ...]): one independent stream per purpose.
PLAN_STREAM, CITY_STREAM, LOCATION_STREAM, RECORDING_STREAM, DEVICE_STREAM, CAPTURE_STREAM = range(6)


@dataclass(frozen=True)
class Recording:
    """One 10-s recording: where it was made and which device captured which segments."""

    index: int
    """Position in the plan; with the seed it seeds everything rendered for this recording."""
    scene: str
    city: str
    location: str
    segment: str
    test: bool
    captures: tuple[tuple[str, tuple[int, ...]], ...]
    """(device, segment indices 0-9) pairs; device a first."""

    @property
    def span(self) -> tuple[int, int]:
        """First and one-past-last second any device captured: the part that must be rendered."""
        seconds = [n for _, segments in self.captures for n in segments]
        return min(seconds), max(seconds) + 1

    def clips(self) -> list[ClipName]:
        return [
            ClipName(self.scene, self.city, self.location, self.segment, n, device)
            for device, segments in self.captures
            for n in segments
        ]


@dataclass(frozen=True)
class Plan:
    recordings: tuple[Recording, ...]
    splits: dict[str, tuple[str, ...]]
    """split5.csv ... split100.csv -> file names (sorted)."""
    test: tuple[str, ...]

    def clips(self) -> list[ClipName]:
        """Every clip, sorted by file name (meta.csv order)."""
        return sorted((c for r in self.recordings for c in r.clips()), key=lambda c: c.filename)


def make_plan(config: SynthConfig) -> Plan:
    rng = np.random.default_rng([config.seed, PLAN_STREAM])
    per_scene = config.train_recordings + config.test_recordings
    total = len(SCENES) * per_scene
    # Unique, realistic-looking ids: TAU locations are 3-digit, segments 3-5 digit numbers.
    locations = iter(rng.choice(np.arange(100, 100 + 4 * total), size=total, replace=False).tolist())
    segments = iter(rng.choice(np.arange(1000, 1000 + 8 * total), size=total, replace=False).tolist())

    recordings: list[Recording] = []
    for scene in SCENES:
        for test, count in ((False, config.train_recordings), (True, config.test_recordings)):
            places = _places(rng, count, config.locations_per_recording, locations)
            captures = _captures(rng, config, count, test)
            for place, capture in zip(places, captures):
                city, location = place
                recordings.append(
                    Recording(len(recordings), scene, city, location, str(next(segments)), test, capture)
                )
    train = sorted((c for r in recordings if not r.test for c in r.clips()), key=lambda c: c.filename)
    test_clips = sorted(c.filename for r in recordings if r.test for c in r.clips())
    return Plan(tuple(recordings), _nested_splits(rng, train), tuple(test_clips))


def _places(rng: np.random.Generator, count: int, per_recording: float, ids) -> list[tuple[str, str]]:
    """(city, location) of ``count`` recordings: a few locations, each in a random city, shared by recordings."""
    n_places = max(1, int(round(count * per_recording)))
    cities = rng.permutation(len(CITIES))
    places = [(CITIES[cities[i % len(CITIES)]], str(next(ids))) for i in range(n_places)]
    return [places[i % n_places] for i in rng.permutation(count)]


def _captures(rng: np.random.Generator, config: SynthConfig, count: int, test: bool) -> list[tuple]:
    """Per recording: (device, segments) pairs. Parallel devices record at the same time as device a."""
    if test:
        result = []
        for _ in range(count):
            start = int(rng.integers(0, SEGMENTS_PER_RECORDING - config.test_segments + 1))
            window = tuple(range(start, start + config.test_segments))
            result.append(tuple((device, window) for device in DEVICES))
        return result
    captures: list[list] = []
    for _ in range(count):
        start = int(rng.integers(0, SEGMENTS_PER_RECORDING - config.train_segments + 1))
        captures.append([("a", tuple(range(start, start + config.train_segments)))])
    for device in PARALLEL_DEVICES:
        for i in rng.choice(count, size=config.parallel_recordings, replace=False):
            a_segments = captures[i][0][1]
            offset = int(rng.integers(0, len(a_segments) - config.parallel_segments + 1))
            captures[i].append((device, a_segments[offset : offset + config.parallel_segments]))
    return [tuple(c) for c in captures]


def _nested_splits(rng: np.random.Generator, train: list[ClipName]) -> dict[str, tuple[str, ...]]:
    """split5 ⊂ split10 ⊂ ... ⊂ split100: prefixes of one random order within each (scene, device).

    Taking the same share of every (scene, device) stratum keeps the class and device
    proportions of the training pool in every split (as the official splits do); at least one
    clip per stratum keeps every class and training device in split5.
    """
    strata: dict[tuple[str, str], list[str]] = {}
    for clip in train:
        strata.setdefault((clip.scene, clip.device), []).append(clip.filename)
    order = {key: [names[i] for i in rng.permutation(len(names))] for key, names in sorted(strata.items())}
    return {
        name: tuple(sorted(f for names in order.values() for f in names[: max(1, round(share * len(names)))]))
        for name, share in SPLIT_FRACTIONS.items()
    }
