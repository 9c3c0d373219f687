"""The committed ``leaderboards/`` directory: md, json, html and csv per (data set, fraction,
profile) group, regenerated from records by ``ascbench leaderboard --export``, never by hand."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ascbench.leaderboard.build import Leaderboard, RankGroupKey
from ascbench.leaderboard.export import EXPORT_COMMAND, dumps, leaderboard_json
from ascbench.leaderboard.html import html_page
from ascbench.leaderboard.render import csv_text, markdown


def write_exports(
    boards: Sequence[Leaderboard],
    out_dir: Path,
    ranks: Sequence[tuple[RankGroupKey, pd.DataFrame]] = (),
    generated_by: str = EXPORT_COMMAND,
) -> list[Path]:
    """Write ``<data set>-split<pct>-<profile>.{md,json,html,csv}`` per leaderboard and
    ``<data set>-allsplits-<profile>.{md,json}`` per rank-score table; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)

    for board in boards:
        stem = board.group.slug
        write(f"{stem}.md", markdown([board], generated_by))
        write(f"{stem}.json", dumps(leaderboard_json([board], generated_by)))
        write(f"{stem}.html", html_page([board], generated_by))
        write(f"{stem}.csv", csv_text([board], generated_by))
    for key, table in ranks:
        write(f"{key.slug}.md", markdown([], generated_by, [(key, table)]))
        document = leaderboard_json([], generated_by, [(key, table)])
        write(f"{key.slug}.json", dumps(document))
    return written
