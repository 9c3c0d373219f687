"""The DCASE 2024 Task 1 ``<label>.meta.yaml``: who submits, what the system is, how it scored.

The blocks and field names follow the official submission validator
(toni-heittola/dcase2024_task1_submission_validator, ``main.py``): ``submission`` (label, name,
abbreviation <= 10 characters, authors with lastname/firstname/email/affiliation and exactly one
corresponding author), ``system`` (description with ten fields, complexity, external_datasets,
source_code) and ``results.development_dataset.split_{5,10,25,50,100}``, each with ``overall``,
``class_wise`` (per scene) and ``device_wise`` (a-c, s1-s6) ``accuracy`` and ``logloss``.

Every value comes from a record, the system's frontend, or the user (flags or a small YAML
file); a field ascbench cannot know is written empty with a comment saying what belongs there,
never guessed. Accuracies are written in % as the DCASE tables show them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.metrics import log_loss

from ascbench.data.layout import DEVICES, SCENES, fraction_percent
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.features.frontends import BaselineMel, Frontend, KaldiFbank, RawWaveform
from ascbench.results.record import Record, external_resources, run_options

TASK = "task1"
SPLIT_PERCENTS: tuple[int, ...] = (5, 10, 25, 50, 100)
ABBREVIATION_MAX = 10
DESCRIPTION_FIELDS: tuple[str, ...] = (
    "input_sampling_rate",
    "acoustic_features",
    "data_augmentation",
    "machine_learning_method",
    "external_data_usage",
    "complexity_management",
    "pipeline",
    "framework",
    "split_adaptations",
    "system_adaptations",
)
BYTES_PER_PARAMETER = {"float32": 4, "float16": 2}
Comments = dict[tuple, str]


class SubmissionConfigError(ValueError):
    """A user config file or flag value that does not describe a submission; names the file/flag."""


@dataclass
class Affiliation:
    abbreviation: str = ""
    institute: str = ""
    department: str = ""
    location: str = ""


@dataclass
class Author:
    lastname: str = ""
    firstname: str = ""
    email: str = ""
    corresponding: bool = False
    affiliation: Affiliation = field(default_factory=Affiliation)


@dataclass
class SubmissionInfo:
    """What only the submitter knows; everything else is read from records."""

    label: str = ""
    index: int = 1
    """Submission index 1-4 (the last part of the label)."""
    name: str = ""
    abbreviation: str = ""
    authors: list[Author] = field(default_factory=list)
    source_code: str = ""
    external_datasets: list[dict[str, Any]] | None = None
    description: dict[str, str] = field(default_factory=dict)
    """Values for ``system.description`` fields (data_augmentation, machine_learning_method ...)."""

    def corresponding(self) -> Author | None:
        marked = [a for a in self.authors if a.corresponding]
        return marked[0] if marked else (self.authors[0] if len(self.authors) == 1 else None)

    def resolved_label(self) -> str:
        """``<Lastname>_<INSTITUTE>_task1_<index>``: given, or formed from the corresponding author."""
        label = self.label
        if not label:
            author = self.corresponding()
            if author is None or not author.lastname or not author.affiliation.abbreviation:
                raise SubmissionConfigError(
                    "no submission label: give --label Lastname_INST_task1_1, or the corresponding author's "
                    "--author-lastname and --author-abbreviation (institute abbreviation) to form it"
                )
            label = f"{author.lastname}_{author.affiliation.abbreviation}_{TASK}_{self.index}"
        parts = label.split("_")
        if len(parts) != 4 or parts[2] != TASK or parts[3] not in {"1", "2", "3", "4"} or any(" " in p or not p for p in parts):
            raise SubmissionConfigError(
                f"submission label {label!r}: expected [Lastname]_[INSTITUTE]_task1_[1-4] (four parts joined by '_', no spaces)"
            )
        return label


def load_submission_config(path: Path | str) -> SubmissionInfo:
    """Read a user YAML file with the keys of :class:`SubmissionInfo` (authors as a list of mappings)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SubmissionConfigError(f"{path}: cannot be read as YAML ({error})") from None
    if not isinstance(data, Mapping):
        raise SubmissionConfigError(f"{path}: expected a mapping of submission fields, found {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(SubmissionInfo)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SubmissionConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    values = dict(data)
    try:
        values["authors"] = [_author(a) for a in data.get("authors") or []]
        description = data.get("description") or {}
        bad = sorted(set(description) - set(DESCRIPTION_FIELDS))
        if bad:
            raise SubmissionConfigError(f"description: unknown field(s) {', '.join(bad)}; expected some of {', '.join(DESCRIPTION_FIELDS)}")
        values["description"] = {k: str(v) for k, v in description.items()}
        values["index"] = int(data.get("index", 1))
        return SubmissionInfo(**values)
    except (TypeError, ValueError, AttributeError) as error:
        raise SubmissionConfigError(f"{path}: {error}") from None


def _author(data: Mapping[str, Any]) -> Author:
    values = dict(data)
    affiliation = values.pop("affiliation", None) or {}
    if isinstance(affiliation, str):  # a bare institute name is accepted
        affiliation = {"institute": affiliation}
    return Author(**values, affiliation=Affiliation(**affiliation))


def check_authors(info: SubmissionInfo) -> list[str]:
    """What the validator would reject about the authors (empty fields are the user's to fill)."""
    if not info.authors:
        return ["no authors given (--author-* flags or 'authors' in --config); the meta file lists none"]
    marked = sum(a.corresponding for a in info.authors)
    if len(info.authors) > 1 and marked != 1:
        return [f"{marked} authors marked corresponding; DCASE needs exactly one"]
    return []


# ---------------------------------------------------------------------------------------------
# system block


def describe_frontend(frontend: Frontend | None) -> tuple[str, str]:
    """(input_sampling_rate, acoustic_features) as the DCASE tables phrase them."""
    if frontend is None:
        return "", ""
    rate = f"{getattr(frontend, 'sample_rate', 0) / 1000:g}kHz" if hasattr(frontend, "sample_rate") else ""
    if isinstance(frontend, BaselineMel):
        return rate, f"log-mel energies ({frontend.n_mels} bands, window {frontend.win_length}, hop {frontend.hop_length})"
    if isinstance(frontend, KaldiFbank):
        return rate, f"log-mel energies (Kaldi fbank, {frontend.num_mel_bins} bins)"
    if isinstance(frontend, RawWaveform):
        return rate, "raw waveform"
    return rate, frontend.name


def system_block(
    records: Mapping[int, Record],
    frontend: Frontend | None,
    info: SubmissionInfo,
    weights: str,
) -> tuple[dict[str, Any], Comments]:
    """``system``: description (what ascbench knows + the user's fields), complexity, data, code."""
    rate, features = describe_frontend(frontend)
    known = {"input_sampling_rate": rate, "acoustic_features": features, "framework": "pytorch"}
    if weights == "float16":
        known["complexity_management"] = "16-bit float parameters"
    description = {name: info.description.get(name, known.get(name, "")) for name in DESCRIPTION_FIELDS}
    first = next(iter(records.values()))
    teachers = sorted({str(t) for r in records.values() if external_resources(r) and (t := run_options(r).get("teacher"))})
    # the file's name, not where it sits on this machine: the package is uploaded
    teachers = [Path(t.split(":", 1)[1]).name + (" (--teacher-checkpoint)" if t.startswith("checkpoint:") else " (--teacher logits:)") for t in teachers]
    method = f"ascbench system: {first.system.get('description', '')}".strip()
    if teachers:  # the description names both kinds of teacher; say which this one was
        method += f"; its teacher was loaded from {', '.join(teachers)}, not pre-trained by ascbench"
    comments: Comments = {
        ("system", "description", "input_sampling_rate"): "rate the frontend resamples the 44.1 kHz clips to",
        ("system", "description", "machine_learning_method"): method,
        ("system", "description", "data_augmentation"): "see the records' provenance.config (recipe_config) for what the recipe used",
    }
    for name in DESCRIPTION_FIELDS:
        if not description[name] and (("system", "description", name) not in comments):
            comments[("system", "description", name)] = "not known to ascbench: fill in"
    complexity, complexity_comment = complexity_block(records, weights)
    comments[("system", "complexity")] = complexity_comment
    block: dict[str, Any] = {
        "description": description,
        "complexity": complexity,
        "external_datasets": info.external_datasets,
        "source_code": info.source_code,
    }
    if info.external_datasets is None:
        known_use = (
            f"the teacher was loaded from {', '.join(teachers)}: list the data it was pre-trained on"
            if teachers else "ascbench cannot tell, so it is left empty"
        )
        comments[("system", "external_datasets")] = (
            "list of {name, url, total_audio_length} for every external data set used (pre-trained teachers' data too); " + known_use
        )
    if not info.source_code:
        comments[("system", "source_code")] = "URL of the source code: fill in"
    return block, comments


def complexity_block(records: Mapping[int, Record], weights: str) -> tuple[dict[str, int], str]:
    """Parameters, MACs and model size (bytes = parameters x bytes per stored parameter).

    One system may in principle differ per split; the block has one value per field, so the
    largest (the one the limits bind) is written and each split's figures go in the comment.
    """
    per_split = {pct: (r.complexity.params, r.complexity.macs) for pct, r in sorted(records.items())}
    params = max(p for p, _ in per_split.values())
    macs = max(m for _, m in per_split.values())
    size = params * BYTES_PER_PARAMETER[weights]
    first = next(iter(records.values())).complexity
    lines = [
        f"total_model_size: bytes of the parameters as stored for these outputs ({weights}: "
        f"{BYTES_PER_PARAMETER[weights]} B each); DCASE limit 128 kB, 30 M MACs per 1-s clip",
    ]
    if first.int8_artifact_bytes is not None:
        lines.append(f"int8 alternative measured by ascbench: {first.param_memory_kb_int8:g} kB parameters, artifact file {first.int8_artifact_bytes} B")
    if len(set(per_split.values())) > 1:
        lines.append("per split (params, MACs): " + ", ".join(f"split_{k}: {p}, {m}" for k, (p, m) in per_split.items()))
    return {"total_model_size": size, "total_parameters": params, "macs": macs}, "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# results block


def development_results(record: Record, predictions: ClipPredictions | None) -> tuple[dict[str, Any], str]:
    """One split's ``overall``/``class_wise``/``device_wise`` accuracy (%) and log loss.

    With the run's per-clip predictions everything follows the baseline's definitions:
    class-wise accuracy = recall of the class, device-wise accuracy = fraction of the device's
    clips classified correctly, log loss = mean cross-entropy of the clips. Without them the
    record's metrics are used (its per-device figure is a macro class-wise accuracy) and the
    per-class/per-device log losses are left empty.
    """
    metrics = record.metrics
    overall = {"accuracy": _pct(metrics.accuracy), "logloss": _round(metrics.log_loss)}
    if predictions is None:
        class_wise = {s: {"accuracy": _pct(metrics.per_class.get(s)), "logloss": None} for s in SCENES}
        device_wise = {d: {"accuracy": _pct(metrics.per_device.get(d)), "logloss": None} for d in DEVICES}
        note = (
            "from the record's metrics (no per-clip predictions stored): device-wise accuracy is the macro "
            "class-wise accuracy of the device's clips; per-class/per-device log loss unknown"
        )
        return {"overall": overall, "class_wise": class_wise, "device_wise": device_wise}, note
    probabilities = predictions.probabilities()
    labels = predictions.labels
    correct = probabilities.argmax(axis=1) == labels
    devices = np.asarray(predictions.devices)
    class_wise = {s: _group(correct, labels, probabilities, labels == i) for i, s in enumerate(SCENES)}
    device_wise = {d: _group(correct, labels, probabilities, devices == d) for d in DEVICES}
    note = f"development-test split of {record.key.dataset}, seed {record.key.seed}, from the run's per-clip predictions (float32 weights)"
    return {"overall": overall, "class_wise": class_wise, "device_wise": device_wise}, note


def _group(correct: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
    if not mask.any():
        return {"accuracy": None, "logloss": None}
    loss = log_loss(labels[mask], probabilities[mask], labels=list(range(len(SCENES))))
    return {"accuracy": _pct(float(correct[mask].mean())), "logloss": _round(loss)}


def _pct(value: float | None) -> float | None:
    return None if value is None else round(float(value) * 100.0, 2)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def results_block(
    records: Mapping[int, Record], predictions: Mapping[int, ClipPredictions | None]
) -> tuple[dict[str, Any], Comments]:
    """``results.development_dataset`` with all five split keys; a split without a record is null."""
    splits: dict[str, Any] = {}
    comments: Comments = {}
    for pct in SPLIT_PERCENTS:
        key = f"split_{pct}"
        if pct not in records:
            splits[key] = None
            comments[("results", "development_dataset", key)] = "no ascbench record for this split: run it, then export again"
            continue
        splits[key], comments[("results", "development_dataset", key)] = development_results(records[pct], predictions.get(pct))
    return {"development_dataset": splits}, comments


def submission_block(info: SubmissionInfo, label: str, system_name: str) -> tuple[dict[str, Any], Comments]:
    name = info.name or system_name
    abbreviation = info.abbreviation or (system_name if len(system_name) <= ABBREVIATION_MAX else "")
    comments: Comments = {("submission", "label"): "[Lastname]_[INSTITUTE]_task1_[1-4]"}
    if not abbreviation:
        comments[("submission", "abbreviation")] = f"at most {ABBREVIATION_MAX} characters: fill in (--abbreviation)"
    if not info.authors:
        comments[("submission", "authors")] = "fill in: lastname, firstname, email, corresponding (exactly one), affiliation"
    authors = [dataclasses.asdict(a) for a in info.authors]
    if len(authors) == 1:
        authors[0]["corresponding"] = True
    return {"label": label, "name": name, "abbreviation": abbreviation, "authors": authors}, comments


def build_meta(
    info: SubmissionInfo,
    label: str,
    records: Mapping[int, Record],
    predictions: Mapping[int, ClipPredictions | None],
    frontend: Frontend | None,
    weights: str,
) -> tuple[dict[str, Any], Comments]:
    """The whole meta document (plain data) and the comments that go above its keys."""
    if not records:
        raise ValueError("build_meta needs at least one record")
    system_name = next(iter(records.values())).key.system
    submission, c1 = submission_block(info, label, system_name)
    system, c2 = system_block(records, frontend, info, weights)
    results, c3 = results_block(records, predictions)
    return {"submission": submission, "system": system, "results": results}, {**c1, **c2, **c3}


def split_percent(record: Record) -> int:
    return fraction_percent(record.key.fraction)


# ---------------------------------------------------------------------------------------------
# YAML with comments (PyYAML drops comments, so the layout is written here and parsed back in tests)


def dump_commented(data: Mapping[str, Any], comments: Comments, header: str = "") -> str:
    """Block-style YAML of ``data`` with ``comments[path]`` as ``#`` lines above each key."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _emit(data, (), 0, lines, comments)
    return "\n".join(lines) + "\n"


def _emit(node: Mapping[str, Any], path: tuple, depth: int, lines: list[str], comments: Comments) -> None:
    pad = "  " * depth
    for key, value in node.items():
        here = path + (key,)
        lines.extend(f"{pad}# {c}".rstrip() for c in comments.get(here, "").splitlines())
        if isinstance(value, Mapping) and value:
            lines.append(f"{pad}{key}:")
            _emit(value, here, depth + 1, lines, comments)
        elif isinstance(value, list) and value:
            lines.append(f"{pad}{key}:")
            for item in value:
                if isinstance(item, Mapping) and item:
                    block: list[str] = []
                    _emit(item, here, depth + 2, block, comments)
                    block[0] = f"{pad}  - {block[0].lstrip()}"
                    lines.extend(block)
                else:
                    lines.append(f"{pad}  - {_scalar(item)}")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.removesuffix("\n...\n").strip()  # PyYAML ends a bare scalar document with "..."
