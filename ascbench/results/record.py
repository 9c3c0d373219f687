"""The run record: one JSON document per (system, data set, fraction, seed, profile).

Modelled on lm-evaluation-harness result files: the numbers and everything needed to know where
they came from. Records are the only source of leaderboards. Units are fixed here so nobody has
to guess: accuracies are fractions in [0, 1]; ``attenuation_pct`` is (seen - unseen) / seen x 100;
``attenuation_points`` is (seen - unseen) x 100; sizes are bytes unless the name says kB
(1 kB = 1,000 B).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ascbench.ablation import TEACHER_TERMS
from ascbench.tasks import DEFAULT_TASK

SCHEMA = "ascbench.record/1"


@dataclass(frozen=True)
class RunKey:
    """What makes two runs the same run (a record with this key is not repeated)."""

    system: str
    dataset: str
    dataset_fingerprint: str
    fraction: float
    seed: int
    profile: str
    task: str = DEFAULT_TASK
    """The challenge task whose rules the run follows (:mod:`ascbench.tasks`); records made
    before tasks existed are ``dcase2024`` runs."""

    def slug(self) -> str:
        """A file-system-safe relative path for this run's record; a ``dcase2024`` run keeps the
        path it had before tasks existed, any other task's runs live under ``task-<name>/``."""
        pct = int(round(self.fraction * 100))
        task = "" if self.task == DEFAULT_TASK else f"task-{self.task}/"
        return f"{self.dataset}-{self.dataset_fingerprint}/{task}{self.system}/split{pct}/{self.profile}/seed{self.seed}"


@dataclass
class Metrics:
    """Test-set metrics of one run (defined in docs/metrics.md)."""

    accuracy: float
    """Macro class-wise accuracy: the mean over classes of per-class recall (DCASE's ranking metric)."""
    accuracy_ci95: tuple[float, float]
    per_device: dict[str, float | None]
    """Macro class-wise accuracy per device; None for a device with no test clips."""
    per_class: dict[str, float | None]
    """Recall per scene; None for a class with no test clips (left out of every macro mean)."""
    seen_accuracy: float | None
    unseen_accuracy: float | None
    attenuation_pct: float | None
    attenuation_points: float | None
    log_loss: float
    confusion_matrix: list[list[int]]
    """Rows: true class, columns: predicted class, in SCENES order."""
    n_test: int


@dataclass
class Complexity:
    """Complexity of the deployable model for one 1-second clip of its own frontend."""

    params: int
    macs: int
    input_shape: list[int]
    param_memory_kb_int8: float
    param_memory_kb_fp16: float
    int8_artifact_bytes: int | None = None
    int8_agreement: float | None = None
    """Fraction of test clips on which the int8 model predicts the float model's class."""
    within_dcase_limits: bool | None = None
    uncounted_ops: list[str] = field(default_factory=list)
    """Operators the MAC counter could not count (reported, never silently zero)."""


@dataclass
class Record:
    """One run's result; serialised with :meth:`to_json_dict`."""

    key: RunKey
    system: dict[str, Any]
    """name, family, reference, description, frontend."""
    metrics: Metrics
    complexity: Complexity
    timings: dict[str, float]
    """Seconds: train_s, eval_s, total_s (and per-stage entries where a recipe has stages)."""
    provenance: dict[str, Any]
    """ascbench_version, git_commit, git_dirty, python, packages, device, config_hash, config,
    started_utc, finished_utc, command; also hostname and torch_threads. Filled by
    :func:`ascbench.results.provenance.collect` (times: ISO-8601 UTC)."""
    predictions_file: str | None = None
    """Compressed per-clip predictions beside the record (relative name), if written."""
    artifacts: dict[str, str] = field(default_factory=dict)
    """Files the run produced, relative to the ascbench home: ``model`` (trained float weights,
    what ``--checkpoint`` and ``ascbench predict`` load), ``int8`` (the quantized artifact)."""
    notes: dict[str, Any] = field(default_factory=dict)
    """What the recipe wants on record: epochs run, reused teacher stages, teacher accuracy."""
    identity: dict[str, str] = field(default_factory=dict)
    """What decides the run's numbers besides its key, as digests (:mod:`ascbench.runner.identity`):
    ``model`` (architecture and parameter shapes), ``source`` (the plugin's files), ``config`` (the
    recipe options, seed left out) and ``audio`` (the data set's audio bytes). A record whose
    identity differs from the current one is rerun, never reused. Empty in records made before
    ascbench kept identities."""
    predictions_sha256: str | None = None
    """sha256 of the predictions file as written, so a damaged or swapped file is caught on load."""
    checksum: str | None = None
    """sha256 of the rest of the record as written (:func:`record_checksum`): a record edited by
    hand no longer matches it and is reported, never shown. None in records made before."""
    options: dict[str, Any] = field(default_factory=dict)
    """The run's options, whole (:class:`ascbench.recipes.options.RunOptions`): the teacher source,
    ablated components, ... Empty in records made before options were kept; :func:`run_options`
    reads those from their stored config."""
    device_specific: dict[str, Any] = field(default_factory=dict)
    """Runs of a task with device models (``dcase2025``): the general model's run and figures, and
    each device model's training and complexity (:mod:`ascbench.runner.device_specific`). Empty
    for a task with one model."""
    schema: str = SCHEMA

    def to_json_dict(self) -> dict[str, Any]:
        """The stored form. A ``dcase2024`` run's key and a record without device models are
        written as they were before tasks existed, so their files and checksums do not change."""
        data = asdict(self)
        if data["key"]["task"] == DEFAULT_TASK:
            del data["key"]["task"]
        if not data["device_specific"]:
            del data["device_specific"]
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> "Record":
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported record schema {data.get('schema')!r}; expected {SCHEMA!r}")
        metrics = dict(data["metrics"])
        metrics["accuracy_ci95"] = tuple(metrics["accuracy_ci95"])
        return cls(
            key=RunKey(**data["key"]),
            system=data["system"],
            metrics=Metrics(**metrics),
            complexity=Complexity(**data["complexity"]),
            timings=data["timings"],
            provenance=data["provenance"],
            predictions_file=data.get("predictions_file"),
            artifacts=data.get("artifacts", {}),
            notes=data.get("notes", {}),
            identity=data.get("identity", {}),
            predictions_sha256=data.get("predictions_sha256"),
            checksum=data.get("checksum"),
            options=data.get("options", {}),
            device_specific=data.get("device_specific", {}),
            schema=data["schema"],
        )


def record_checksum(record: Record) -> str:
    """sha256 of the record's canonical JSON with ``checksum`` left out.

    Why a checksum rather than recomputing every figure on load: most figures (complexity, int8
    agreement, timings, provenance) cannot be recomputed from the predictions, and a hand edit of
    any of them is as wrong as an edited accuracy."""
    data = record.to_json_dict()
    data.pop("checksum", None)
    if not data.get("options"):  # records written before options were kept were checksummed without them
        data.pop("options", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_options(record: Record) -> dict[str, Any]:
    """The record's run options; for a record made before they were kept, read from its stored
    run config (never from its name): ``ablate``, ``--teacher-checkpoint`` as ``teacher``, ``pool_kd``."""
    if record.options:
        return dict(record.options)
    config = record.provenance.get("config") or {}
    options: dict[str, Any] = {"ablate": list(config.get("ablate") or [])}
    if config.get("teacher_checkpoint"):
        options["teacher"] = f"checkpoint:{config['teacher_checkpoint']}"
    elif record.notes.get("teacher"):
        options["teacher"] = "self-supervised"
    if float(config.get("pool_kd") or 0.0) > 0:
        options["pool_kd"] = float(config["pool_kd"])
    return options


def teacher_kind(record: Record) -> str | None:
    """``self-supervised``, ``checkpoint``, ``logits``, ``runs`` or None: where the run's teacher came from."""
    teacher = run_options(record).get("teacher")
    return str(teacher).split(":", 1)[0] if teacher else None


def external_resources(record: Record) -> list[str]:
    """What a DCASE submission of this run must declare as external resources: a teacher loaded
    from a checkpoint, or teacher logits from a file (both come from outside the data set)."""
    kind = teacher_kind(record)
    config = (record.provenance.get("config") or {}).get("recipe_config") or {}
    distill = config.get("distill") or {}
    if distill and not any(distill.get(term) for term in TEACHER_TERMS):
        return []  # no term read the teacher
    return {"checkpoint": ["teacher checkpoint"], "logits": ["teacher logits file"]}.get(kind or "", [])


def audio_outside_split(record: Record) -> list[str]:
    """How a run used development audio outside its split, which DCASE 2024 Task 1 forbids (a
    system "must only be trained on the specified subset and the explicitly allowed external
    resources"): a teacher the harness pre-trained on the split's unlabeled pool, and ``--pool-kd``.

    A teacher checkpoint or logits file is an external resource, allowed once the submission lists
    it (:func:`external_resources`); an ensemble of runs (``--teacher runs:SYS``) learnt from
    whatever its members did.
    A run with every teacher term off learnt nothing from its teacher; weights evaluated with
    ``--checkpoint`` carry what their training run used (when this home holds its record).
    Records made before ``teacher_pretraining_audio`` was noted had a pool-trained teacher
    whenever they had a self-supervised teacher and a split below 100 % (pools of synth-tau22
    small and up, and of TAU22, are far above the 64 clips below which the split's own audio is used).
    """
    config = record.provenance.get("config") or {}
    options = run_options(record)
    uses = []
    pretraining = record.notes.get("teacher_pretraining_audio")
    if pretraining is None and record.notes.get("teacher") and teacher_kind(record) == "self-supervised":
        pretraining = "pool" if record.key.fraction < 1.0 else "split"
    distill = (config.get("recipe_config") or {}).get("distill") or {}
    if distill and not any(distill.get(term) for term in TEACHER_TERMS):
        pretraining = None  # no term read the teacher (records made before such runs skipped it loaded one)
    if pretraining == "pool":
        uses.append("teacher pre-training")
    if float(options.get("pool_kd") or 0.0) > 0:
        uses.append("pool KD")
    # an ensemble teacher knows what its member runs learnt from
    uses += [use for use in record.notes.get("teacher_members_audio_outside_split") or [] if use not in uses]
    # weights evaluated with --checkpoint learnt from what their training run did
    uses += [use for use in record.notes.get("weights_audio_outside_split") or [] if use not in uses]
    return uses
