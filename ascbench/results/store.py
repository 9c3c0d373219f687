"""The results store: one JSON record per run under ``$ASCBENCH_HOME/records``, predictions beside it.

A record's existence is what tells the runner a run is done, so a record must never exist half
written: every file is written to a temporary file in the same directory, fsynced and moved into
place with ``os.replace`` (atomic on POSIX), and the per-clip predictions are written before the
JSON that references them. A JSON file that does not parse is treated as absent and reported,
never trusted, so an interrupted run is simply run again.

Layout: ``records/<RunKey.slug()>.json`` and ``records/<RunKey.slug()>.predictions.npz``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ascbench.data.layout import parse_fraction
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.paths import records_dir
from ascbench.results.record import Record, RunKey

log = logging.getLogger(__name__)

RECORD_SUFFIX = ".json"
PREDICTIONS_SUFFIX = ".predictions.npz"


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

    def record_path(self, key: RunKey) -> Path:
        return self.root / f"{key.slug()}{RECORD_SUFFIX}"

    def predictions_path(self, key: RunKey) -> Path:
        return self.root / f"{key.slug()}{PREDICTIONS_SUFFIX}"

    def write(self, record: Record, predictions: ClipPredictions | None = None) -> Path:
        """Store ``record`` (and its per-clip predictions) atomically; returns the JSON path.

        The stored copy's ``predictions_file`` names the ``.npz`` written here. Without
        ``predictions`` the record may still reference an existing predictions file beside it;
        otherwise a predictions file left by an earlier run with the same key is removed, so a
        record never points at another run's predictions.
        """
        path = self.record_path(record.key)
        npz_path = self.predictions_path(record.key)
        if predictions is not None:
            if len(predictions) != record.metrics.n_test:
                raise ValueError(
                    f"record {record.key.slug()}: {len(predictions)} predictions but metrics.n_test = {record.metrics.n_test}"
                )
            record = dataclasses.replace(record, predictions_file=npz_path.name)
        elif record.predictions_file is not None and not (path.parent / record.predictions_file).is_file():
            raise ValueError(
                f"record {record.key.slug()} references predictions {record.predictions_file!r}, "
                f"which is not in {path.parent}; pass predictions= to write them"
            )
        try:
            text = json.dumps(record.to_json_dict(), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"record {record.key.slug()} is not JSON-serialisable ({error}); "
                "metrics must be Python floats/ints and undefined values None, not NaN"
            ) from None

        path.parent.mkdir(parents=True, exist_ok=True)
        if predictions is not None:
            # a forced re-run: the old record goes first, so that a crash before the new one lands
            # leaves no record (the run is repeated), never the old one over the new predictions
            path.unlink(missing_ok=True)
            _atomic_write(npz_path, lambda f: _save_predictions(f, predictions))
        _atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        if predictions is None and record.predictions_file is None:
            npz_path.unlink(missing_ok=True)
        return path

    def exists(self, key: RunKey) -> bool:
        """True only for a complete, parseable record of ``key``; a corrupt one is logged and absent."""
        path = self.record_path(key)
        if not path.is_file():
            return False
        try:
            self._load(path)
        except CorruptRecordError as error:
            log.warning("ignoring unusable record (the run will be repeated): %s", error)
            return False
        return True

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
    ) -> Iterator[Record]:
        """Every usable record matching the given key fields, in path order; unusable files are logged."""
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
            if wanted_fraction is not None and abs(key.fraction - wanted_fraction) > 1e-9:
                continue
            if system is not None and key.system != system:
                continue
            if profile is not None and key.profile != profile:
                continue
            yield record

    def invalid_records(self) -> list[InvalidRecord]:
        """JSON files in the store that are not usable records (for ``ascbench check``)."""
        invalid = []
        for path in sorted(self.root.rglob(f"*{RECORD_SUFFIX}")):
            try:
                self._load(path)
            except CorruptRecordError as error:
                invalid.append(InvalidRecord(path, error.reason))
        return invalid

    def load_predictions(self, record: Record) -> ClipPredictions:
        """The per-clip predictions a stored record references."""
        if record.predictions_file is None:
            raise FileNotFoundError(f"record {record.key.slug()} was stored without per-clip predictions")
        if Path(record.predictions_file).name != record.predictions_file:
            raise ValueError(f"record {record.key.slug()}: predictions_file {record.predictions_file!r} is not a plain file name")
        path = self.record_path(record.key).parent / record.predictions_file
        try:
            with np.load(path, allow_pickle=False) as data:
                predictions = ClipPredictions(
                    filenames=tuple(data["filenames"].tolist()),
                    labels=data["labels"],
                    scores=data["scores"],
                    scores_are=str(data["scores_are"]),
                )
        except FileNotFoundError:
            raise FileNotFoundError(f"record {record.key.slug()}: predictions file {path} is missing") from None
        except (KeyError, ValueError, OSError) as error:
            raise CorruptRecordError(path, f"unreadable predictions ({error})") from None
        if len(predictions) != record.metrics.n_test:
            raise CorruptRecordError(path, f"{len(predictions)} predictions but the record says n_test = {record.metrics.n_test}")
        return predictions

    def _load(self, path: Path) -> Record:
        try:
            record = Record.from_json_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CorruptRecordError(path, f"not valid JSON (partial write?): {error}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CorruptRecordError(path, f"not a run record: {type(error).__name__}: {error}") from None
        if self.record_path(record.key) != path:
            raise CorruptRecordError(path, f"holds the record of {record.key.slug()}, which belongs elsewhere")
        return record


def _save_predictions(file: IO[bytes], predictions: ClipPredictions) -> None:
    np.savez_compressed(
        file,
        filenames=np.asarray(predictions.filenames, dtype=str),
        labels=np.asarray(predictions.labels, dtype=np.int16),
        scores=np.asarray(predictions.scores, dtype=np.float32),
        scores_are=np.asarray(predictions.scores_are),
    )


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write via a temporary file in the same directory, fsync, then ``os.replace`` into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
