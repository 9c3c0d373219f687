"""Machine-readable leaderboards (JSON, with a provenance summary) and the files under leaderboards/.

The JSON is what ``ascbench check`` compares against, so it holds the raw numbers of every row
and, per system in the style of lm-evaluation-harness result files, where they came from: the
run keys, config hashes, git commits, package versions and devices of its records. It carries
no generation time, so re-exporting unchanged records gives identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ascbench.leaderboard.build import (
    DCASE_MAX_MACS,
    DCASE_MAX_PARAM_KB,
    GroupKey,
    Leaderboard,
    RankGroupKey,
)
from ascbench.results.record import Record
from ascbench.tasks import DEFAULT_TASK

SCHEMA = "ascbench.leaderboard/1"
EXPORT_COMMAND = "ascbench leaderboard --export"


def _plain(value: Any) -> Any:
    """pandas/numpy scalars as JSON values; NaN as null."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def _distinct(values: Any) -> list[Any]:
    """Distinct values in first-seen order (None kept: it means 'unknown', which is worth seeing)."""
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def provenance_summary(records: Sequence[Record]) -> dict[str, Any]:
    """Where one system's numbers came from: every record's key and the distinct code, package,
    config and device versions across them (more than one value is a warning sign)."""
    prov = [r.provenance for r in records]
    packages = sorted({name for p in prov for name in (p.get("packages") or {})})
    return {
        "records": [{"key": vars(r.key), "predictions_file": r.predictions_file,
                     "started_utc": r.provenance.get("started_utc"), "finished_utc": r.provenance.get("finished_utc")}
                    for r in records],  # fmt: skip
        "seeds": [r.key.seed for r in records],
        "config_hashes": _distinct(p.get("config_hash") for p in prov),
        "git_commits": _distinct(p.get("git_commit") for p in prov),
        "git_dirty": any(bool(p.get("git_dirty")) for p in prov),
        "ascbench_versions": _distinct(p.get("ascbench_version") for p in prov),
        "python": _distinct(p.get("python") for p in prov),
        "packages": {name: _distinct((p.get("packages") or {}).get(name) for p in prov) for name in packages},
        "devices": _distinct(p.get("device") for p in prov),
        "system": records[0].system,
    }


def leaderboard_entry(board: Leaderboard) -> dict[str, Any]:
    g = board.group
    return {
        "title": board.title,
        "dataset": g.dataset,
        "dataset_fingerprint": g.fingerprint,
        "synthetic": g.synthetic,
        "fraction": g.fraction,
        "profile": g.profile,
        "task": g.task,
        "dcase_limits": {"param_memory_kb_int8": DCASE_MAX_PARAM_KB, "macs": DCASE_MAX_MACS},
        "rows": _rows(board.table),
        "per_device": {s: {d: _plain(v) for d, v in row.items()} for s, row in board.per_device().iterrows()},
        "per_class": {s: {c: _plain(v) for c, v in row.items()} for s, row in board.per_class().iterrows()},
        "notes": list(board.notes),
        "provenance": {system: provenance_summary(recs) for system, recs in board.records.items()},
    }


def leaderboard_json(
    boards: Sequence[Leaderboard], generated_by: str, ranks: Sequence[tuple[RankGroupKey, pd.DataFrame]] = ()
) -> dict[str, Any]:
    """The JSON document for ``--format json`` and the exported ``.json`` files."""
    return {
        "schema": SCHEMA,
        "generated_by": generated_by,
        "note": "Generated from run records; do not edit by hand.",
        "leaderboards": [leaderboard_entry(b) for b in boards],
        "rank_tables": [
            {"title": key.title, "dataset": key.dataset, "dataset_fingerprint": key.fingerprint,
             "profile": key.profile, "rows": _rows(table)}
            for key, table in ranks
        ],  # fmt: skip
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def group_of(entry: dict[str, Any], where: str = "reference") -> GroupKey:
    """The group a leaderboard JSON entry describes; ``ValueError`` naming ``where`` if malformed."""
    try:
        return GroupKey(str(entry["dataset"]), str(entry["dataset_fingerprint"]), float(entry["fraction"]), str(entry["profile"]),
                        str(entry.get("task", DEFAULT_TASK)))  # boards exported before tasks existed are dcase2024 boards
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{where}: leaderboard entry lacks dataset/dataset_fingerprint/fraction/profile ({error})") from None


def load_leaderboard_json(path: Path) -> list[dict[str, Any]]:
    """The leaderboard entries of an exported JSON file, validated enough to be compared against."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"{path}: schema {found!r}; expected {SCHEMA!r} (a file written by `{EXPORT_COMMAND}`)")
    entries = document.get("leaderboards")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: holds no leaderboard")
    for i, entry in enumerate(entries):
        group_of(entry, f"{path}: leaderboards[{i}]")
        if not isinstance(entry.get("rows"), list):
            raise ValueError(f"{path}: leaderboards[{i}] has no 'rows' list")
    return entries
