"""The TAU Urban Acoustic Scenes 2022 Mobile layout: names, labels, devices, splits.

Everything that knows what a TAU22 file name or split file looks like lives here, so that the
reader, the validator and the synthetic generator cannot disagree about the format.

A clip file is ``audio/<scene>-<city>-<location>-<segment>-<n>-<device>.wav``: a 1-second
segment ``n`` (0-9) of a 10-second recording. ``<city>-<location>`` is the ``identifier`` column
of ``meta.csv``; ``<city>-<location>-<segment>`` identifies the recording, which must never be
split between training and test (parallel recordings by several devices share it).
"""

from __future__ import annotations

from dataclasses import dataclass

SCENES: tuple[str, ...] = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
"""Scene labels; this order is the class index."""

SCENE_INDEX: dict[str, int] = {s: i for i, s in enumerate(SCENES)}

DEVICES: tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
SEEN_DEVICES: tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3")
"""Devices present in training (real a, b, c; simulated s1-s3)."""
UNSEEN_DEVICES: tuple[str, ...] = ("s4", "s5", "s6")
"""Simulated devices that never appear in any training split, only in test."""

CITIES: tuple[str, ...] = (
    "amsterdam",
    "barcelona",
    "helsinki",
    "lisbon",
    "london",
    "lyon",
    "madrid",
    "milan",
    "paris",
    "prague",
    "stockholm",
    "vienna",
)

SAMPLE_RATE = 44_100
CLIP_SECONDS = 1.0
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)
SEGMENTS_PER_RECORDING = 10
REAL_CLIP_COUNT = 230_350

META_FILE = "meta.csv"
TEST_FILE = "test.csv"
SPLIT_DIR = "split_setup"
META_HEADER: tuple[str, ...] = ("filename", "scene_label", "identifier", "source_label")
SPLIT_HEADER: tuple[str, ...] = ("filename", "scene_label")

FRACTION_SPLITS: dict[float, str] = {
    0.05: "split5.csv",
    0.1: "split10.csv",
    0.25: "split25.csv",
    0.5: "split50.csv",
    1.0: "split100.csv",
}
"""Training fraction -> official split file; the files are nested (split5 is in split10 ...)."""
SPLIT_FILES: tuple[str, ...] = tuple(FRACTION_SPLITS.values())


def parse_fraction(value: str | float) -> float:
    """Turn a user's ``--fraction`` (0.25, "25", "25%") into one of the five official fractions.

    Anything else is rejected with a message that lists the valid values, because a silently
    rounded fraction would make results incomparable with everyone else's.
    """
    valid = "0.05, 0.1, 0.25, 0.5, 1.0 (or 5, 10, 25, 50, 100, with or without %)"
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text.removesuffix("%"))
    except ValueError:
        raise ValueError(f"invalid fraction {value!r}: expected one of {valid}") from None
    if percent or number > 1.0:  # "1%" is one percent (an error), never the 100 % split
        number = number / 100.0
    for fraction in FRACTION_SPLITS:
        if abs(number - fraction) < 1e-9:
            return fraction
    raise ValueError(f"invalid fraction {value!r}: expected one of {valid}")


def fraction_percent(fraction: float) -> int:
    """0.25 -> 25, the number used in split file names and leaderboard columns."""
    return int(round(parse_fraction(fraction) * 100))


@dataclass(frozen=True)
class ClipName:
    """The parts of a TAU22 clip file name."""

    scene: str
    city: str
    location: str
    segment: str
    index: int
    device: str

    @property
    def identifier(self) -> str:
        """``<city>-<location>``: the ``identifier`` column of ``meta.csv``."""
        return f"{self.city}-{self.location}"

    @property
    def recording_id(self) -> str:
        """``<city>-<location>-<segment>``: one 10-s recording, shared by parallel devices."""
        return f"{self.city}-{self.location}-{self.segment}"

    @property
    def filename(self) -> str:
        """The path relative to the data set root, as written in the csv files."""
        return f"audio/{self.scene}-{self.city}-{self.location}-{self.segment}-{self.index}-{self.device}.wav"

    @classmethod
    def parse(cls, filename: str) -> "ClipName":
        """Parse ``audio/<scene>-<city>-<location>-<segment>-<n>-<device>.wav``.

        Raises ``ValueError`` saying which part is wrong and what was expected.
        """
        name = filename
        if not name.startswith("audio/"):
            raise ValueError(f"{filename!r}: expected a path starting with 'audio/'")
        name = name[len("audio/") :]
        if not name.endswith(".wav"):
            raise ValueError(f"{filename!r}: expected a '.wav' file")
        parts = name[: -len(".wav")].split("-")
        if len(parts) != 6:
            raise ValueError(
                f"{filename!r}: expected '<scene>-<city>-<location>-<segment>-<n>-<device>.wav' "
                f"(6 fields separated by '-'), found {len(parts)}"
            )
        scene, city, location, segment, index, device = parts
        if scene not in SCENE_INDEX:
            raise ValueError(f"{filename!r}: unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
        if device not in DEVICES:
            raise ValueError(f"{filename!r}: unknown device {device!r}; expected one of {', '.join(DEVICES)}")
        if not index.isdigit() or not 0 <= int(index) < SEGMENTS_PER_RECORDING:
            raise ValueError(f"{filename!r}: segment index {index!r} is not 0-9")
        if not city or not location or not segment:
            raise ValueError(f"{filename!r}: empty city, location or segment field")
        return cls(scene, city, location, segment, int(index), device)
