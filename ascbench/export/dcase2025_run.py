"""``ascbench export dcase2025``: the inference package of one recorded ``dcase2025`` run.

The run's record names every model it shipped (``model`` is its general model, ``model@<device>``
the fine-tuned ones) and holds each model's measured complexity in ``device_specific["models"]``;
the package is written from exactly those files and figures (:mod:`ascbench.export.dcase2025`), so
the package's ``predict`` computes what the record's predictions hold. A record whose model files
are gone or changed cannot be exported: the message says which run to redo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ascbench.data.layout import SCENES
from ascbench.export.dcase import REAL_DATASET, ExportError
from ascbench.export.dcase2025 import GENERAL, TRAINING_DEVICES, PackageName, package_name, write_inference_package
from ascbench.export.predict import WeightPrecision
from ascbench.paths import resolve_home
from ascbench.results.record import Record, audio_outside_split
from ascbench.results.store import ResultsStore
from ascbench.systems.checkpoint import load_trained_model
from ascbench.systems.spec import SystemSpec

TASK = "dcase2025"


@dataclass(frozen=True)
class PackageExport:
    """What ``export dcase2025`` wrote, and what the user must know about it."""

    project: Path
    """The pip-installable folder ``<Lastname>_<INST>_task1``."""
    names: PackageName
    record: Record
    device_models: tuple[str, ...]
    warnings: list[str]


def split_label(label: str) -> tuple[str, str, int]:
    """``Schmid_CPJKU_task1_2`` → (``Schmid``, ``CPJKU``, 2); the parts are validated by
    :func:`ascbench.export.dcase2025.package_name`."""
    parts = label.split("_")
    if len(parts) != 4 or parts[2] != "task1" or not parts[3].isdigit():
        raise ExportError(f"submission label {label!r}: expected [Lastname]_[INSTITUTE]_task1_[1-4], e.g. Schmid_CPJKU_task1_1")
    return parts[0], parts[1], int(parts[3])


def select_run(
    store: ResultsStore, system: str, *, data: str | None, profile: str | None, seed: int | None, data_fingerprint: str | None = None
) -> tuple[Record, list[str]]:
    """The one ``dcase2025`` record to package: of ``seed``, else the lowest seed recorded.

    Records of several data sets or profiles are never picked between silently."""
    records = list(store.iter_records(dataset=data, system=system, profile=profile, task=TASK, fingerprint=data_fingerprint))
    if not records:
        flags = "".join(f" --{flag} {value}" for flag, value in (("data", data), ("profile", profile)) if value)
        raise ExportError(f"no dcase2025 record of system {system!r} in {store.root}; run "
                          f"`ascbench run --task dcase2025 --models {system}{flags}` first")  # fmt: skip
    for attribute, flag in (("dataset", "--data"), ("profile", "--profile")):
        values = sorted({getattr(r.key, attribute) for r in records})
        if len(values) > 1:
            raise ExportError(f"dcase2025 records of {system!r} exist for several {attribute}s ({', '.join(values)}); choose one with {flag}")
    seeds = sorted(r.key.seed for r in records)
    warnings = []
    if seed is None:
        seed = seeds[0]
        if len(seeds) > 1:
            warnings.append(f"seeds {seeds} recorded; exporting seed {seed} (choose with --seed)")
    elif seed not in seeds:
        raise ExportError(f"no dcase2025 record of {system!r} with seed {seed} (recorded seeds: {seeds})")
    return next(r for r in records if r.key.seed == seed), warnings


def recorded_models(spec: SystemSpec, record: Record, home: Path) -> dict[str, nn.Module]:
    """The general model and each device's model, from the files the record names."""
    models: dict[str, nn.Module] = {}
    for name in (GENERAL, *TRAINING_DEVICES):
        relative = record.artifacts.get("model" if name == GENERAL else f"model@{name}")
        if relative is None:
            if name == GENERAL:
                raise ExportError(f"record {record.key.slug()} names no general model file; rerun it with --force")
            continue
        path = home / relative
        if not path.is_file():
            raise ExportError(f"record {record.key.slug()}: its {name} model file {path} is missing; rerun it with --force")
        models[name] = load_trained_model(spec, path)
    return models


def complexity_figures(record: Record, models: dict[str, nn.Module]) -> dict[str, dict[str, int]]:
    """MACs and parameters per shipped model as the run measured them; parameter bytes at 16 bits
    per parameter, the DCASE convention (the package restates them at the precision it ships)."""
    measured = (record.device_specific or {}).get("models", {})
    figures = {}
    for name in models:
        entry = measured.get(name)
        if not entry:
            raise ExportError(f"record {record.key.slug()} holds no complexity figures for its {name} model; rerun it with --force")
        figures[name] = {"macs": int(entry["macs"]), "params": int(entry["params"]), "param_bytes": int(entry["params"]) * 2}
    return figures


def accuracy_document(record: Record) -> dict[str, object]:
    """The development-test figures the run recorded, with the data set they were measured on."""
    specific = record.device_specific or {}
    return {
        "dataset": record.key.dataset,
        "dataset_fingerprint": record.key.dataset_fingerprint,
        "is_tau22_development_set": record.key.dataset == REAL_DATASET,
        "split": f"split{round(record.key.fraction * 100)}",
        "seed": record.key.seed,
        "profile": record.key.profile,
        "macro_accuracy": record.metrics.accuracy,
        "per_device": dict(record.metrics.per_device),
        "per_class": dict(record.metrics.per_class),
        "log_loss": record.metrics.log_loss,
        "groups": specific.get("groups", {}),
        "general_model": specific.get("general", {}),
        "delta_vs_general": specific.get("delta_vs_general", {}),
    }


def provenance(record: Record) -> dict[str, object]:
    """Where the package came from, without anything local to the exporting machine."""
    source = record.provenance
    return {
        "run": record.key.slug(),
        "record_checksum": record.checksum,
        "predictions_sha256": record.predictions_sha256,
        "identity": dict(record.identity),
        "ascbench_version": source.get("ascbench_version"),
        "git_commit": source.get("git_commit"),
        "git_dirty": source.get("git_dirty"),
    }


def export_dcase2025(
    system: str,
    out_dir: Path | str,
    *,
    label: str,
    spec: SystemSpec,
    home: Path | str | None = None,
    data: str | None = None,
    data_fingerprint: str | None = None,
    profile: str | None = None,
    seed: int | None = None,
    weights: WeightPrecision = "float16",
) -> PackageExport:
    """Write the inference package of ``system``'s ``dcase2025`` run into ``out_dir``."""
    lastname, institute, index = split_label(label)
    names = package_name(lastname, institute, index)
    home = resolve_home(home)
    store = ResultsStore(home)
    record, warnings = select_run(store, system, data=data, profile=profile, seed=seed, data_fingerprint=data_fingerprint)
    if record.key.dataset != REAL_DATASET:
        warnings.append(f"the run is on data set {record.key.dataset!r}, not the TAU22 development set: test_accuracy.json is no DCASE result")
    if outside := audio_outside_split(record):
        warnings.append(f"trained with development audio outside split25 ({', '.join(outside)}): DCASE 2025 does not allow it")
    models = recorded_models(spec, record, home)
    project = write_inference_package(
        out_dir,
        lastname=lastname,
        institute=institute,
        index=index,
        spec=spec,
        general=models[GENERAL],
        device_models={d: m for d, m in models.items() if d != GENERAL},
        class_names=SCENES,
        complexity=complexity_figures(record, models),
        test_accuracy=accuracy_document(record),
        weights=weights,
        provenance=provenance(record),
    )
    return PackageExport(project, names, record, tuple(d for d in models if d != GENERAL), warnings)
