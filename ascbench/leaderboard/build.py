"""Leaderboards from run records: one table per (data set + fingerprint, fraction, profile).

A leaderboard row is one system, its metrics aggregated over seeds (mean ± sample std and the
number of seeds, via :func:`ascbench.evaluation.metrics.aggregate`). Records are never mixed
across data sets, fingerprints, fractions or profiles: those numbers are not comparable, and the
data set name travels into every title so that a synthetic result cannot pass as a TAU one.

The frame's columns are machine-readable (fractions, counts, bytes); :mod:`.render` turns them
into the paper-style display (percent, M MACs, kB).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ascbench.data.layout import DEVICES, FRACTION_SPLITS, SCENES, fraction_percent
from ascbench.evaluation.bootstrap import DEFAULT_RESAMPLES, PairedComparison
from ascbench.evaluation.metrics import aggregate
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.leaderboard.compare import paired_over_seeds
from ascbench.leaderboard.statistics import ALPHA, holm, minimum_detectable_difference, rank_intervals
from ascbench.results.record import Record, audio_outside_split, external_resources
from ascbench.results.store import CorruptRecordError, ResultsStore
from ascbench.results.identity import GROUPED, identity_label
from ascbench.tasks import DEFAULT_TASK, get_task

log = logging.getLogger(__name__)

DCASE_MAX_PARAM_KB = 128.0
"""DCASE 2024 Task 1 limit on parameter memory (int8: 1 B per parameter; kB = 1,000 B)."""
DCASE_MAX_MACS = 30_000_000
"""DCASE 2024 Task 1 limit on multiply-accumulates for one 1-second clip."""

SUMMARISED = {
    "accuracy": lambda r: r.metrics.accuracy,
    "seen_accuracy": lambda r: r.metrics.seen_accuracy,
    "unseen_accuracy": lambda r: r.metrics.unseen_accuracy,
    "attenuation_pct": lambda r: r.metrics.attenuation_pct,
    "attenuation_points": lambda r: r.metrics.attenuation_points,
    "log_loss": lambda r: r.metrics.log_loss,
}
"""Per-run metrics shown as mean (column ``name``) and standard deviation (``name_std``)."""

COLUMNS: tuple[str, ...] = (
    "system", "paper_label", "family", "seeds", "params", "macs",
    "accuracy", "accuracy_std", "ci95_low", "ci95_high",
    "seen_accuracy", "seen_accuracy_std", "unseen_accuracy", "unseen_accuracy_std",
    "attenuation_pct", "attenuation_pct_std", "attenuation_points", "attenuation_points_std",
    "log_loss", "log_loss_std", "param_memory_kb_int8", "int8_artifact_kb",
    "memory_ok", "macs_ok", "split_audio_only", "audio_outside_split", "external_resources", "dcase_pass",
    "delta_vs_best", "delta_ci95_low", "delta_ci95_high", "delta_p_value", "delta_p_holm", "delta_significant", "delta_seeds",
    "tied_with_best", "rank_ci_low", "rank_ci_high",
)  # fmt: skip
"""Columns of a leaderboard frame, in order. Accuracies are fractions; ``delta_*`` is the paired
bootstrap of (this system - the top system), over the seeds both ran; ``delta_significant`` is
Holm-corrected over the board's comparisons (``delta_p_holm`` < 0.05), ``tied_with_best`` the rows
it does not separate from the best, ``rank_ci_*`` the 95 % rank interval over resampled clips and
seeds (:mod:`ascbench.leaderboard.statistics`)."""


@dataclass(frozen=True, order=True)
class GroupKey:
    """Records that may share one leaderboard: same data (name and content), split and profile."""

    dataset: str
    fingerprint: str
    fraction: float
    profile: str
    task: str = DEFAULT_TASK

    @classmethod
    def of(cls, record: Record) -> "GroupKey":
        k = record.key
        return cls(k.dataset, k.dataset_fingerprint, k.fraction, k.profile, k.task)

    @property
    def device_models(self) -> bool:
        """Whether the task's systems have a model per device (then the board compares them with
        their general model)."""
        return bool(get_task(self.task).device_models)

    @property
    def synthetic(self) -> bool:
        """Synthetic data sets are named ``synth-...`` by the generator and the reader."""
        return self.dataset.startswith("synth")

    @property
    def split(self) -> str:
        return f"split{fraction_percent(self.fraction)}"

    @property
    def title(self) -> str:
        """Human title; always names the data set and its fingerprint."""
        kind = " (synthetic data, not a TAU result)" if self.synthetic else ""
        return f"{self.dataset} [{self.fingerprint}]{kind} · {self.split} · profile {self.profile} · task {self.task}"

    @property
    def slug(self) -> str:
        """File-name stem for exports: ``<data set>-split<pct>-<profile>``, then ``-<task>`` for
        any task but the default (whose files keep the names they had before tasks existed)."""
        task = "" if self.task == DEFAULT_TASK else f"-{self.task}"
        return f"{self.dataset}-{self.split}-{self.profile}{task}"


@dataclass
class Leaderboard:
    """One group's table (``table``: one row per system, best first) and the records behind it."""

    group: GroupKey
    table: pd.DataFrame
    records: dict[str, list[Record]]
    """System name -> its records, by seed."""
    notes: list[str] = field(default_factory=list)
    """Why a comparison could not be made (missing predictions, different test clips)."""
    minimum_detectable_difference: float | None = None
    """The smallest accuracy gap (fraction) this board's clips and seeds detect at 80 % power
    (:mod:`ascbench.leaderboard.statistics`); None without paired comparisons."""

    @property
    def title(self) -> str:
        return self.group.title

    def per_device(self) -> pd.DataFrame:
        """Mean macro accuracy per device over seeds: systems (table order) x devices."""
        return self._mean_over_seeds(lambda r, d: r.metrics.per_device.get(d), DEVICES)

    def per_class(self) -> pd.DataFrame:
        """Mean recall per scene over seeds: systems (table order) x scenes."""
        return self._mean_over_seeds(lambda r, c: r.metrics.per_class.get(c), SCENES)

    def _mean_over_seeds(self, get, columns: Sequence[str]) -> pd.DataFrame:
        cells = {c: [aggregate(get(r, c) for r in self.records[s])[0] for s in self.table.index] for c in columns}
        return pd.DataFrame(cells, index=self.table.index).astype(float)

    def confusion(self, system: str) -> np.ndarray:
        """Confusion counts [true, predicted] summed over the system's seeds."""
        return np.sum([np.asarray(r.metrics.confusion_matrix, dtype=np.int64) for r in self.records[system]], axis=0)


def group_records(records: Iterable[Record]) -> dict[GroupKey, list[Record]]:
    """Records by leaderboard group, groups in sorted order."""
    groups: dict[GroupKey, list[Record]] = defaultdict(list)
    for record in records:
        groups[GroupKey.of(record)].append(record)
    return dict(sorted(groups.items()))


def build_leaderboards(
    records: Iterable[Record], store: ResultsStore | None = None, *, n_resamples: int = DEFAULT_RESAMPLES
) -> list[Leaderboard]:
    """One :class:`Leaderboard` per group of ``records`` (see :func:`build_leaderboard`)."""
    return [_build(group, recs, store, n_resamples) for group, recs in group_records(records).items()]


def build_leaderboard(
    records: Iterable[Record], store: ResultsStore | None = None, *, n_resamples: int = DEFAULT_RESAMPLES
) -> pd.DataFrame:
    """The leaderboard frame of records that all belong to one group (index: system, best first).

    With a ``store``, each system is compared with the top one by a paired bootstrap over the
    per-clip predictions the store holds (``delta_*`` columns); without one they stay empty.
    """
    groups = group_records(records)
    if len(groups) != 1:
        raise ValueError(
            f"build_leaderboard: records from {len(groups)} groups "
            f"({'; '.join(g.title for g in groups) or 'none'}); one leaderboard compares one data set, "
            "fraction and profile; use build_leaderboards for several"
        )
    [(group, recs)] = groups.items()
    return _build(group, recs, store, n_resamples).table


def _build(group: GroupKey, records: list[Record], store: ResultsStore | None, n_resamples: int) -> Leaderboard:
    by_system, notes = rows_by_identity(records)
    for system, recs in by_system.items():
        recs.sort(key=lambda r: r.key.seed)
        seeds = [r.key.seed for r in recs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{group.title}: system {system!r} has several records for one seed ({seeds})")
    rows = [_summarise(system, recs) for system, recs in by_system.items()]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.index = pd.Index(table["system"].tolist())
    table = table.sort_values(["accuracy", "system"], ascending=[False, True], na_position="last")
    board = Leaderboard(group, table, {s: by_system[s] for s in table.index}, notes)
    if store is not None and len(table) > 1:
        _compare_with_best(board, store, n_resamples)
    if group.device_models:
        add_device_columns(board, store, n_resamples)
    return board


def rows_by_identity(records: Iterable[Record]) -> tuple[dict[str, list[Record]], list[str]]:
    """Records by board row: one row per system, or, where a system's records were made by
    different models, plugin code, recipe options or audio, one row per identity
    (``mine#1a2b3c4d``), with a note saying so. Averaging such seeds would describe no model."""
    by_system: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_system[record.key.system].append(record)
    rows: dict[str, list[Record]] = {}
    notes = []
    for system, recs in by_system.items():
        by_identity: dict[str, list[Record]] = defaultdict(list)
        for record in recs:
            by_identity[identity_label(record.identity, GROUPED)].append(record)
        if len(by_identity) == 1:
            rows[system] = recs
            continue
        names = []
        for label, part in sorted(by_identity.items()):
            rows[f"{system}#{label}"] = part
            names.append(f"{system}#{label} (seed {', '.join(str(r.key.seed) for r in sorted(part, key=lambda r: r.key.seed))})")
        notes.append(f"{system}: its records were made by {len(by_identity)} different models, plugin sources, recipe options "
                     f"or audio, so they are not averaged: {'; '.join(names)}. `ascbench run` reruns the seeds whose "
                     "identity differs from today's code and data.")  # fmt: skip
    return rows, notes


def _summarise(system: str, records: Sequence[Record]) -> dict[str, object]:
    row: dict[str, object] = {"system": system, "seeds": len(records)}
    first = records[0]
    row["paper_label"] = first.system.get("paper_label") or ""
    row["family"] = first.system.get("family") or ""
    for name, get in SUMMARISED.items():
        mean, std, _ = aggregate(get(r) for r in records)
        row[name], row[f"{name}_std"] = mean, std
    row["ci95_low"] = aggregate(r.metrics.accuracy_ci95[0] for r in records)[0]
    row["ci95_high"] = aggregate(r.metrics.accuracy_ci95[1] for r in records)[0]
    # the same model under every seed; the largest figure if a plugin's size depends on the seed
    row["params"] = max(r.complexity.params for r in records)
    row["macs"] = max(r.complexity.macs for r in records)
    row["param_memory_kb_int8"] = max(r.complexity.param_memory_kb_int8 for r in records)
    artifact, _, n_artifact = aggregate(r.complexity.int8_artifact_bytes for r in records)
    row["int8_artifact_kb"] = artifact / 1000 if n_artifact else None
    row["memory_ok"] = bool(row["param_memory_kb_int8"] <= DCASE_MAX_PARAM_KB)
    # operators fvcore could not count make the MACs a lower bound: under the limit, that proves nothing
    complete = not any(r.complexity.uncounted_ops for r in records)
    row["macs_ok"] = False if row["macs"] > DCASE_MAX_MACS else (True if complete else None)
    outside = list(dict.fromkeys(use for r in records for use in audio_outside_split(r)))
    row["split_audio_only"] = not outside
    row["audio_outside_split"] = ", ".join(outside) or None
    row["external_resources"] = ", ".join(dict.fromkeys(use for r in records for use in external_resources(r))) or None
    checks = (row["memory_ok"], row["macs_ok"], row["split_audio_only"])
    row["dcase_pass"] = False if False in checks else (None if None in checks else True)
    return row


def _compare_with_best(board: Leaderboard, store: ResultsStore, n_resamples: int) -> None:
    """Fill the ``delta_*`` columns: paired bootstrap of each system against the top one."""
    table = board.table
    best = str(table.index[0])
    best_predictions = _predictions(board, best, store)
    if best_predictions is None:
        return
    columns: dict[str, dict[str, object]] = defaultdict(dict)
    columns["delta_vs_best"][best] = 0.0
    columns["tied_with_best"][best] = True
    everyone = {best: best_predictions}
    intervals = []
    for system in map(str, table.index[1:]):
        predictions = _predictions(board, system, store)
        if predictions is None:
            continue
        try:
            gap: PairedComparison = paired_over_seeds(predictions, best_predictions, n_resamples=n_resamples)
        except ValueError as error:
            board.notes.append(f"{system} vs {best}: not compared ({error})")
            continue
        everyone[system] = predictions
        intervals.append(gap.ci95)
        columns["delta_vs_best"][system] = gap.difference
        columns["delta_ci95_low"][system], columns["delta_ci95_high"][system] = gap.ci95
        columns["delta_p_value"][system] = gap.p_value
        columns["delta_seeds"][system] = ",".join(map(str, sorted(set(predictions) & set(best_predictions))))
    adjusted = holm({s: float(p) for s, p in columns["delta_p_value"].items()})  # type: ignore[arg-type]
    for system, p in adjusted.items():
        columns["delta_p_holm"][system] = p
        columns["delta_significant"][system] = p < ALPHA
        columns["tied_with_best"][system] = p >= ALPHA
    if len(everyone) == len(table):  # ranks need every row's predictions on the same clips
        try:
            for system, (low, high) in rank_intervals(everyone, n_resamples=n_resamples).items():
                columns["rank_ci_low"][system], columns["rank_ci_high"][system] = low, high
        except ValueError as error:
            board.notes.append(f"no rank intervals ({error})")
    seeds = int(table["seeds"].min())
    board.minimum_detectable_difference = minimum_detectable_difference(intervals, list(table["accuracy_std"]), seeds)
    tied = [s for s, value in columns["tied_with_best"].items() if value]
    if len(adjusted) > 0:
        mdd = board.minimum_detectable_difference
        board.notes.append(f"Tied with the best (no Holm-corrected significant gap over {len(adjusted)} comparison{'s' if len(adjusted) != 1 else ''}): {', '.join(tied)}. "
                           + (f"Smallest gap these clips and seeds detect (80 % power, 5 %): {mdd * 100:.1f} points." if mdd else ""))  # fmt: skip
    for name, values in columns.items():
        dtype = object if name in ("delta_significant", "delta_seeds", "tied_with_best") else float
        table[name] = pd.Series([values.get(s) for s in table.index], index=table.index, dtype=dtype)


def _predictions(board: Leaderboard, system: str, store: ResultsStore) -> dict[int, ClipPredictions] | None:
    try:
        return {r.key.seed: store.load_predictions(r) for r in board.records[system]}
    except (FileNotFoundError, CorruptRecordError, ValueError) as error:
        board.notes.append(f"{system}: no paired comparison ({error})")
        return None


# ------------------------------------------------------------------ device models against the general one

DEVICE_GROUP_NAMES = ("real", "seen", "unseen", "known", "unknown")


def add_device_columns(board: Leaderboard, store: ResultsStore | None, n_resamples: int = DEFAULT_RESAMPLES) -> None:
    """For a task with device models: the general model's accuracy beside the device-aware
    system's, per device group, and the paired difference between the two (over the same test
    clips and seeds, as the official baseline reports them side by side)."""
    table = board.table
    columns: dict[str, dict[str, object]] = defaultdict(dict)
    for system in map(str, table.index):
        records = board.records[system]
        columns["general_accuracy"][system], columns["general_accuracy_std"][system], _ = aggregate(
            (r.device_specific.get("general") or {}).get("accuracy") for r in records)
        for group in DEVICE_GROUP_NAMES:
            columns[f"{group}_accuracy"][system] = aggregate((r.device_specific.get("groups") or {}).get(group) for r in records)[0]
            columns[f"general_{group}_accuracy"][system] = aggregate(
                ((r.device_specific.get("general") or {}).get("groups") or {}).get(group) for r in records)[0]
        gap = _device_gap(board, system, store, n_resamples)
        if gap is not None:
            columns["delta_general"][system] = gap.difference
            columns["delta_general_ci95_low"][system], columns["delta_general_ci95_high"][system] = gap.ci95
            columns["delta_general_p_value"][system] = gap.p_value
            columns["delta_general_significant"][system] = bool(gap.ci95[1] < 0 or gap.ci95[0] > 0)
    for name in DEVICE_COLUMNS:
        values = columns.get(name, {})
        table[name] = pd.Series([values.get(s) for s in table.index], index=table.index, dtype=object if name.endswith("significant") else float)


DEVICE_COLUMNS: tuple[str, ...] = (
    "general_accuracy", "general_accuracy_std",
    *(f"{prefix}{group}_accuracy" for group in DEVICE_GROUP_NAMES for prefix in ("", "general_")),
    "delta_general", "delta_general_ci95_low", "delta_general_ci95_high", "delta_general_p_value", "delta_general_significant",
)  # fmt: skip
"""Columns a board of a task with device models adds (fractions; ``delta_general``: device-aware
minus general, paired bootstrap over the clips and seeds)."""


def _device_gap(board: Leaderboard, system: str, store: ResultsStore | None, n_resamples: int) -> PairedComparison | None:
    """The paired bootstrap of the device-aware predictions against the general model's, read from
    the general runs the records name; a general run redone since (its predictions changed) is a
    note, not a comparison with a model the device models did not start from."""
    if store is None:
        return None
    specific, general = {}, {}
    for record in board.records[system]:
        slug = record.device_specific.get("general_run")
        source = store.read_slug(slug) if isinstance(slug, str) else None
        if source is None or source.predictions_sha256 != record.device_specific.get("general_predictions_sha256"):
            board.notes.append(f"{system} seed {record.key.seed}: its general run {slug} is not in the store as it was when the "
                               "device models were fine-tuned; `ascbench run` with the same options redoes them")  # fmt: skip
            return None
        try:
            specific[record.key.seed] = store.load_predictions(record)
            general[record.key.seed] = store.load_predictions(source)
        except (FileNotFoundError, CorruptRecordError, ValueError) as error:
            board.notes.append(f"{system}: no paired comparison with its general model ({error})")
            return None
    return paired_over_seeds(specific, general, n_resamples=n_resamples)


# ------------------------------------------------------------------ DCASE rank score over splits


@dataclass(frozen=True, order=True)
class RankGroupKey:
    """Records of every fraction of one data set and profile."""

    dataset: str
    fingerprint: str
    profile: str

    @property
    def title(self) -> str:
        kind = " (synthetic data, not a TAU result)" if self.dataset.startswith("synth") else ""
        return f"{self.dataset} [{self.fingerprint}]{kind} · all splits · profile {self.profile}"

    @property
    def slug(self) -> str:
        return f"{self.dataset}-allsplits-{self.profile}"


SPLIT_COLUMNS: tuple[str, ...] = tuple(f"split{fraction_percent(f)}" for f in FRACTION_SPLITS)


def rank_table(records: Iterable[Record]) -> pd.DataFrame:
    """DCASE's ranking view: one accuracy column per split (mean over seeds) and ``rank_score``.

    ``rank_score`` is the mean of the five split accuracies, as DCASE 2024 Task 1 ranks systems;
    it is NaN for a system that lacks any split (a partial mean would favour systems run only on
    the large splits). Records must share data set, fingerprint and profile. Rows: systems, by
    rank score (systems with all five splits first), then by split100 accuracy.
    """
    records = list(records)
    groups = {RankGroupKey(r.key.dataset, r.key.dataset_fingerprint, r.key.profile) for r in records}
    if len(groups) != 1:
        raise ValueError(
            f"rank_table: records from {len(groups)} data set/profile groups "
            f"({'; '.join(g.title for g in sorted(groups)) or 'none'}); expected one"
        )
    cells: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        cells[record.key.system][f"split{fraction_percent(record.key.fraction)}"].append(record.metrics.accuracy)
    rows = []
    for system, splits in cells.items():
        row: dict[str, object] = {"system": system}
        for column in SPLIT_COLUMNS:
            row[column] = aggregate(splits.get(column, []))[0]
        present = [row[c] for c in SPLIT_COLUMNS if row[c] is not None]
        row["splits"] = len(present)
        row["rank_score"] = float(np.mean(present)) if len(present) == len(SPLIT_COLUMNS) else None
        rows.append(row)
    table = pd.DataFrame(rows, columns=["system", *SPLIT_COLUMNS, "splits", "rank_score"])
    table.index = pd.Index(table["system"].tolist())
    table[[*SPLIT_COLUMNS, "rank_score"]] = table[[*SPLIT_COLUMNS, "rank_score"]].astype(float)
    return table.sort_values(["rank_score", "split100", "system"], ascending=[False, False, True], na_position="last")


def rank_tables(records: Iterable[Record]) -> list[tuple[RankGroupKey, pd.DataFrame]]:
    """:func:`rank_table` for each (data set, fingerprint, profile) group that has all five splits."""
    groups: dict[RankGroupKey, list[Record]] = defaultdict(list)
    for r in records:
        if r.key.task != DEFAULT_TASK:  # the mean over five splits is DCASE 2024's rank; later tasks train on one
            continue
        groups[RankGroupKey(r.key.dataset, r.key.dataset_fingerprint, r.key.profile)].append(r)
    out = []
    for key, recs in sorted(groups.items()):
        if {r.key.fraction for r in recs} == set(FRACTION_SPLITS):
            out.append((key, rank_table(recs)))
    return out
