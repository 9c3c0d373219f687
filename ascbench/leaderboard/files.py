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
    ``<data set>-allsplits-<profile>.{md,json}`` per rank-score table (``-<fingerprint>`` added
    where a name holds data of several fingerprints); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)

    board_stems = unique_stems([(board.group.slug, board.group.fingerprint) for board in boards])
    rank_stems = unique_stems([(key.slug, key.fingerprint) for key, _ in ranks])
    for board, stem in zip(boards, board_stems, strict=True):
        write(f"{stem}.md", markdown([board], generated_by))
        write(f"{stem}.json", dumps(leaderboard_json([board], generated_by)))
        write(f"{stem}.html", html_page([board], generated_by))
        write(f"{stem}.csv", csv_text([board], generated_by))
    for (key, table), stem in zip(ranks, rank_stems, strict=True):
        write(f"{stem}.md", markdown([], generated_by, [(key, table)]))
        document = leaderboard_json([], generated_by, [(key, table)])
        write(f"{stem}.json", dumps(document))
    return written


def unique_stems(slugs: Sequence[tuple[str, str]]) -> list[str]:
    """File stems for (slug, data fingerprint) pairs: the slug, plus the fingerprint's first 8 hex
    digits where one slug stands for data of several fingerprints.

    Why: a data set's name does not pin its contents (synth-tau22-small of another seed or generator
    version, a TAU22 folder with edited splits); without this, one group's files silently replaced
    the other's."""
    fingerprints: dict[str, set[str]] = {}
    for slug, fingerprint in slugs:
        fingerprints.setdefault(slug, set()).add(fingerprint)
    return [f"{slug}-{fingerprint[:8]}" if len(fingerprints[slug]) > 1 else slug for slug, fingerprint in slugs]
