"""Per-clip teacher logits in a file: what ``--teacher logits:FILE`` reads.

Why a file: top DCASE teams ship their ensemble teachers as logits precomputed for every training
clip, so a student can be distilled from a teacher nobody can (or wants to) run here. The file is
keyed by the clip's ``meta.csv`` name, so one file for the whole development set serves every
split; :meth:`TeacherLogits.for_clips` is what checks that the clips a run needs are covered.

Formats, chosen by the suffix:

- ``.tsv`` / ``.txt`` / ``.csv``: tab-separated, the header ``filename`` then the 10 scene names in
  any order (the columns of a DCASE output file), one row of logits per clip. A ``.csv`` whose
  header has no tab may use commas.
- ``.npz``: arrays ``filenames`` (str ``[N]``), ``logits`` (float ``[N, 10]``) and optionally
  ``scenes`` (str ``[10]``, the column order; default :data:`~ascbench.data.layout.SCENES`).
- ``.pt``: a dict of the same keys, ``logits`` a tensor, loaded with ``weights_only=True``.

A bad file is read by a user who did not write this code, possibly hours into a grid, so every
problem is one :class:`TeacherLogitsError` line naming the file, the line (or array entry) and
column, and what was expected; and it is found before anything trains.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import uuid
from collections.abc import Callable, Collection, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ascbench.data.layout import SCENES

TABLE_SUFFIXES = (".tsv", ".txt", ".csv")
SUFFIXES = (*TABLE_SUFFIXES, ".npz", ".pt")
AUDIO_DIR = "audio/"
CHUNK_ROWS = 65_536
HEADER_HELP = f"the header 'filename' then the {len(SCENES)} scenes ({', '.join(SCENES)}) in any order"


class TeacherLogitsError(ValueError):
    """A teacher-logits file that cannot be used; ``str()`` is one line naming the file (and the
    line or array entry and column where there is one) and saying what was expected."""


def _error(path: Path | str, where: str, what: str) -> TeacherLogitsError:
    place = f", {where}" if where else ""
    return TeacherLogitsError(" ".join(f"teacher logits file {path}{place}: {what}".split("\n")))


@dataclass(frozen=True)
class TeacherLogits:
    """A teacher's logits per clip, as read (and checked) from a file."""

    filenames: tuple[str, ...]
    """Clip names in ``meta.csv`` form (``audio/<name>.wav``), one per row of ``logits``."""
    logits: np.ndarray = field(compare=False)
    """float32 ``[N, 10]``, columns in :data:`~ascbench.data.layout.SCENES` order."""
    sha256: str
    """Of the file's bytes: a student's record keys its teacher by content, not by path."""
    path: Path
    """The file, for messages."""

    @functools.cached_property
    def _rows(self) -> dict[str, int]:
        return {name: row for row, name in enumerate(self.filenames)}

    def for_clips(self, required: Sequence[str]) -> np.ndarray:
        """The logits of ``required`` (``meta.csv`` names), in that order: float32 ``[len(required), 10]``.

        The file may hold more clips than a run needs; a clip it lacks is an error that says how
        many are missing and names the first three, since a teacher silently missing some of the
        clips would distil from nothing on them."""
        names = [_normalised(name) for name in required]
        missing = [name for name in dict.fromkeys(names) if name not in self._rows]
        if missing:
            first = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise _error(self.path, "", f"no logits for {len(missing)} of the {len(set(names))} clips the run needs ({first}); "
                                        "expected a row for every clip of the split")  # fmt: skip
        rows = np.fromiter((self._rows[name] for name in names), dtype=np.intp, count=len(names))
        return self.logits[rows]


def read_teacher_logits(path: Path | str, known: Collection[str] | None = None) -> TeacherLogits:
    """Read and check a teacher-logits file (the format is chosen by its suffix).

    ``known``: the data set's ``meta.csv`` clip names; a row for any other clip is an error (a file
    made for another data set, or names mangled on the way). Which clips must be present is the
    caller's business (:meth:`TeacherLogits.for_clips`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _error(path, "", "no such file") from None
    except OSError as error:
        raise _error(path, "", f"cannot be read ({error.strerror or error})") from None
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _error(path, "", f"unknown format {path.suffix or '(no suffix)'!r}; expected one of {', '.join(SUFFIXES)}")
    if not raw.strip():
        raise _error(path, "", f"empty file; expected {HEADER_HELP}, then one row per clip" if suffix in TABLE_SUFFIXES
                     else "empty file")  # fmt: skip
    digest = hashlib.sha256(raw).hexdigest()
    parse = {".npz": _read_npz, ".pt": _read_pt}.get(suffix, _read_table)
    names, where, matrix, columns = parse(path, raw)
    filenames = _checked_names(path, names, where, known)
    logits = _checked_logits(path, filenames, where, matrix, columns)
    logits.setflags(write=False)
    return TeacherLogits(filenames, logits, digest, path)


def write_teacher_logits(path: Path | str, filenames: Sequence[str], logits: np.ndarray) -> Path:
    """Write a tab-separated teacher-logits file that :func:`read_teacher_logits` reads back exactly.

    Each value is the shortest decimal of the float32 logit as a double, which parses back to the
    same float32 in any reader. The file appears whole or not at all (a temporary file beside it,
    then ``os.replace``), since a half-written teacher would be read as one missing clips."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise _error(path, "", f"is written tab-separated; give it one of the suffixes {', '.join(TABLE_SUFFIXES)}")
    names = _checked_names(path, list(filenames), _entry, None)
    values = _checked_logits(path, names, _entry, _checked_array(path, np.asarray(logits), len(names)), SCENES)
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(("filename", *SCENES))
    writer.writerows([name, *map(repr, row)] for name, row in zip(names, values.astype(np.float64).tolist()))
    path.parent.mkdir(parents=True, exist_ok=True)
    # named here rather than by mkstemp, whose 0600 would make a file meant to be shared private
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8", newline="") as file:
            file.write(text.getvalue())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


# --- the three formats -------------------------------------------------------------------------
# Each returns the filenames as found, where each row is (for messages), the values with columns
# in the file's order, and the file's scene columns.

Located = Callable[[int], str]


def _entry(index: int) -> str:
    return f"filenames[{index}]"


def _read_table(path: Path, raw: bytes) -> tuple[list[str], Located, np.ndarray, tuple[str, ...]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise _error(path, f"line {line}", f"not UTF-8 text ({error.reason})") from None
    tabs = "\t" in text.split("\n", 1)[0]
    delimiter = "," if path.suffix.lower() == ".csv" and not tabs else "\t"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    names: list[str] = []
    lines: list[int] = []
    chunks: list[np.ndarray] = []
    pending: list[list[str]] = []  # cells as text, converted a chunk at a time to bound the memory of a large file
    try:
        header = [cell.strip() for cell in next(reader, [])]
        columns = _checked_header(path, header, delimiter)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            if len(row) != len(header):
                separated = "tab" if delimiter == "\t" else "comma"
                raise _error(path, f"line {reader.line_num}", f"{len(row)} fields; expected {len(header)} "
                                                              f"({separated}-separated: the filename and {len(SCENES)} logits)")  # fmt: skip
            names.append(row[0])
            lines.append(reader.line_num)
            pending.append(row[1:])
            if len(pending) == CHUNK_ROWS:
                chunks.append(_numbers(path, pending, lines[-len(pending) :], columns))
                pending = []
    except csv.Error as error:
        raise _error(path, f"line {reader.line_num}", f"not readable as a table ({error})") from None
    if not names:
        raise _error(path, "", "no rows after the header; expected one row per clip")
    chunks.append(_numbers(path, pending, lines[-len(pending) :] if pending else [], columns))
    return names, lambda index: f"line {lines[index]}", np.concatenate(chunks), columns


def _numbers(path: Path, cells: list[list[str]], lines: list[int], columns: tuple[str, ...]) -> np.ndarray:
    """The cells as float64 ``[rows, 10]``; the first that is not a number is named by line and column."""
    try:
        return np.array(cells, dtype=np.float64).reshape(len(cells), len(columns))
    except ValueError:
        for row, line in zip(cells, lines):
            for cell, column in zip(row, columns):
                try:
                    float(cell)
                except ValueError:
                    raise _error(path, f"line {line}, column {column}", f"{cell!r} is not a number; expected a logit") from None
        raise


def _checked_header(path: Path, header: list[str], delimiter: str) -> tuple[str, ...]:
    if not header or header[0] != "filename":
        found = repr(header[0]) if header else "nothing"
        raise _error(path, "line 1", f"the first column is {found}; expected {HEADER_HELP}"
                                     + (", separated by tabs" if delimiter == "\t" and len(header) == 1 else ""))  # fmt: skip
    return _checked_scenes(path, "line 1", header[1:])


def _checked_scenes(path: Path, where: str, scenes: Sequence[str]) -> tuple[str, ...]:
    """The scene columns: each of the 10 exactly once, nothing else."""
    scenes = tuple(scenes)
    unknown = [s for s in dict.fromkeys(scenes) if s not in SCENES]
    missing = [s for s in SCENES if s not in scenes]
    repeated = [s for s in dict.fromkeys(scenes) if scenes.count(s) > 1]
    if not (unknown or missing or repeated):
        return scenes
    found = [f"unknown {', '.join(map(repr, unknown))}" if unknown else "",
             f"missing {', '.join(missing)}" if missing else "",
             f"repeated {', '.join(repeated)}" if repeated else ""]  # fmt: skip
    raise _error(path, where, f"{len(scenes)} scene columns ({'; '.join(f for f in found if f)}); "
                              f"expected each of the {len(SCENES)} scenes {', '.join(SCENES)} exactly once, in any order")  # fmt: skip


def _read_npz(path: Path, raw: bytes) -> tuple[list[str], Located, np.ndarray, tuple[str, ...]]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # a bad zip, a pickled member, a truncated array: numpy has many kinds
        raise _error(path, "", f"not a readable .npz archive of plain arrays ({type(error).__name__}: {error})") from None
    filenames, logits = _required(path, arrays, "arrays")
    if filenames.ndim != 1 or filenames.dtype.kind != "U":
        raise _error(path, "", f"'filenames' is {filenames.dtype} {list(filenames.shape)}; expected a 1-d array of str")
    return [str(name) for name in filenames], _entry, _checked_array(path, logits, len(filenames)), _scenes_of(path, arrays)


def _read_pt(path: Path, raw: bytes) -> tuple[list[str], Located, np.ndarray, tuple[str, ...]]:
    import torch  # only for this format: the rest of the module (and the CLI's checks) runs without it

    try:
        content = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch's own errors: any of them means unreadable
        raise _error(path, "", f"not loadable with torch.load(weights_only=True) ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise _error(path, "", f"holds a {type(content).__name__}; expected a dict with 'filenames' and 'logits'")
    filenames, logits = _required(path, content, "keys")
    if not isinstance(filenames, (list, tuple)) or not all(isinstance(name, str) for name in filenames):
        raise _error(path, "", f"'filenames' is a {type(filenames).__name__}; expected a list of str")
    if not isinstance(logits, torch.Tensor):
        raise _error(path, "", f"'logits' is a {type(logits).__name__}; expected a float tensor [N, {len(SCENES)}]")
    if not logits.is_floating_point():
        raise _error(path, "", f"'logits' has dtype {logits.dtype}; logits must be floating point")
    values = logits.detach().to(torch.float64).numpy()
    return list(filenames), _entry, _checked_array(path, values, len(filenames)), _scenes_of(path, content)


def _required(path: Path, content: dict, what: str) -> tuple:
    absent = [key for key in ("filenames", "logits") if key not in content]
    if absent:
        raise _error(path, "", f"no {' or '.join(map(repr, absent))}; expected {what} 'filenames', 'logits' and optionally "
                               f"'scenes', found {', '.join(map(repr, content)) or 'none'}")  # fmt: skip
    return content["filenames"], content["logits"]


def _scenes_of(path: Path, content: dict) -> tuple[str, ...]:
    if "scenes" not in content:
        return SCENES
    scenes = content["scenes"]
    if isinstance(scenes, np.ndarray) and scenes.ndim == 1 and scenes.dtype.kind == "U":
        scenes = scenes.tolist()
    if not isinstance(scenes, (list, tuple)) or not all(isinstance(s, str) for s in scenes):
        raise _error(path, "", f"'scenes' is a {type(scenes).__name__}; expected {len(SCENES)} scene names (str)")
    return _checked_scenes(path, "'scenes'", scenes)


def _checked_array(path: Path, logits: np.ndarray, rows: int) -> np.ndarray:
    """``logits``, refused unless floating point ``[rows, 10]`` (an integer array is class indices
    or a quantized export, not logits)."""
    if logits.dtype.kind != "f":
        raise _error(path, "", f"'logits' has dtype {logits.dtype}; logits must be floating point")
    if logits.shape != (rows, len(SCENES)):
        raise _error(path, "", f"'logits' has shape {list(logits.shape)}; expected [{rows}, {len(SCENES)}] "
                               f"(one row per filename, one column per scene)")  # fmt: skip
    return logits


# --- what every format must satisfy ------------------------------------------------------------


def _normalised(name: str) -> str:
    return name if "/" in name else AUDIO_DIR + name


def _checked_names(path: Path, names: list[str], where: Located, known: Collection[str] | None) -> tuple[str, ...]:
    """``meta.csv`` names (a bare ``<name>.wav`` gets its ``audio/``), each once, each a clip of
    the data set when ``known`` is given."""
    if not names:
        raise _error(path, "", "no clips; expected one row per clip")
    known = known if known is None or isinstance(known, Set) else frozenset(known)
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        clip = _normalised(name)
        if not clip.startswith(AUDIO_DIR) or not clip.endswith(".wav") or clip.count("/") != 1:
            raise _error(path, where(index), f"file name {name!r}; expected the meta.csv form 'audio/<name>.wav' (or '<name>.wav')")
        if clip in seen:
            raise _error(path, where(index), f"{clip} is given twice, first at {where(seen[clip])}; expected one row per clip")
        if known is not None and clip not in known:
            raise _error(path, where(index), f"{clip} is not a clip of the data set (not in its meta.csv)")
        seen[clip] = index
    return tuple(seen)


def _checked_logits(path: Path, names: Sequence[str], where: Located, matrix: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """float32 ``[N, 10]`` in SCENES order, every value finite (a NaN would poison every batch it meets)."""
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, which is named below
        logits = matrix.astype(np.float32)
    bad = np.argwhere(~np.isfinite(logits))
    if len(bad):
        row, column = (int(i) for i in bad[0])
        raise _error(path, f"{where(row)} ({names[row]}), column {columns[column]}",
                     f"{matrix[row, column]} is not a finite float32; logits must be finite numbers")  # fmt: skip
    order = [columns.index(scene) for scene in SCENES]
    return np.ascontiguousarray(logits[:, order])
