"""Validate a TAU22-layout directory completely: every csv problem plus every audio file's header.

:func:`ascbench.data.reader.load_dataset` stops at the first problem; this module keeps going and
reports all of them, because someone fixing a download or a generator wants the whole list at
once. It also summarises what is there (clips per split, device and class, and on request the
digest of the audio bytes), which is the quickest way to see that a data set is the one you
think it is.

Samples are decoded only from float wavs: they are the only ones that can hold NaN or inf, which
would otherwise pass here and fail a run much later without naming the file. Integer PCM, the
real data's format, is never decoded, so the check stays a header read on TAU.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ascbench.data.content import files_digest
from ascbench.data.fingerprint import AUDIO_DIR
from ascbench.data.layout import CLIP_SAMPLES, DEVICES, META_FILE, SAMPLE_RATE, SCENES
from ascbench.data.reader import LISTING_FILES, Problem, Tables, dataset_name, fingerprint, read_tables

__all__ = ["CheckReport", "Problem", "audio_problems", "check_dataset"]

FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
"""The wav sample formats that can hold NaN or inf (as in :mod:`ascbench.features.audio`, which is
not imported for it: it would pull torch into ``ascbench data check``)."""

HEADER_CHUNK = 256
"""Audio files per thread-pool task: large enough to keep scheduling overhead small on 230k files."""


@dataclass(frozen=True)
class CheckReport:
    """Everything ``ascbench data check`` found: the problems and a summary of the content.

    The summary counts only rows without problems, so it shows what a run would actually use.
    """

    root: Path
    name: str
    fingerprint: str
    problems: list[Problem]
    by_device: pd.DataFrame
    """Clips per device (rows, in :data:`DEVICES` order) and file (columns: meta.csv, split5.csv ... test.csv)."""
    by_class: pd.DataFrame
    """Clips per scene (rows, in class-index order) and file."""
    recordings: dict[str, int]
    """Distinct recordings (``<city>-<location>-<segment>``) per file."""
    audio_checked: bool
    audio_digest: str = ""
    """:func:`ascbench.data.content.audio_digest` of the clips of meta.csv; "" when not asked for,
    the audio was not checked or a listed file is missing."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def clips(self) -> dict[str, int]:
        """Clips per file."""
        return {name: int(count) for name, count in self.by_device.sum().items()}


def check_dataset(
    root: Path | str,
    progress: bool = True,
    audio: bool = True,
    digest: bool = False,
    home: Path | str | None = None,
) -> CheckReport:
    """Check the csv files and (unless ``audio=False``) every audio file of a TAU22-layout directory.

    Audio is only checked when meta.csv could be read: without it there is nothing to compare the
    ``audio/`` directory against. ``digest`` also hashes the audio (the first time reads every
    byte; later calls re-hash only changed files, through the index in ``home``), so that two
    copies can be compared by more than the fingerprint, which sees names and sizes only. Over a
    clean data set it equals ``audio_digest(load_dataset(root))``.
    """
    root = Path(root).expanduser().resolve()
    tables = read_tables(root)
    problems = list(tables.problems)
    audio_checked = audio and tables.meta is not None
    if audio_checked:
        problems += audio_problems(root, tables.meta_names, progress=progress)
    problems = _in_file_order(problems, tables)
    by_device, by_class, recordings = _summary(tables)
    clip_count = 0 if tables.meta is None else len(tables.meta)
    content = ""
    if digest and audio_checked:
        try:
            content = files_digest(root, tables.meta_names.drop_duplicates().tolist(), home=home, progress=progress)
        except FileNotFoundError:
            pass  # reported above as a missing audio file
    return CheckReport(
        root=root,
        name=dataset_name(root, clip_count, tables.info),
        fingerprint=fingerprint(root) if root.is_dir() else "",
        problems=problems,
        by_device=by_device,
        by_class=by_class,
        recordings=recordings,
        audio_checked=audio_checked,
        audio_digest=content,
    )


def audio_problems(root: Path, meta_names: pd.Series, progress: bool = True) -> list[Problem]:
    """Missing and extra audio files, every wav whose header is not 44.1 kHz mono 1 s, and every
    float wav holding NaN or inf samples.

    ``meta_names`` are meta.csv's file names indexed by line, so a missing file is reported on the
    meta.csv line that lists it. Headers are read with ``soundfile.info`` (samples are decoded
    from float wavs only) in a thread pool, since libsndfile releases the GIL and a cold disk is
    the bottleneck.
    """
    directory = root / AUDIO_DIR
    if not directory.is_dir():
        return [Problem(f"{AUDIO_DIR}/", None, f"missing directory; expected the {len(meta_names):,} clips listed in {META_FILE}")]
    with os.scandir(directory) as entries:
        present = {entry.name for entry in entries}

    prefix = f"{AUDIO_DIR}/"
    listed = meta_names[meta_names.str.startswith(prefix)]  # any other name is already reported as unparseable
    basenames = listed.str.slice(len(prefix))
    missing = ~basenames.isin(present)
    problems = [
        Problem(META_FILE, int(line), f"{name}: audio file missing")
        for line, name in listed[missing].items()
    ]
    problems += [
        Problem(f"{prefix}{name}", None, f"not listed in {META_FILE}")
        for name in sorted(present - set(basenames))
    ]

    to_read = listed[~missing].drop_duplicates().tolist()
    chunks = [to_read[i : i + HEADER_CHUNK] for i in range(0, len(to_read), HEADER_CHUNK)]
    with _progress(progress) as bar, ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        task = bar.add_task("reading wav headers", total=len(to_read))
        for chunk, found in zip(chunks, pool.map(lambda chunk: _header_problems(root, chunk), chunks)):
            problems += found
            bar.advance(task, len(chunk))
    return problems


def _header_problems(root: Path, filenames: list[str]) -> list[Problem]:
    problems = []
    for filename in filenames:
        try:
            info = sf.info(str(root / filename))
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            problems.append(Problem(filename, None, f"unreadable wav: {error}"))
            continue
        if info.format != "WAV":
            problems.append(Problem(filename, None, f"not a WAV file (found {info.format}); expected WAV"))
        if info.samplerate != SAMPLE_RATE:
            problems.append(Problem(filename, None, f"sample rate {info.samplerate} Hz; expected {SAMPLE_RATE} Hz"))
        if info.channels != 1:
            problems.append(Problem(filename, None, f"{info.channels} channels; expected mono (1 channel)"))
        if info.frames != CLIP_SAMPLES:
            problems.append(
                Problem(filename, None, f"length {info.frames} samples; expected {CLIP_SAMPLES} (1 s at {SAMPLE_RATE} Hz)")
            )
        if info.subtype in FLOAT_SUBTYPES:
            problems += _sample_problems(root, filename)
    return problems


def _sample_problems(root: Path, filename: str) -> list[Problem]:
    """NaN or inf in a float wav, decoded to float32 as the feature cache decodes it (so a
    double too large for float32, which becomes inf there, is reported too)."""
    try:
        samples, _ = sf.read(str(root / filename), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        return [Problem(filename, None, f"unreadable samples: {error}")]
    bad = ~np.isfinite(samples).all(axis=1)
    if not bad.any():
        return []
    return [
        Problem(
            filename,
            None,
            f"{int(bad.sum()):,} non-finite sample(s) (NaN or inf), the first at sample {int(np.argmax(bad))}; "
            "expected finite samples",
        )
    ]


def _in_file_order(problems: list[Problem], tables: Tables) -> list[Problem]:
    """meta.csv, then the split and test files, then audio files by name; by line within a file.

    A reader fixing things top to bottom then meets, for instance, a wrong label in meta.csv
    before the split-file complaints it causes.
    """
    rank = {relative: i for i, relative in enumerate(tables.paths.values())}
    return sorted(problems, key=lambda p: (rank.get(p.path, len(rank)), "" if p.path in rank else p.path, p.line or 0))


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


def _summary(tables: Tables) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Counts per device and per class for meta.csv and each split/test file that could be read."""
    frames = {} if tables.meta is None else {META_FILE: tables.meta}
    frames.update({name: tables.listings[name] for name in LISTING_FILES if name in tables.listings})
    by_device = pd.DataFrame(
        {name: frame["source_label"].value_counts().reindex(DEVICES, fill_value=0) for name, frame in frames.items()},
        index=pd.Index(DEVICES, name="device"),
        dtype=int,
    )
    by_class = pd.DataFrame(
        {name: frame["scene_label"].value_counts().reindex(SCENES, fill_value=0) for name, frame in frames.items()},
        index=pd.Index(SCENES, name="scene"),
        dtype=int,
    )
    recordings = {name: int(frame["recording_id"].nunique()) for name, frame in frames.items()}
    return by_device, by_class, recordings
