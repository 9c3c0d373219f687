"""The results store: one JSON record per run under ``$ASCBENCH_HOME/records``, predictions beside it.

A record's existence is what tells the runner a run is done, so a record must never exist half
written: every file is written to a temporary file in the same directory, fsynced and moved into
place with ``os.replace`` (atomic on POSIX), and the per-clip predictions are written before the
JSON that references them.

A record is only believed when it is intact: its ``checksum`` matches its content (a hand edit
does not), and its predictions file is readable and matches the sha256 the record holds. A
record that fails either is reported with the reason and treated as absent: the board is built
from the rest and ``run`` repeats that run. Records made before checksums existed are checked by
recomputing their accuracy from their predictions.

Layout: ``records/<RunKey.slug()>.json`` and ``records/<RunKey.slug()>.<sha>.predictions.npz``.
The predictions file is named by its content, so a rerun writes beside the old one and the old
record stays whole until the new record replaces it: at no instant is there no record, or a
record paired with another run's predictions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ascbench.data.layout import parse_fraction
from ascbench.evaluation.metrics import macro_class_accuracy
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.paths import records_dir
from ascbench.results.record import Record, RunKey, record_checksum
from ascbench.tasks import DEFAULT_TASK

log = logging.getLogger(__name__)

RECORD_SUFFIX = ".json"
PREDICTIONS_SUFFIX = ".predictions.npz"
TEMP_SUFFIX = ".tmp"
STALE_TEMP_S = 60.0
"""A temporary file of the store older than this belongs to a writer that died (a write takes
milliseconds): it is removed when the same record is written again."""
ACCURACY_TOLERANCE = 1e-9


class RecordNotFoundError(LookupError):
    """No record for a run key."""


class CorruptRecordError(ValueError):
    """A record file exists but cannot be used (partial write, hand edit, foreign schema)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class InvalidRecord:
    """A JSON file in the store that is not a usable record, and why."""

    path: Path
    reason: str


class ResultsStore:
    """Run records under ``records_dir(home)``; see the module docstring for the layout."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.root = records_dir(home)
        self._predictions: dict[Path, tuple[str, ClipPredictions]] = {}
        """Predictions already read and checked, by path, with the sha256 they were read at."""

    def record_path(self, key: RunKey) -> Path:
        return self.root / f"{key.slug()}{RECORD_SUFFIX}"

    def predictions_path(self, record: Record) -> Path | None:
        """The predictions file ``record`` names (None when it was stored without predictions)."""
        if record.predictions_file is None:
            return None
        return self.record_path(record.key).parent / record.predictions_file

    def write(self, record: Record, predictions: ClipPredictions | None = None) -> Path:
        """Store ``record`` (and its per-clip predictions) atomically; returns the JSON path.

        The stored copy names the ``.npz`` written here and carries its sha256 and the record's
        own checksum. Without ``predictions`` the record may still reference an existing
        predictions file beside it. Predictions files of the same key that the new record does
        not name are removed once it is in place.
        """
        path = self.record_path(record.key)
        data: bytes | None = None
        if predictions is not None:
            if len(predictions) != record.metrics.n_test:
                raise ValueError(
                    f"record {record.key.slug()}: {len(predictions)} predictions but metrics.n_test = {record.metrics.n_test}"
                )
            buffer = io.BytesIO()
            _save_predictions(buffer, predictions)
            data = buffer.getvalue()
            digest = hashlib.sha256(data).hexdigest()
            name = f"{path.name[: -len(RECORD_SUFFIX)]}.{digest[:12]}{PREDICTIONS_SUFFIX}"
            record = dataclasses.replace(record, predictions_file=name, predictions_sha256=digest)
        elif record.predictions_file is not None:
            existing = path.parent / record.predictions_file
            if Path(record.predictions_file).name != record.predictions_file or not existing.is_file():
                raise ValueError(
                    f"record {record.key.slug()} references predictions {record.predictions_file!r}, "
                    f"which is not in {path.parent}; pass predictions= to write them"
                )
            if record.predictions_sha256 is None:
                record = dataclasses.replace(record, predictions_sha256=hashlib.sha256(existing.read_bytes()).hexdigest())
        else:
            record = dataclasses.replace(record, predictions_sha256=None)
        record = dataclasses.replace(record, checksum=None)
        try:
            record = dataclasses.replace(record, checksum=record_checksum(record))
            text = json.dumps(record.to_json_dict(), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"record {record.key.slug()} is not JSON-serialisable ({error}); "
                "metrics must be Python floats/ints and undefined values None, not NaN"
            ) from None

        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path.parent, path.name[: -len(RECORD_SUFFIX)])
        if data is not None:
            _atomic_write(path.parent / record.predictions_file, lambda f: f.write(data))
        _atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        for old in _predictions_files(path):
            if old.name != record.predictions_file:
                old.unlink(missing_ok=True)
        return path

    def exists(self, key: RunKey) -> bool:
        """True only for an intact record of ``key`` (see :meth:`usable`)."""
        return self.usable(key) is not None

    def usable(self, key: RunKey) -> Record | None:
        """The record of ``key`` when it is intact, with readable predictions that reproduce its
        accuracy; otherwise None, and the reason is logged (the run will be repeated)."""
        path = self.record_path(key)
        if not path.is_file():
            return None
        try:
            record = self._load(path)
            self.verify(record)
        except CorruptRecordError as error:
            log.warning("ignoring unusable record (the run will be repeated): %s", error)
            return None
        return record

    def read(self, key: RunKey) -> Record:
        path = self.record_path(key)
        if not path.is_file():
            raise RecordNotFoundError(f"no record for {key.slug()} (expected {path})")
        return self._load(path)

    def read_slug(self, slug: str) -> Record | None:
        """The record of the run ``slug`` names (a model file's ``meta.run``); None when this store
        holds no usable record of it, or the name points outside the store."""
        path = (self.root / f"{slug}{RECORD_SUFFIX}").resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return None
        try:
            return self._load(path)
        except CorruptRecordError:
            return None

    def iter_records(
        self,
        dataset: str | None = None,
        fraction: float | str | None = None,
        system: str | None = None,
        profile: str | None = None,
        task: str | None = DEFAULT_TASK,
        fingerprint: str | None = None,
    ) -> Iterator[Record]:
        """Every intact record matching the given key fields, in path order; the others are
        logged and left out (:meth:`invalid_records` lists them with their reasons).
        ``fingerprint`` narrows ``dataset`` to one content: two folders can carry one name.

        Records of the default task unless ``task`` names another (None: every task): a
        ``dcase2025`` run has the same system name as the plain run it starts from, and a caller
        that did not ask for it must never average or export the two as one."""
        wanted_fraction = parse_fraction(fraction) if fraction is not None else None
        for path in sorted(self.root.rglob(f"*{RECORD_SUFFIX}")):
            try:
                record = self._load(path)
            except CorruptRecordError as error:
                log.warning("skipping unusable record: %s", error)
                continue
            key = record.key
            if dataset is not None and key.dataset != dataset:
                continue
            if fingerprint is not None and key.dataset_fingerprint != fingerprint:
                continue
            if wanted_fraction is not None and abs(key.fraction - wanted_fraction) > 1e-9:
                continue
            if system is not None and key.system != system:
                continue
            if profile is not None and key.profile != profile:
                continue
            if task is not None and key.task != task:
                continue
            try:
                self.verify(record)
            except CorruptRecordError as error:
                log.warning("skipping unusable record: %s", error)
                continue
            yield record

    def registered_name(self, name: str) -> str:
        """The registry's system behind a name on a board (``hubert-mobilenetv2~no-fms@teacher-seed0``
        -> ``hubert-mobilenetv2``), read from its records (the name itself when none has it)."""
        record = next(self.iter_records(system=name), None)
        registered = record.system.get("name") if record is not None else None
        return str(registered) if registered else name

    def invalid_records(self) -> list[InvalidRecord]:
        """Record files that are not usable records, with the reason (for boards and ``check``)."""
        invalid = []
        for path in sorted(self.root.rglob(f"*{RECORD_SUFFIX}")):
            try:
                self.verify(self._load(path))
            except CorruptRecordError as error:
                invalid.append(InvalidRecord(path, error.reason if error.path == path else f"{error.path.name}: {error.reason}"))
        return invalid

    def verify(self, record: Record) -> None:
        """Raise :class:`CorruptRecordError` unless ``record``'s predictions (if it has any) are
        intact and reproduce its accuracy."""
        if record.predictions_file is not None:
            self.load_predictions(record)

    def load_predictions(self, record: Record) -> ClipPredictions:
        """The per-clip predictions a stored record references, checked against the record.

        Any damage (a truncated or bit-flipped file, another run's file) is a
        :class:`CorruptRecordError` naming the file, never a zip or zlib traceback."""
        path = self.predictions_path(record)
        if path is None:
            raise FileNotFoundError(f"record {record.key.slug()} was stored without per-clip predictions")
        if Path(record.predictions_file).name != record.predictions_file:
            raise CorruptRecordError(self.record_path(record.key),
                                     f"predictions_file {record.predictions_file!r} is not a plain file name")  # fmt: skip
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorruptRecordError(path, "the predictions file the record names is missing") from None
        except OSError as error:
            raise CorruptRecordError(path, f"unreadable predictions ({error})") from None
        digest = hashlib.sha256(data).hexdigest()
        if record.predictions_sha256 is not None and digest != record.predictions_sha256:
            raise CorruptRecordError(path, "the predictions file does not match the sha256 its record holds (damaged or replaced)")
        cached = self._predictions.get(path)
        if cached is not None and cached[0] == digest:
            return cached[1]
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                predictions = ClipPredictions(
                    filenames=tuple(archive["filenames"].tolist()),
                    labels=archive["labels"],
                    scores=archive["scores"],
                    scores_are=str(archive["scores_are"]),
                )
        except Exception as error:  # zipfile, zlib, numpy and KeyError all mean one thing: damaged
            raise CorruptRecordError(path, f"unreadable predictions ({type(error).__name__}: {error})") from None
        if len(predictions) != record.metrics.n_test:
            raise CorruptRecordError(path, f"{len(predictions)} predictions but the record says n_test = {record.metrics.n_test}")
        recomputed = macro_class_accuracy(np.asarray(predictions.labels), np.asarray(predictions.scores).argmax(axis=1))
        if recomputed is None or abs(recomputed - record.metrics.accuracy) > ACCURACY_TOLERANCE:
            raise CorruptRecordError(
                self.record_path(record.key),
                f"accuracy {record.metrics.accuracy!r} is not what its predictions give ({recomputed!r}): edited after the run?",
            )
        self._predictions[path] = (digest, predictions)
        return predictions

    def _load(self, path: Path) -> Record:
        try:
            record = Record.from_json_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CorruptRecordError(path, f"not valid JSON (partial write?): {error}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CorruptRecordError(path, f"not a run record: {type(error).__name__}: {error}") from None
        except OSError as error:
            raise CorruptRecordError(path, f"unreadable ({error})") from None
        if self.record_path(record.key) != path:
            raise CorruptRecordError(path, f"holds the record of {record.key.slug()}, which belongs elsewhere")
        if record.checksum is not None:
            try:
                expected = record_checksum(record)
            except (TypeError, ValueError) as error:
                raise CorruptRecordError(path, f"not a run record: {error}") from None
            if expected != record.checksum:
                raise CorruptRecordError(path, "its content does not match the checksum written with it (edited after the run?)")
        return record


def _save_predictions(file: IO[bytes], predictions: ClipPredictions) -> None:
    np.savez_compressed(
        file,
        filenames=np.asarray(predictions.filenames, dtype=str),
        labels=np.asarray(predictions.labels, dtype=np.int16),
        scores=np.asarray(predictions.scores, dtype=np.float32),
        scores_are=np.asarray(predictions.scores_are),
    )


def _predictions_files(record_path: Path) -> list[Path]:
    """Every predictions file of the record at ``record_path``: content-named ones and the
    ``<seed>.predictions.npz`` of records made before predictions were named by content."""
    stem = record_path.name[: -len(RECORD_SUFFIX)]
    folder = record_path.parent
    return [*folder.glob(f"{stem}.*{PREDICTIONS_SUFFIX}"), *folder.glob(f"{stem}{PREDICTIONS_SUFFIX}")]


def _remove_stale_temporaries(folder: Path, stem: str, max_age_s: float = STALE_TEMP_S) -> None:
    """Temporary files of one record that a killed writer left (``.seed0.json.x1y2.tmp``)."""
    cutoff = time.time() - max_age_s
    for leftover in folder.glob(f".{stem}.*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write via a temporary file in the same directory, fsync, then ``os.replace`` into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
