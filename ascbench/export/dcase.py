"""``ascbench export dcase``: a DCASE 2024 Task 1 submission package from the results store.

One system, one run per split (5/10/25/50/100 %). The package is laid out as the official
validator reads a zip (toni-heittola/dcase2024_task1_submission_validator, ``main.py``)::

    task1/<label>/<label>.meta.yaml
    task1/<label>/<label>.output.split_5.csv   ... split_100.csv

``<label>.zip`` holds exactly those files; a ``README.md`` beside it (not in the zip) says where
the outputs came from. Outputs are either the evaluation clips of ``--eval-audio``, predicted with
each split's trained model, or, without it, the development-test predictions stored with each
record: those are over test.csv, not the evaluation set, and the package says so at the top of
the meta file and in the README, because they are not a valid challenge output.
"""

from __future__ import annotations

import re
import shlex
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console

from ascbench.data.layout import SCENES
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.export.meta import (
    SPLIT_PERCENTS,
    SubmissionInfo,
    build_meta,
    check_authors,
    dump_commented,
    split_percent,
)
from ascbench.export.output import EVAL_CLIP_COUNT, check_output, write_output
from ascbench.export.predict import list_audio, predict_files, prepare_model
from ascbench.features.frontends import FRONTENDS, Frontend
from ascbench.paths import resolve_home
from ascbench.results.record import Record, audio_outside_split
from ascbench.results.store import ResultsStore
from ascbench.systems.checkpoint import load_trained_model
from ascbench.systems.spec import SystemSpec

Source = Literal["evaluation", "development-test"]
REAL_DATASET = "tau22"


class ExportError(ValueError):
    """The store does not hold what a package needs; the message says what to run or pass."""


@dataclass
class ExportResult:
    out_dir: Path
    label: str
    source: Source
    zip_path: Path
    meta_path: Path
    outputs: dict[int, Path]
    seeds: dict[int, int]
    missing_splits: list[int]
    warnings: list[str] = field(default_factory=list)


def rerun_command(record: Record, fractions: str) -> str:
    """The command that recorded ``record``, for other splits: a run on a local teacher, an
    ablation row or a pool run is named by its options, not by ``--models`` alone."""
    name = str(record.system.get("name") or record.key.system)
    command = [str(part) for part in record.provenance.get("command") or ()]
    if command[:2] not in (["ascbench", "run"], ["ascbench", "ablation"]):
        return f"ascbench run --models {name} --fraction {fractions}"
    kept, skip = [], False
    for part in command:
        if skip:
            skip = False
        elif part in ("--fraction", "-f", "--seeds", "--models", "-m"):
            skip = True
        elif part != "--force" and not part.startswith(("--fraction=", "--seeds=", "--models=")):
            kept.append(part)
    models = ["--models", name] if command[1] == "run" else []
    return shlex.join([*kept, *models, "--fraction", fractions, "--seeds", str(record.key.seed)])


def _run_data(name: str | None) -> str | None:
    """What ``ascbench run --data`` takes for the records' data set name: synth-tau22 sets by name,
    any other by its folder."""
    if name is None:
        return None
    return name if name.startswith("synth-tau22") else "<its folder>"


def select_records(
    store: ResultsStore,
    system: str,
    *,
    data: str | None = None,
    profile: str | None = None,
    seed: int | None = None,
    data_fingerprint: str | None = None,
) -> tuple[dict[int, Record], list[str]]:
    """One record per split present (the given seed, else the lowest), and warnings.

    Records of several data sets or profiles are never mixed: the user must pick one.
    """
    records = list(store.iter_records(dataset=data, system=system, profile=profile, fingerprint=data_fingerprint))
    filters = "".join(f", {k} {v!r}" for k, v in (("data set", data), ("fingerprint", data_fingerprint), ("profile", profile)) if v is not None)
    if not records:
        where = "".join(f" {flag} {value}" for flag, value in (("--data", _run_data(data)), ("--profile", profile)) if value)
        raise ExportError(
            f"no records of system {system!r}{filters} in {store.root}; "
            f"run `ascbench run --models {system} --fraction all{where}` first if it is a registered system; a row "
            "with run options (an ablation, a teacher) is run with those options (`ascbench leaderboard` shows the recorded names)"
        )
    for attribute, flag in (("dataset", "--data"), ("profile", "--profile")):
        values = sorted({getattr(r.key, attribute) for r in records})
        if len(values) > 1:
            raise ExportError(f"records of {system!r} exist for several {attribute}s ({', '.join(values)}); choose one with {flag}")
    by_split: dict[int, list[Record]] = {}
    for record in records:
        by_split.setdefault(split_percent(record), []).append(record)
    chosen: dict[int, Record] = {}
    warnings: list[str] = []
    for pct, group in sorted(by_split.items()):
        seeds = sorted(r.key.seed for r in group)
        if seed is None:
            chosen[pct] = min(group, key=lambda r: r.key.seed)
            if len(seeds) > 1:
                warnings.append(f"split_{pct}: seeds {seeds} recorded; exporting seed {seeds[0]} (choose with --seed)")
        elif seed in seeds:
            chosen[pct] = next(r for r in group if r.key.seed == seed)
        else:
            warnings.append(f"split_{pct}: no run with seed {seed} (recorded seeds: {seeds}); split left out")
    missing = [p for p in SPLIT_PERCENTS if p not in chosen]
    if missing:
        fractions = ",".join(str(p) for p in missing)
        warnings.append(
            "missing split(s) " + ", ".join(f"split_{p}" for p in missing)
            + f": DCASE asks for all five; run `{rerun_command(next(iter(chosen.values()), records[0]), fractions)}`"
        )
    if not chosen:
        raise ExportError(f"no record of {system!r} matches seed {seed}{filters}")
    return chosen, warnings


def export_dcase(
    system: str,
    out_dir: Path | str,
    info: SubmissionInfo,
    *,
    spec: SystemSpec | None = None,
    home: Path | str | None = None,
    data: str | None = None,
    data_fingerprint: str | None = None,
    profile: str | None = None,
    seed: int | None = None,
    eval_audio: Path | str | None = None,
    weights: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
    console: Console | None = None,
    warn: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write the package for ``system`` into ``out_dir``; see the module docstring.

    ``weights`` (float16 | float32) is the precision of the parameters the outputs come from;
    evaluation outputs default to float16 (how the DCASE 2024 baseline deploys), stored
    development-test predictions were made with float32 weights and can only be float32.
    """
    home = resolve_home(home)
    store = ResultsStore(home)
    label = info.resolved_label()
    records, warnings = select_records(store, system, data=data, profile=profile, seed=seed, data_fingerprint=data_fingerprint)
    warnings += check_authors(info)
    for pct, record in sorted(records.items()):
        if outside := audio_outside_split(record):
            warnings.append(f"split_{pct}: trained with development audio outside the split ({', '.join(outside)}); DCASE 2024 allows only "
                            "the split and listed external resources (a --teacher-checkpoint): not a valid challenge submission")  # fmt: skip
    dataset = next(iter(records.values())).key.dataset
    if dataset != REAL_DATASET:
        warnings.append(f"records are on data set {dataset!r}, not the TAU22 development set: the results are not DCASE results")
    source: Source = "evaluation" if eval_audio is not None else "development-test"
    if source == "development-test":
        if weights not in (None, "float32"):
            raise ExportError("stored development-test predictions come from float32 weights; pass --eval-audio to predict with float16 weights")
        weights = "float32"
        warnings.append("no --eval-audio: the outputs are development-test predictions, not evaluation-set outputs; not a valid challenge submission")
    weights = weights or "float16"

    package = Path(out_dir) / "task1" / label
    package.mkdir(parents=True, exist_ok=True)
    for stale in package.glob(f"{label}.output.split_*.csv"):
        stale.unlink()
    predictions = {pct: _stored_predictions(store, r) for pct, r in records.items()}
    outputs: dict[int, Path] = {}
    if source == "evaluation":
        if spec is None:
            raise ExportError(f"predicting the evaluation clips needs system {system!r} to be registered")
        files = list_audio(eval_audio)
        warnings += _check_eval_names(files)
        for pct, record in records.items():
            model = prepare_model(load_trained_model(spec, _model_path(home, record)), weights)  # type: ignore[arg-type]
            result = predict_files(model, spec, files, batch_size=batch_size, device=device, progress=progress, console=console)
            outputs[pct] = write_output(package / f"{label}.output.split_{pct}.csv", result.names, result.probabilities)
    else:
        for pct, record in records.items():
            stored = predictions[pct]
            if stored is None:
                raise ExportError(f"record {record.key.slug()} has no stored per-clip predictions; rerun it with --force")
            outputs[pct] = write_output(package / f"{label}.output.split_{pct}.csv", stored.filenames, stored.probabilities())
    for path in outputs.values():
        problems = check_output(path)
        if problems:
            raise ExportError(f"written output fails the DCASE checks: {problems[0]} ({len(problems)} problem(s))")

    frontend = spec.frontend if spec is not None else _frontend_of(next(iter(records.values())))
    meta, comments = build_meta(info, label, records, predictions, frontend, weights)
    meta_path = package / f"{label}.meta.yaml"
    meta_path.write_text(dump_commented(meta, comments, _header(source, records, eval_audio, weights)), encoding="utf-8")

    zip_path = Path(out_dir) / f"{label}.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in [meta_path, *(outputs[p] for p in sorted(outputs))]:
            archive.write(path, arcname=path.relative_to(out_dir).as_posix())
    seeds = {pct: r.key.seed for pct, r in records.items()}
    missing = [p for p in SPLIT_PERCENTS if p not in records]
    (Path(out_dir) / "README.md").write_text(_readme(label, source, records, eval_audio, weights, warnings), encoding="utf-8")
    for message in warnings:
        if warn is not None:
            warn(message)
    return ExportResult(Path(out_dir), label, source, zip_path, meta_path, outputs, seeds, missing, warnings)


def _stored_predictions(store: ResultsStore, record: Record) -> ClipPredictions | None:
    if record.predictions_file is None:
        return None
    return store.load_predictions(record)


def _model_path(home: Path, record: Record) -> Path:
    relative = record.artifacts.get("model")
    if not relative:
        raise ExportError(f"record {record.key.slug()} names no trained model file (artifacts.model); rerun it with --force")
    path = home / relative
    if not path.is_file():
        raise ExportError(f"record {record.key.slug()}: its model file {path} is missing; rerun it with --force")
    return path


def _frontend_of(record: Record) -> Frontend | None:
    return FRONTENDS.get(str(record.system.get("frontend", "")))


def _check_eval_names(files: list[Path]) -> list[str]:
    """The DCASE 2024 evaluation set is 0.wav ... 135729.wav; say so when the folder differs."""
    warnings = []
    odd = [p.name for p in files if not p.stem.isdigit()]
    if odd:
        warnings.append(f"{len(odd)} evaluation file name(s) are not numbers (e.g. {odd[0]}); the DCASE evaluation set names clips 0.wav ... {EVAL_CLIP_COUNT - 1}.wav")
    if len(files) != EVAL_CLIP_COUNT:
        warnings.append(f"{len(files)} evaluation clips; the DCASE 2024 evaluation set has {EVAL_CLIP_COUNT}")
    return warnings


def _source_line(source: Source, records: dict[int, Record], eval_audio: Path | str | None, weights: str) -> str:
    if source == "evaluation":
        folder = Path(str(eval_audio)).name  # its name only: the package is uploaded, the local path is nobody's business
        return f"System outputs: the evaluation clips of folder '{folder}', predicted by ascbench with each split's trained model ({weights} weights)."
    dataset = next(iter(records.values())).key.dataset
    return (
        f"System outputs: DEVELOPMENT-TEST predictions (test.csv of {dataset}) stored with each run, NOT the "
        "DCASE evaluation set. This package is a format check, not a valid challenge submission."
    )


def _header(source: Source, records: dict[int, Record], eval_audio: Path | str | None, weights: str) -> str:
    runs = ", ".join(f"split_{p}: {r.key.slug()}" for p, r in sorted(records.items()))
    dataset = next(iter(records.values())).key.dataset
    data_line = "" if dataset == REAL_DATASET else f"Development results are on {dataset!r}, not TAU22: they are not DCASE results.\n"
    return (
        "DCASE 2024 Task 1 system meta information, written by `ascbench export dcase`.\n"
        f"{_source_line(source, records, eval_audio, weights)}\n"
        f"{data_line}"
        f"Runs: {runs}\n"
        "Empty fields are ones ascbench cannot know; fill them in before submitting."
    )


_LOCAL_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/'\"`]+/)+([^\s/'\"`]+)")


def _without_local_paths(text: str) -> str:
    """``/home/jane/models/t.pt`` → ``<local>/t.pt``: the package folder is shared with co-authors
    and organizers; where its inputs sit on this machine is not theirs to see."""
    return _LOCAL_PATH.sub(r"<local>/\1", text)


def _readme(label: str, source: Source, records: dict[int, Record], eval_audio, weights: str, warnings: list[str]) -> str:
    rows = "\n".join(
        f"| split_{p} | {r.key.seed} | {r.metrics.accuracy * 100:.2f} | `{r.key.slug()}` |" for p, r in sorted(records.items())
    )
    notes = "\n".join(f"- {_without_local_paths(w)}" for w in warnings) or "- none"
    return (
        f"# DCASE 2024 Task 1 package `{label}`\n\n"
        f"{_source_line(source, records, eval_audio, weights)}\n\n"
        f"Upload `{label}.zip` (it holds `task1/{label}/`); add the technical report (PDF), which ascbench does not write.\n"
        f"Class order of the score columns: {', '.join(SCENES)}; scores are softmax probabilities.\n\n"
        "| split | seed | dev-test accuracy (%) | record |\n|---|---|---|---|\n"
        f"{rows}\n\n## Warnings\n\n{notes}\n"
    )

