"""A single self-contained HTML page: tables, plots as base64 PNGs, provenance. No external assets,
so the file can be mailed, attached to CI runs or opened offline and always looks the same.

The page has to read at 17 rows and more (a split board holds the systems, their ablations and
their variants): the table is cut into those sections, the DCASE verdict wraps instead of running
off the page, per-device accuracy is a heatmap, and the confusion matrices of a long board start
folded."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pandas as pd

from ascbench.leaderboard.build import Leaderboard, RankGroupKey
from ascbench.leaderboard.export import provenance_summary
from ascbench.leaderboard.plots import (
    ROW_KINDS,
    accuracy_vs_macs,
    confusion_grid,
    per_device_heatmap,
    png_base64,
    row_kind,
    section_order,
)
from ascbench.leaderboard.render import board_note, display_frame, rank_display

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
.scroll { overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 3px 5px; text-align: right; white-space: nowrap; }
td.verdict { white-space: normal; min-width: 11em; max-width: 20em; }
td.delta { white-space: normal; min-width: 8.5em; }
tbody th.section { text-align: left; background: #e8eef6; font-size: 1.05em; padding: 5px 6px; }
th { white-space: normal; vertical-align: bottom; }
th { background: #f3f3f3; } td.left, th.left { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
.fail { color: #b00; font-weight: bold; } .pass { color: #070; } .sig { font-weight: bold; }
.warning { background: #fff4e0; border-left: 4px solid #e69500; padding: 0.5em 1em; }
.note { color: #555; font-size: 0.85em; max-width: 70em; }
figure { margin: 1em 0; } summary { cursor: pointer; } figure img { max-width: 100%; border: 1px solid #eee; }
details { font-size: 0.8em; margin: 0.5em 0; } code { font-size: 0.95em; }
"""
LEFT = {"System", "Paper label", "DCASE limits", "Δ vs best, significant?", "Δ vs general, significant?"}


def _cells(row: pd.Series) -> str:
    cells = []
    for column, value in row.items():
        classes = ["left"] if column in LEFT else []
        text = str(value)
        if column == "DCASE limits":  # the whole verdict, wrapped in its cell: it says which rule fails
            classes += ["verdict", "fail" if text.startswith("FAIL") else "pass"]
        if column in ("Δ vs best, significant?", "Δ vs general, significant?"):
            classes += ["delta", "sig"] if text.endswith(" yes") else ["delta"]
        cells.append(f'<td class="{" ".join(classes)}">{escape(text)}</td>')
    return "<tr>" + "".join(cells) + "</tr>"


def _table_html(frame: pd.DataFrame, sections: bool = False) -> str:
    """The table; with ``sections``, its rows cut into systems, ablations and variants (each in
    its own ``tbody`` under a heading row, ranks still the whole board's) when the board holds
    more than one kind."""
    head = "".join(f'<th class="{"left" if c in LEFT else ""}">{escape(c)}</th>' for c in frame.columns)
    kinds = [row_kind(str(s)) for s in frame["System"]] if sections and "System" in frame.columns else []
    if len(set(kinds)) <= 1:
        body = "<tbody>" + "".join(_cells(row) for _, row in frame.iterrows()) + "</tbody>"
    else:
        body = ""
        for kind, heading in ROW_KINDS.items():
            rows = [row for (_, row), k in zip(frame.iterrows(), kinds) if k == kind]
            if rows:
                body += (f'<tbody class="{kind}"><tr><th class="section" colspan="{len(frame.columns)}">{escape(heading)}</th></tr>'
                         + "".join(_cells(row) for row in rows) + "</tbody>")  # fmt: skip
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead>{body}</table></div>'


SECTIONS_NOTE = ("# and Δ vs best rank every row of the board together; the sections only group the rows "
                 "(registered systems, ablations, variants and controls).")  # fmt: skip
FOLDED_AFTER = 6
"""Boards with more systems than this start with their confusion matrices folded: one matrix per
system makes the page several screens long."""


def _figure(fig, alt: str) -> str:
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{png_base64(fig)}"></figure>'


def _provenance_html(board: Leaderboard) -> str:
    items = []
    for system, records in board.records.items():
        p = provenance_summary(records)
        commits = ", ".join((c or "unknown")[:12] for c in p["git_commits"]) + (" (dirty)" if p["git_dirty"] else "")
        hashes = ", ".join((h or "none")[:12] for h in p["config_hashes"])
        torch = ", ".join(str(v) for v in p["packages"].get("torch", []))
        items.append(f"<li><b>{escape(system)}</b>: seeds {escape(str(p['seeds']))}; commit {escape(commits)}; "
                     f"config {escape(hashes)}; ascbench {escape(', '.join(map(str, p['ascbench_versions'])))}; "
                     f"torch {escape(torch)}</li>")  # fmt: skip
    return f"<details><summary>Provenance</summary><ul>{''.join(items)}</ul></details>"


def board_section(board: Leaderboard) -> str:
    parts = [f"<h2>{escape(board.title)}</h2>"]
    if board.group.synthetic:
        parts.append(f'<p class="warning">Synthetic data set <code>{escape(board.group.dataset)}</code> '
                     "(fingerprint " + escape(board.group.fingerprint) + "): these numbers are not TAU22 results.</p>")  # fmt: skip
    frame = display_frame(board)
    parts.append(_table_html(frame, sections=True))
    if len({row_kind(str(s)) for s in frame.get("System", [])}) > 1:
        parts.append(f'<p class="note">{escape(SECTIONS_NOTE)}</p>')
    parts += [f'<p class="note">{escape(note)}</p>' for note in board.notes]
    parts.append(f'<p class="note">{escape(board_note(board))}</p>')
    order = section_order([str(s) for s in board.table.index])
    parts.append(_figure(accuracy_vs_macs(board), f"Accuracy vs MACs, {board.title}"))
    parts.append(_figure(per_device_heatmap(board, order), f"Accuracy per device, {board.title}"))
    confusion = _figure(confusion_grid(board, order=order), f"Confusion matrices, {board.title}")
    folded = "" if len(order) <= FOLDED_AFTER else " (one per system; click to open)"
    parts.append(f"<details{'' if folded else ' open'}><summary>Confusion matrices{folded}</summary>{confusion}</details>")
    parts.append(_provenance_html(board))
    return "\n".join(parts)


def html_page(
    boards: Sequence[Leaderboard], generated_by: str, ranks: Sequence[tuple[RankGroupKey, pd.DataFrame]] = ()
) -> str:
    """The whole page; every image is inline, nothing is fetched when it is opened."""
    title = "ascbench leaderboard" + (f": {boards[0].group.dataset}" if len({b.group.dataset for b in boards}) == 1 else "")
    sections = [board_section(b) for b in boards]
    for key, table in ranks:
        sections.append(f"<h2>DCASE rank score: {escape(key.title)}</h2>" + _table_html(rank_display(table))
                        + '<p class="note">Rank score: mean of the five split accuracies.</p>')  # fmt: skip
    if not sections:
        sections.append("<p>No records.</p>")
    return (
        f"<!DOCTYPE html>\n<!-- Generated by `{escape(generated_by)}` from run records. Do not edit by hand. -->\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style></head>\n'
        f"<body><h1>{escape(title)}</h1>\n" + "\n".join(sections)
        + f'\n<p class="note">Generated by <code>{escape(generated_by)}</code> from run records; do not edit by hand.</p>'
        "\n</body></html>\n"
    )
