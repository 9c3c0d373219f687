"""Regression check: today's records against a committed leaderboard JSON (``ascbench check``).

Only comparable numbers are compared: records of the same data set *fingerprint*, fraction and
profile as the reference. A system regresses when its mean accuracy drops by more than the
tolerance, its parameters or MACs grow, or it newly breaks a DCASE limit. A record of the group
that cannot be used (damaged, edited, its predictions unreadable) fails the check too: it hides a
run, a lost seed.

Which systems must be there: by default the check compares what ran, the reference's systems
that have current records, over the seeds they have (a Quickstart runs one seed of the main
systems; a committed board may hold three seeds and ablation rows); the rest are listed in a
note. Systems named by pattern must be there in full: no records at all (a system that silently
stopped running is the worst regression), or fewer seeds than the reference (a mean over fewer
seeds is another number), fail. A check with nothing to compare fails the same way: it is no
check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import pandas as pd

from ascbench.leaderboard.build import GroupKey, build_leaderboard
from ascbench.tasks import DEFAULT_TASK
from ascbench.leaderboard.export import group_of
from ascbench.results.record import Record

DEFAULT_TOLERANCE_ACC = 0.02
"""Accuracy may drop by up to 0.02 (2 points) before it counts: seed noise on small test sets."""


@dataclass(frozen=True)
class Finding:
    """One regressed quantity of one system."""

    system: str
    what: str
    reference: str
    current: str


@dataclass
class CheckReport:
    group: GroupKey
    regressions: list[Finding] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    """Systems present in both the reference and the current records."""
    new_systems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.regressions


def _pct(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value) * 100:.2f} %"


def check_entry(
    entry: dict[str, Any],
    records: Iterable[Record],
    tolerance_acc: float = DEFAULT_TOLERANCE_ACC,
    invalid: Iterable[tuple[str, str, str]] = (),
    systems: Sequence[str] | None = None,
) -> CheckReport:
    """Compare one reference leaderboard entry (from the exported JSON) with ``records``.

    ``records`` may hold anything; only those of the entry's group are used. Records of the same
    data set name with another fingerprint are mentioned in ``notes`` (different data, so they
    cannot vouch for the reference), never compared. ``invalid`` holds (record slug, path,
    reason) of the store's unusable records; those of the entry's group are regressions.
    ``systems`` (shell patterns) names the reference systems that must be there with every seed
    of the reference; without it, the systems with current records are compared and the others
    noted (unless none has records: then every one is missing).
    """
    if tolerance_acc < 0:
        raise ValueError(f"tolerance_acc must be >= 0, got {tolerance_acc}")
    group = group_of(entry)
    report = CheckReport(group)

    def wanted(system: str) -> bool:
        return systems is None or any(fnmatchcase(system, pattern) for pattern in systems)

    mine, other_fingerprints = [], set()
    for record in records:
        g = GroupKey.of(record)
        if g == group:
            mine += [record] if wanted(record.key.system) else []
        elif (g.dataset, g.fraction, g.profile) == (group.dataset, group.fraction, group.profile):
            other_fingerprints.add(g.fingerprint)
    if other_fingerprints:
        report.notes.append(
            f"records of {group.dataset} with other fingerprints ({', '.join(sorted(other_fingerprints))}) "
            f"were not compared: they come from different data than the reference ({group.fingerprint})"
        )
    current = build_leaderboard(mine) if mine else pd.DataFrame(columns=["system", "seeds"])
    reference = {row["system"]: row for row in entry["rows"] if wanted(row["system"])}
    if systems is not None and not reference:
        report.regressions.append(Finding(",".join(systems), "matches no system of the reference", f"{len(entry['rows'])} systems", "none"))
    prefix = f"{group.dataset}-{group.fingerprint}/" + ("" if group.task == DEFAULT_TASK else f"task-{group.task}/")
    suffix = f"/{group.split}/{group.profile}/"
    for slug, path, reason in invalid:
        other_task = group.task == DEFAULT_TASK and slug.startswith(f"{prefix}task-")
        if slug.startswith(prefix) and suffix in slug and not other_task:
            system = slug[len(prefix) : slug.index(suffix, len(prefix))]
            if wanted(system):
                report.regressions.append(Finding(system, f"unusable record ({reason})", "a record", path))
    report.new_systems = sorted(set(current.index) - set(reference))
    in_full = systems is not None or not set(reference) & set(current.index)
    not_run, fewer = [], []
    for system, ref in reference.items():
        if system not in current.index:
            if in_full:
                report.regressions.append(Finding(system, "missing: no current record", f"{ref.get('seeds', '?')} seed(s)", "none"))
            else:
                not_run.append(system)
            continue
        report.compared.append(system)
        ref_seeds, cur_seeds = ref.get("seeds"), int(current.loc[system, "seeds"])
        if ref_seeds is not None and cur_seeds < int(ref_seeds):
            if in_full:
                report.regressions.append(Finding(system, "fewer seeds than the reference", f"{int(ref_seeds)} seed(s)", f"{cur_seeds}"))
            else:
                fewer.append(f"{system} ({cur_seeds} of {int(ref_seeds)})")
        report.regressions += _compare_row(system, ref, current.loc[system], tolerance_acc)
    if fewer:
        report.notes.append(f"compared over fewer seeds than the reference: {', '.join(fewer)}")
    if not_run:
        report.notes.append(f"not compared, no current records: {', '.join(not_run)} (name them with --systems to require them)")
    return report


def _compare_row(system: str, ref: dict[str, Any], cur: pd.Series, tolerance_acc: float) -> list[Finding]:
    found = []
    ref_acc, cur_acc = ref.get("accuracy"), cur["accuracy"]
    if ref_acc is not None and (pd.isna(cur_acc) or ref_acc - float(cur_acc) > tolerance_acc + 1e-12):
        drop = "" if pd.isna(cur_acc) else f" by {(ref_acc - float(cur_acc)) * 100:.2f} pts (tolerance {tolerance_acc * 100:g})"
        found.append(Finding(system, "accuracy dropped" + drop, _pct(ref_acc), _pct(cur_acc)))
    for column, label in (("params", "parameters grew"), ("macs", "MACs grew")):
        if ref.get(column) is not None and int(cur[column]) > int(ref[column]):
            found.append(Finding(system, label, f"{int(ref[column]):,}", f"{int(cur[column]):,}"))
    limits = (("memory_ok", "int8 parameter memory > 128 kB"), ("macs_ok", "MACs > 30 M"),
              ("split_audio_only", "trained on audio outside the split"))  # fmt: skip
    for column, limit in limits:
        if not ref.get(column):
            continue
        if pd.isna(cur[column]):  # None: the MAC count became a lower bound (uncounted operators)
            found.append(Finding(system, f"DCASE limit no longer verifiable: {limit}? (uncounted operators)", "pass", "unknown"))
        elif not bool(cur[column]):
            found.append(Finding(system, f"DCASE limit newly broken: {limit}", "pass", "FAIL"))
    return found
