"""Small TAU22-layout directories in the exact real format, and precise ways to break them.

The fixture mirrors the DCASE 2024 Task 1 development set in everything but size: 24-bit PCM,
44.1 kHz, mono, 1-s wavs named ``audio/<scene>-<city>-<location>-<segment>-<n>-<device>.wav``,
tab-separated ``meta.csv`` with the real header, ``split_setup/split{5,10,25,50,100}.csv`` and
``test.csv``. Per scene it holds

* a training recording captured in parallel by a, b, c, s1, s2, s3 (segment 0),
* a second training recording by device a only (segments 0 and 1),
* a test recording by device a and two more devices, rotating so that all nine devices are in
  test.csv (segment 0),
* one device-a clip of a third recording in neither split nor test (the unused part of the
  real meta.csv),

so 12 clips per scene, 120 in all. split100 holds the 8 training clips of each scene, split50 4,
split25 2, split10 1 and split5 one for every other scene: nested and of distinct sizes.

Each ``break_*``-style helper makes exactly one thing wrong and returns where a validator must
point: ``(path relative to the root, line or None)``. Clones share audio with their source by
hard links, so every helper replaces files instead of writing into them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ascbench.data.layout import (
    CITIES,
    CLIP_SAMPLES,
    DEVICES,
    META_FILE,
    META_HEADER,
    SAMPLE_RATE,
    SCENES,
    SPLIT_DIR,
    SPLIT_FILES,
    SPLIT_HEADER,
    TEST_FILE,
    ClipName,
)

TRAIN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")
OTHER_DEVICES = DEVICES[1:]
SPLIT_SHARE = {"split100.csv": 8, "split50.csv": 4, "split25.csv": 2, "split10.csv": 1}
"""Training clips per scene in each split; split5 takes one clip of every other scene."""


@dataclass
class TauFixture:
    """A built fixture directory and what was written into it."""

    root: Path
    meta: list[ClipName]
    """In meta.csv order."""
    splits: dict[str, list[str]]
    test: list[str]
    unused: list[str]
    """Clips in meta.csv but in no split and not in test.csv."""
    listing_dir: str = SPLIT_DIR

    def listing(self, name: str) -> str:
        """Path (relative to the root) of ``split5.csv`` ... ``test.csv``."""
        return f"{self.listing_dir}/{name}" if self.listing_dir else name

    def line_of(self, relative: str, filename: str) -> int:
        """1-based line of the first row naming ``filename`` in a csv file."""
        for number, line in enumerate(self._lines(relative), start=1):
            if line.split("\t")[0] == filename:
                return number
        raise KeyError(f"{filename} not in {relative}")

    def clip(self, filename: str) -> ClipName:
        return ClipName.parse(filename)

    def _lines(self, relative: str) -> list[str]:
        return (self.root / relative).read_text(encoding="utf-8").splitlines()


def build_tau_fixture(
    root: Path,
    *,
    split_setup: bool = True,
    synth_info: dict | None = None,
    seed: int = 0,
) -> TauFixture:
    """Write the fixture into ``root`` (created); ``split_setup=False`` puts split files beside meta.csv."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    base = np.clip(rng.normal(0.0, 0.1, CLIP_SAMPLES * 2), -1.0, 1.0)

    meta: list[ClipName] = []
    training: dict[str, list[str]] = {}
    test: list[str] = []
    unused: list[str] = []
    for index, scene in enumerate(SCENES):
        city = CITIES[index % len(CITIES)]
        location = str(100 + 7 * index)
        first = [ClipName(scene, city, location, str(6000 + 10 * index), 0, device) for device in TRAIN_DEVICES]
        second = [ClipName(scene, city, str(int(location) + 1), str(7000 + 10 * index), n, "a") for n in (0, 1)]
        test_devices = ("a", OTHER_DEVICES[(2 * index) % 8], OTHER_DEVICES[(2 * index + 1) % 8])
        test_city = CITIES[(index + 5) % len(CITIES)]
        tested = [ClipName(scene, test_city, str(400 + index), str(8000 + 10 * index), 0, d) for d in test_devices]
        spare = ClipName(scene, city, str(int(location) + 2), str(9000 + 10 * index), 0, "a")
        # the order in which clips join larger splits: device a first, as in the real splits
        order = [first[0], second[0], first[1], first[3], second[1], first[2], first[4], first[5]]
        training[scene] = [clip.filename for clip in order]
        test += [clip.filename for clip in tested]
        unused.append(spare.filename)
        meta += first + second + tested + [spare]

    meta.sort(key=lambda clip: clip.filename)
    for number, clip in enumerate(meta):
        write_clip(root, clip.filename, np.roll(base, 977 * number)[:CLIP_SAMPLES])

    splits = {name: [f for scene in SCENES for f in training[scene][:share]] for name, share in SPLIT_SHARE.items()}
    splits["split5.csv"] = [training[scene][0] for scene in SCENES[::2]]
    rank = {clip.filename: i for i, clip in enumerate(meta)}
    splits = {name: sorted(files, key=rank.__getitem__) for name, files in splits.items()}
    test.sort(key=rank.__getitem__)

    fixture = TauFixture(root, meta, splits, test, unused, listing_dir=SPLIT_DIR if split_setup else "")
    _write_rows(root / META_FILE, META_HEADER, [_meta_row(clip) for clip in meta])
    scene_of = {clip.filename: clip.scene for clip in meta}
    for name in SPLIT_FILES:
        _write_rows(root / fixture.listing(name), SPLIT_HEADER, [(f, scene_of[f]) for f in splits[name]])
    _write_rows(root / fixture.listing(TEST_FILE), SPLIT_HEADER, [(f, scene_of[f]) for f in test])
    if synth_info is not None:
        (root / "synth_info.json").write_text(json.dumps(synth_info), encoding="utf-8")
    return fixture


def clone_fixture(fixture: TauFixture, root: Path) -> TauFixture:
    """Copy a fixture cheaply: csv files are copied, wavs hard-linked (so never write into a wav)."""

    def link_or_copy(source: str, target: str) -> None:
        if source.endswith(".wav"):
            try:
                os.link(source, target)
                return
            except OSError:
                pass
        shutil.copy2(source, target)

    shutil.copytree(fixture.root, root, copy_function=link_or_copy)
    return TauFixture(
        root,
        list(fixture.meta),
        {name: list(files) for name, files in fixture.splits.items()},
        list(fixture.test),
        list(fixture.unused),
        fixture.listing_dir,
    )


def write_clip(
    root: Path,
    filename: str,
    samples: np.ndarray | None = None,
    *,
    samplerate: int = SAMPLE_RATE,
    subtype: str = "PCM_24",
) -> Path:
    """Write a wav as the real data has it (24-bit PCM), replacing any file (or hard link) there."""
    if samples is None:
        samples = np.zeros(CLIP_SAMPLES)
    path = root / filename
    path.unlink(missing_ok=True)
    sf.write(str(path), samples, samplerate, subtype=subtype, format="WAV")
    return path


# --- one thing wrong at a time ------------------------------------------------------------------


def remove_audio(fixture: TauFixture, filename: str) -> tuple[str, int]:
    """Delete a clip's wav; the validator must point at its meta.csv line."""
    (fixture.root / filename).unlink()
    return META_FILE, fixture.line_of(META_FILE, filename)


def add_extra_audio(fixture: TauFixture, filename: str = "audio/airport-lisbon-999-99999-0-a.wav") -> tuple[str, None]:
    """A wav that meta.csv does not list."""
    write_clip(fixture.root, filename)
    return filename, None


def set_header(fixture: TauFixture, relative: str, header: str) -> tuple[str, int]:
    lines = fixture._lines(relative)
    lines[0] = header
    _replace_text(fixture.root / relative, lines)
    return relative, 1


def set_field(fixture: TauFixture, relative: str, filename: str, column: str, value: str) -> tuple[str, int]:
    """Change one column of the row naming ``filename``."""
    lines = fixture._lines(relative)
    header = lines[0].split("\t")
    number = fixture.line_of(relative, filename)
    fields = lines[number - 1].split("\t")
    fields[header.index(column)] = value
    lines[number - 1] = "\t".join(fields)
    _replace_text(fixture.root / relative, lines)
    return relative, number


def replace_line(fixture: TauFixture, relative: str, number: int, text: str) -> tuple[str, int]:
    lines = fixture._lines(relative)
    lines[number - 1] = text
    _replace_text(fixture.root / relative, lines)
    return relative, number


def append_row(fixture: TauFixture, relative: str, fields: Sequence[str]) -> tuple[str, int]:
    lines = fixture._lines(relative) + ["\t".join(fields)]
    _replace_text(fixture.root / relative, lines)
    return relative, len(lines)


def remove_row(fixture: TauFixture, relative: str, filename: str) -> None:
    lines = fixture._lines(relative)
    del lines[fixture.line_of(relative, filename) - 1]
    _replace_text(fixture.root / relative, lines)


def add_clip(fixture: TauFixture, clip: ClipName, listings: Sequence[str] = ()) -> dict[str, int]:
    """A new clip with its wav and meta.csv row, also appended to ``listings``; returns its line per file."""
    write_clip(fixture.root, clip.filename)
    lines = {META_FILE: append_row(fixture, META_FILE, _meta_row(clip))[1]}
    for name in listings:
        relative = fixture.listing(name)
        lines[relative] = append_row(fixture, relative, (clip.filename, clip.scene))[1]
    return lines


def corrupt_wav(fixture: TauFixture, filename: str) -> tuple[str, None]:
    """Replace a wav by bytes no audio library can read."""
    path = fixture.root / filename
    path.unlink()
    path.write_bytes(b"RIFF\x00\x00\x00\x00this is not audio" * 4)
    return filename, None


def _meta_row(clip: ClipName) -> tuple[str, str, str, str]:
    return (clip.filename, clip.scene, clip.identifier, clip.device)


def _write_rows(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_text(path, ["\t".join(header), *("\t".join(row) for row in rows)])


def _replace_text(path: Path, lines: Sequence[str]) -> None:
    """Write a new file in place of the old one (never through a shared hard link)."""
    path.unlink(missing_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
