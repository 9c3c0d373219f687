"""The DCASE 2024 Task 1 system output file: one tab-separated row of class scores per clip.

Format, as the official submission validator checks it (toni-heittola/dcase2024_task1_submission_validator,
``main.py`` / ``validators.py``) and the baseline writes it (CPJKU/dcase2024_task1_baseline,
``run_training.py: evaluate``):

- header ``filename  scene_label  airport  bus  ...  tram`` (tab-separated, scenes in the
  baseline's label-encoder order, which is :data:`ascbench.data.layout.SCENES`);
- ``filename`` is the clip's file name without the ``audio/`` folder (``0.wav``): the baseline
  strips it and the validator only looks at the base name, which must end in ``.wav``;
- ``scene_label`` is the arg-max class; the ten scores are numbers (the baseline writes softmax
  probabilities, and so does ascbench);
- every clip exactly once.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from ascbench.data.layout import SCENES

OUTPUT_FIELDS: tuple[str, ...] = ("filename", "scene_label", *SCENES)
EVAL_CLIP_COUNT = 135_730
"""Clips in the DCASE 2024 Task 1 evaluation set (named 0.wav ... 135729.wav), per the validator."""
SCORE_FORMAT = ".9g"
"""Nine significant digits round-trip any float32 exactly, so the arg-max of the written scores
is the arg-max the model computed (ties included)."""


def output_filename(name: str) -> str:
    """``audio/0.wav`` -> ``0.wav``: the file-name column as the baseline writes it."""
    path = PurePosixPath(name)
    return path.name if path.parent.name == "audio" else str(path)


def write_output(path: Path | str, filenames: Sequence[str], probabilities: np.ndarray) -> Path:
    """Write the output file for ``filenames`` (clip names) and their class probabilities [N, 10]."""
    scores = np.asarray(probabilities)
    if scores.shape != (len(filenames), len(SCENES)):
        raise ValueError(f"scores: expected shape [{len(filenames)}, {len(SCENES)}], got {list(scores.shape)}")
    if not np.all(np.isfinite(scores)):
        row = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
        raise ValueError(f"scores of {filenames[row]!r} are not finite: {scores[row].tolist()}")
    names = [output_filename(f) for f in filenames]
    if len(set(names)) != len(names):
        raise ValueError("the same clip name appears twice; the output needs every clip exactly once")
    labels = scores.argmax(axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, delimiter="\t", lineterminator="\n")
        writer.writerow(OUTPUT_FIELDS)
        for name, label, row in zip(names, labels, scores):
            writer.writerow([name, SCENES[label], *(format(float(v), SCORE_FORMAT) for v in row)])
    return path


def check_output(path: Path | str, expected_count: int | None = None) -> list[str]:
    """Problems the official validator would report for this file (empty when it is fine).

    Mirrors the validator's checks: exact header, ``.wav`` names, no duplicate base names,
    known scene labels, numeric scores, field count per row, and the clip count when given.
    """
    path = Path(path)
    problems: list[str] = []
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    if not rows or tuple(rows[0]) != OUTPUT_FIELDS:
        found = " ".join(rows[0]) if rows else "(empty file)"
        return [f"{path}:1: header is {found!r}; expected the tab-separated fields {' '.join(OUTPUT_FIELDS)!r}"]
    seen: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        where = f"{path}:{line}"
        if len(row) != len(OUTPUT_FIELDS):
            problems.append(f"{where}: {len(row)} fields; expected {len(OUTPUT_FIELDS)}")
            continue
        base = PurePosixPath(row[0]).name
        if not base.endswith(".wav"):
            problems.append(f"{where}: file name {row[0]!r} does not end in .wav")
        if base in seen:
            problems.append(f"{where}: duplicate file {row[0]!r}")
        seen.add(base)
        if row[1] not in SCENES:
            problems.append(f"{where}: unknown scene label {row[1]!r}")
        for field, value in zip(OUTPUT_FIELDS[2:], row[2:]):
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"{where}: {field} = {value!r} is not a finite number")
    if expected_count is not None and len(seen) != expected_count:
        problems.append(f"{path}: {len(seen)} clips; expected {expected_count}")
    return problems
