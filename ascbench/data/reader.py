"""Read a TAU22-layout directory (real or synthetic) into a :class:`~ascbench.data.dataset.Dataset`.

The same table checks serve two callers: :func:`load_dataset` stops at the first problem (a
benchmark must not run on a broken layout), while ``ascbench data check`` collects them all and
adds the audio checks (:mod:`ascbench.data.check`). Every problem names the file, the line and
what was expected, because the real set has 230,350 rows and "invalid data" helps nobody.

All csv checks are vectorised with pandas except file-name parsing, which goes through
:meth:`ClipName.parse` so that exactly one function decides what a valid clip name is.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ascbench.data.dataset import Clip, DataSplit, Dataset
from ascbench.data.fingerprint import content_fingerprint
from ascbench.data.layout import (
    DEVICES,
    FRACTION_SPLITS,
    META_FILE,
    META_HEADER,
    REAL_CLIP_COUNT,
    SCENES,
    SPLIT_DIR,
    SPLIT_FILES,
    SPLIT_HEADER,
    TEST_FILE,
    UNSEEN_DEVICES,
    ClipName,
    parse_fraction,
)

SYNTH_INFO_FILE = "synth_info.json"
"""Written by the synthetic generator at the data set root; its presence names the data set."""

LISTING_FILES: tuple[str, ...] = (*SPLIT_FILES, TEST_FILE)
"""The files that list clips by name: the nested training splits, then the test set."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data set: the file (relative to the data set root), the line, what is wrong."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


class DataError(ValueError):
    """A data set that cannot be used as it is; ``str()`` reads ``meta.csv:17: unknown scene label ...``."""

    def __init__(self, path: str, line: int | None, message: str, root: Path | None = None, more: int = 0):
        self.path = path
        self.line = line
        self.message = message
        self.root = root
        self.more = more
        """How many further problems were found; ``ascbench data check`` lists them all."""
        text = str(Problem(path, line, message))
        if more:
            text += f" (and {more} more problem{'s' if more > 1 else ''}; `ascbench data check {root}` lists them all)"
        super().__init__(text)

    @property
    def problem(self) -> Problem:
        return Problem(self.path, self.line, self.message)


@dataclass(frozen=True)
class Tables:
    """The csv files of one data set, parsed and checked, with every problem found on the way.

    Frames are indexed by their 1-based line number in the file so that any later check can
    point at the line. ``meta`` holds only rows a :class:`Clip` can be built from, with the
    parsed ``city`` and ``recording_id``; each listing holds only rows naming such a clip,
    joined with that clip's ``source_label`` and ``recording_id``.
    """

    root: Path
    meta: pd.DataFrame | None
    listings: dict[str, pd.DataFrame]
    paths: dict[str, str]
    """``meta.csv``, ``split5.csv``, ... ``test.csv`` -> path relative to the root, for the files found."""
    meta_names: pd.Series
    """The file name of every parsed meta.csv row, good or not, indexed by line: for the
    "not in meta.csv" and the audio checks, which must not call a clip unlisted because its
    label is wrong."""
    info: dict
    problems: tuple[Problem, ...]


def read_tables(root: Path | str) -> Tables:
    """Parse and cross-check meta.csv, the split files and test.csv; never raises for bad content."""
    root = Path(root)
    problems: list[Problem] = []
    paths: dict[str, str] = {}
    meta: pd.DataFrame | None = None
    meta_names = pd.Series(dtype=object)
    if not root.is_dir():
        problems.append(Problem(str(root), None, "no such directory"))
        return Tables(root, None, {}, paths, meta_names, {}, tuple(problems))

    if (root / META_FILE).is_file():
        paths[META_FILE] = META_FILE
        frame, found = _read_table(root, META_FILE, META_HEADER)
        problems += found + _empty_problems(frame, found, META_FILE)
        if frame is not None:
            meta_names = frame["filename"]
            meta, found = _check_meta(frame, META_FILE)
            problems += found
    else:
        problems.append(
            Problem(META_FILE, None, f"missing; a TAU22-layout data set has {META_FILE} at its root ({root})")
        )

    known = None if meta is None else _by_filename(meta)
    listings: dict[str, pd.DataFrame] = {}
    for name in LISTING_FILES:
        relative, found = locate_listing(root, name)
        problems += found
        if relative is None:
            continue
        paths[name] = relative
        frame, found = _read_table(root, relative, SPLIT_HEADER)
        problems += found + _empty_problems(frame, found, relative)
        if frame is not None:
            listings[name], found = _check_listing(
                frame, relative, known, meta_names, training=name != TEST_FILE
            )
            problems += found

    problems += _nesting_problems(listings, paths)
    problems += _leakage_problems(listings, paths)
    info, found = read_info(root)
    problems += found
    return Tables(root, meta, listings, paths, meta_names, info, tuple(problems))


def load_dataset(root: Path | str) -> Dataset:
    """Read a TAU22-layout directory; raise :class:`DataError` (file, line, expectation) if it is broken."""
    root = Path(root).expanduser().resolve()
    tables = read_tables(root)
    if tables.problems:
        first = tables.problems[0]
        raise DataError(first.path, first.line, first.message, root=root, more=len(tables.problems) - 1)
    assert tables.meta is not None
    meta = tables.meta
    clips = tuple(
        Clip(filename, scene, device, city, identifier, recording_id)
        for filename, scene, device, city, identifier, recording_id in zip(
            meta["filename"].tolist(),
            meta["scene_label"].tolist(),
            meta["source_label"].tolist(),
            meta["city"].tolist(),
            meta["identifier"].tolist(),
            meta["recording_id"].tolist(),
        )
    )
    splits = {name: tuple(tables.listings[name]["filename"].tolist()) for name in SPLIT_FILES}
    test = tuple(tables.listings[TEST_FILE]["filename"].tolist())
    return Dataset(
        root=root,
        name=dataset_name(root, len(clips), tables.info),
        fingerprint=_data_fingerprint(root, tables.paths, tables.info),
        clips=clips,
        splits=splits,
        test=test,
        info=tables.info,
    )


def load_split(data: Dataset | Path | str, fraction: float | str) -> DataSplit:
    """The train/test/unlabeled clips of one official training fraction.

    ``unlabeled`` is every clip of meta.csv outside test.csv and outside this split, minus clips
    of recordings that are in test.csv: a teacher pre-trained on another device's copy of a test
    recording would have heard the test set.
    """
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    fraction = parse_fraction(fraction)
    train = tuple(dataset.clip(name) for name in dataset.splits[FRACTION_SPLITS[fraction]])
    test = tuple(dataset.clip(name) for name in dataset.test)
    taken = {clip.filename for clip in train} | {clip.filename for clip in test}
    test_recordings = {clip.recording_id for clip in test}
    unlabeled = tuple(
        clip for clip in dataset.clips if clip.filename not in taken and clip.recording_id not in test_recordings
    )
    return DataSplit(dataset=dataset, fraction=fraction, train=train, test=test, unlabeled=unlabeled)


def fingerprint(root: Path | str) -> str:
    """16 hex chars identifying the content: csv bytes plus audio file names and sizes."""
    root = Path(root)
    paths = {META_FILE: META_FILE}
    for name in LISTING_FILES:
        relative, _ = locate_listing(root, name)
        if relative is not None:
            paths[name] = relative
    return _data_fingerprint(root, paths, read_info(root)[0])


def _data_fingerprint(root: Path, paths: dict[str, str], info: dict) -> str:
    """The csv files and audio listing; for synthetic data of a generator version after 1, its
    ``synth_info.json`` too.

    Why: every synthetic clip has the same size, so a new generator version rewrites the audio
    under the same names and sizes, and without its version the fingerprint would not change:
    old feature caches and records would be trusted. Version 1 is left out to keep the
    fingerprints that existing records and leaderboards carry."""
    files = _csv_paths(paths)
    if info and str(info.get("version", "1")) != "1":
        files.append(SYNTH_INFO_FILE)
    return content_fingerprint(root, files)


def dataset_name(root: Path, clip_count: int, info: dict) -> str:
    """Where the data came from, as every result will state it.

    Synthetic data is named by its generator; a TAU22-layout directory that is not the complete
    real development set is named after its directory, so that a subset never passes as ``tau22``.
    """
    if info:
        return f"synth-tau22-{info['size']}"
    if clip_count == REAL_CLIP_COUNT:
        return "tau22"
    return f"tau22-layout-{root.name}"


def read_info(root: Path) -> tuple[dict, list[Problem]]:
    """The synthetic generator's ``synth_info.json`` ({} for real data)."""
    path = root / SYNTH_INFO_FILE
    if not path.is_file():
        return {}, []
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return {}, [Problem(SYNTH_INFO_FILE, getattr(error, "lineno", None), f"unreadable JSON: {error}")]
    if not isinstance(info, dict) or not isinstance(info.get("size"), str) or not info["size"]:
        return {}, [Problem(SYNTH_INFO_FILE, None, 'expected a JSON object with a "size" string (tiny, small, ...)')]
    return info, []


def locate_listing(root: Path, name: str) -> tuple[str | None, list[Problem]]:
    """Find a split or test file in ``split_setup/`` (official DCASE 2024 layout) or beside meta.csv."""
    candidates = [f"{SPLIT_DIR}/{name}", name]
    found = [c for c in candidates if (root / c).is_file()]
    if not found:
        return None, [Problem(candidates[0], None, f"missing; expected {name} in {SPLIT_DIR}/ or beside {META_FILE}")]
    if len(found) == 2 and (root / found[0]).read_bytes() != (root / found[1]).read_bytes():
        return found[0], [
            Problem(found[1], None, f"differs from {found[0]}; two different copies of {name}, remove one")
        ]
    return found[0], []


def _csv_paths(paths: dict[str, str]) -> list[str]:
    return [paths[name] for name in (META_FILE, *LISTING_FILES) if name in paths]


# --- one csv file -------------------------------------------------------------------------------


def _read_table(root: Path, relative: str, header: tuple[str, ...]) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Parse a tab-separated file into string columns indexed by line number.

    Rows with the wrong number of fields are reported and dropped, blank lines skipped; a file
    whose header is wrong is not interpreted at all (its columns would be guesses).
    """
    raw = (root / relative).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return None, [Problem(relative, line, f"not UTF-8 text ({error.reason} at byte {error.start})")]
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    expected = "\t".join(header)
    if not lines:
        return None, [Problem(relative, 1, f"empty file; expected the header {expected!r}")]
    if lines[0] != expected:
        return None, [Problem(relative, 1, f"bad header: expected {expected!r}, found {lines[0]!r}")]

    body = pd.Series(lines[1:], index=pd.RangeIndex(2, len(lines) + 1, name="line"), dtype=object)
    blank = body.str.strip() == ""
    fields = body.str.count("\t") + 1
    wrong = ~blank & (fields != len(header))
    problems = [
        Problem(relative, int(line), f"expected {len(header)} tab-separated fields ({', '.join(header)}), found {count}")
        for line, count in fields[wrong].items()
    ]
    rows = body[~blank & ~wrong]
    if rows.empty:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in header}, index=rows.index), problems
    frame = pd.read_csv(
        io.StringIO("\n".join(rows)),
        sep="\t",
        header=None,
        names=list(header),
        dtype=str,
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        skip_blank_lines=False,
    )
    frame.index = rows.index
    return frame, problems


def _empty_problems(frame: pd.DataFrame | None, found: list[Problem], relative: str) -> list[Problem]:
    """A file with its header and no rows lists no clips: a truncated download or a generator bug.

    Read as it is, it would pass every check (nothing in it is wrong) and a run would train on no
    clips or evaluate on none, failing much later with a shape error. Rows that were dropped for
    their own problem are already reported, so only a file without any row is flagged here.
    """
    if frame is None or not frame.empty or found:
        return []
    return [Problem(relative, None, "no clips listed (header only)")]


def _duplicate_problems(frame: pd.DataFrame, relative: str) -> tuple[pd.Series, list[Problem]]:
    """Rows naming a clip an earlier row already names (same file name, whatever the other columns)."""
    duplicate = frame["filename"].duplicated()
    if not duplicate.any():
        return duplicate, []
    first_line = pd.Series(frame.index[~duplicate], index=frame["filename"][~duplicate])
    problems = [
        Problem(relative, int(line), f"duplicate row: {name} is already listed on line {first_line[name]}")
        for line, name in frame["filename"][duplicate].items()
    ]
    return duplicate, problems


def _unknown_problems(values: pd.Series, relative: str, what: str, valid: tuple[str, ...]) -> tuple[pd.Series, list[Problem]]:
    unknown = ~values.isin(valid)
    problems = [
        Problem(relative, int(line), f"unknown {what} {value!r}; expected one of {', '.join(valid)}")
        for line, value in values[unknown].items()
    ]
    return unknown, problems


# --- meta.csv -----------------------------------------------------------------------------------


def _check_meta(frame: pd.DataFrame, relative: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Check every meta.csv row; return the good ones with ``city`` and ``recording_id`` added."""
    problems: list[Problem] = []
    duplicate, found = _duplicate_problems(frame, relative)
    problems += found
    unknown_scene, found = _unknown_problems(frame["scene_label"], relative, "scene label", SCENES)
    problems += found
    unknown_device, found = _unknown_problems(frame["source_label"], relative, "device (source_label)", DEVICES)
    problems += found

    parsed: list[ClipName | None] = []
    for line, name in frame["filename"].items():
        try:
            parsed.append(ClipName.parse(name))
        except ValueError as error:
            parsed.append(None)
            problems.append(Problem(relative, int(line), f"unparseable file name: {error}"))
    unparsed = pd.Series([p is None for p in parsed], index=frame.index)
    named = pd.DataFrame(
        {
            "scene": [p.scene if p else "" for p in parsed],
            "identifier": [p.identifier if p else "" for p in parsed],
            "device": [p.device if p else "" for p in parsed],
            "city": [p.city if p else "" for p in parsed],
            "recording_id": [p.recording_id if p else "" for p in parsed],
        },
        index=frame.index,
    )
    inconsistent = pd.Series(False, index=frame.index)
    for column, parsed_column, what, skip in (
        ("scene_label", "scene", "scene", unknown_scene),
        ("identifier", "identifier", "city-location", None),
        ("source_label", "device", "device", unknown_device),
    ):
        disagree = ~unparsed & (frame[column] != named[parsed_column])
        if skip is not None:
            disagree &= ~skip
        problems += [
            Problem(relative, int(line), f"{column} {frame.at[line, column]!r} disagrees with the file name ({what} {value!r})")
            for line, value in named[parsed_column][disagree].items()
        ]
        inconsistent |= disagree

    bad = duplicate | unknown_scene | unknown_device | unparsed | inconsistent
    problems.sort(key=lambda p: p.line or 0)
    good = frame[~bad].assign(city=named["city"][~bad], recording_id=named["recording_id"][~bad])
    return good, problems


# --- split and test files -----------------------------------------------------------------------


def _check_listing(
    frame: pd.DataFrame,
    relative: str,
    known: pd.DataFrame | None,
    meta_names: pd.Series,
    training: bool,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check a split/test file against meta.csv; return its rows that name a good meta clip.

    The returned rows carry the clip's ``source_label`` and ``recording_id`` (from meta.csv),
    which the nesting and leakage checks need.
    """
    problems: list[Problem] = []
    duplicate, found = _duplicate_problems(frame, relative)
    problems += found
    unknown_scene, found = _unknown_problems(frame["scene_label"], relative, "scene label", SCENES)
    problems += found
    if known is None:
        problems.sort(key=lambda p: p.line or 0)
        return frame.iloc[:0].assign(source_label="", recording_id="", meta_line=0), problems

    unlisted = ~frame["filename"].isin(meta_names)
    problems += [
        Problem(relative, int(line), f"{name} is not listed in {META_FILE}")
        for line, name in frame["filename"][unlisted].items()
    ]
    joined = frame.join(known, on="filename")
    in_meta = joined["meta_line"].notna()
    disagree = in_meta & ~unknown_scene & (joined["scene_label"] != joined["meta_scene_label"])
    problems += [
        Problem(
            relative,
            int(line),
            f"scene_label {row.scene_label!r} disagrees with {META_FILE} line {int(row.meta_line)} "
            f"({row.meta_scene_label!r}) for {row.filename}",
        )
        for line, row in joined[disagree].iterrows()
    ]
    bad = duplicate | unknown_scene | ~in_meta | disagree
    if training:
        unseen = in_meta & joined["source_label"].isin(UNSEEN_DEVICES)
        problems += [
            Problem(
                relative,
                int(line),
                f"{row.filename} is from device {row.source_label!r}; {', '.join(UNSEEN_DEVICES)} are unseen "
                f"devices and must never be in a training split",
            )
            for line, row in joined[unseen].iterrows()
        ]
        bad |= unseen
    problems.sort(key=lambda p: p.line or 0)
    good = joined[~bad][["filename", "scene_label", "source_label", "recording_id", "meta_line"]]
    return good.astype({"meta_line": int}), problems


def _by_filename(meta: pd.DataFrame) -> pd.DataFrame:
    """What a listing needs to know about each good meta clip, looked up by file name."""
    known = meta.reset_index().set_index("filename")
    return known[["line", "scene_label", "source_label", "recording_id"]].rename(
        columns={"line": "meta_line", "scene_label": "meta_scene_label"}
    )


def _nesting_problems(listings: dict[str, pd.DataFrame], paths: dict[str, str]) -> list[Problem]:
    """split5 ⊂ split10 ⊂ split25 ⊂ split50 ⊂ split100: name the first clip that breaks each step."""
    problems = []
    chain = " ⊂ ".join(name.removesuffix(".csv") for name in SPLIT_FILES)
    for smaller, larger in zip(SPLIT_FILES, SPLIT_FILES[1:]):
        if smaller not in listings or larger not in listings:
            continue
        outside = listings[smaller][~listings[smaller]["filename"].isin(listings[larger]["filename"])]
        if outside.empty:
            continue
        line, name = int(outside.index[0]), outside["filename"].iloc[0]
        more = f"; {len(outside) - 1} more clips of {smaller} are missing from {larger}" if len(outside) > 1 else ""
        problems.append(
            Problem(paths[smaller], line, f"{name} is in {smaller} but not in {larger}; the splits must be nested ({chain}){more}")
        )
    return problems


def _leakage_problems(listings: dict[str, pd.DataFrame], paths: dict[str, str]) -> list[Problem]:
    """Training clips whose recording (another segment or device of it) is in test.csv.

    Each leaking clip is reported once, on its line in the largest split that holds it, so a
    leak in split5 is not repeated for split10 ... split100.
    """
    if TEST_FILE not in listings:
        return []
    test = listings[TEST_FILE]
    first_test_line = pd.Series(test.index, index=test["recording_id"]).groupby(level=0).min()
    problems: list[Problem] = []
    reported: set[str] = set()
    for name in reversed(SPLIT_FILES):
        if name not in listings:
            continue
        split = listings[name]
        leaking = split[split["recording_id"].isin(first_test_line.index) & ~split["filename"].isin(reported)]
        problems += [
            Problem(
                paths[name],
                int(line),
                f"recording {row.recording_id} is in training and test: {row.filename} is here and "
                f"{TEST_FILE} line {first_test_line[row.recording_id]} holds the same recording; "
                "a recording must never be split between training and test",
            )
            for line, row in leaking.iterrows()
        ]
        reported.update(leaking["filename"])
    return problems
