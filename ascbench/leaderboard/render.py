"""Leaderboards as people read them: the paper's columns in percent, M MACs and kB.

One display frame (strings) feeds the terminal table, Markdown and HTML, so the three never
disagree on rounding or headers; CSV and JSON carry the raw numbers instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd
from rich import box
from rich.table import Table
from rich.text import Text

from ascbench.leaderboard.build import DCASE_MAX_MACS, DCASE_MAX_PARAM_KB, SPLIT_COLUMNS, Leaderboard, RankGroupKey

DASH = "—"
DCASE_NOTE = (
    f"DCASE limits: ≤ {DCASE_MAX_PARAM_KB:g} kB int8 parameter memory and ≤ {DCASE_MAX_MACS / 1e6:g} M MACs "
    "per 1-s clip, trained on the split's audio only (plus external resources a submission lists: a teacher "
    "checkpoint or teacher logits file passes if declared; an ensemble teacher of runs trained on the split passes; "
    "a teacher pre-trained here on the split's unlabeled pool, and --pool-kd, use development audio outside the split). Accuracy: macro class-wise accuracy on test.csv, mean ± std over seeds; 95 % CI: "
    "test-clip bootstrap, averaged over seeds. Δ vs best: paired bootstrap over the same test clips "
    "and seeds (significant = Holm-corrected p < 0.05 over the board's comparisons). Rank 95 %: the rank's "
    "interval over resampled test clips and seeds."
)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def percent(mean: object, std: object = None) -> str:
    """0.6138, 0.012 -> '61.4 ± 1.2'; a missing mean -> '—'; no std (one seed) -> '61.4'."""
    if _missing(mean):
        return DASH
    text = f"{float(mean) * 100:.1f}"
    return text if _missing(std) else f"{text} ± {float(std) * 100:.1f}"


def number(value: object, fmt: str) -> str:
    return DASH if _missing(value) else format(value, fmt)


DEVICE_NOTE = (
    f"DCASE 2025 rules: each device's model (and the general one, which unknown devices use) ≤ {DCASE_MAX_PARAM_KB:g} kB "
    f"int8 parameter memory and ≤ {DCASE_MAX_MACS / 1e6:g} M MACs per 1-s clip, one at a time (the largest is shown); "
    "trained on split25's audio only; public external data and pre-trained models allowed once declared. "
    "Device-specific: each test clip through its device's fine-tuned model (a, b, c, s1–s3), the general model for the "
    "others. Groups: real a–c, seen s1–s3, unseen s4–s6 (they have no model of their own, so both columns agree there). "
    "Δ vs general: paired bootstrap over the same test clips and seeds (significant = 95 % interval excludes 0)."
)


def dcase_verdict(row: pd.Series) -> str:
    """``pass``, ``FAIL: <what>``, or ``unknown: MACs`` when uncounted operators leave the MAC
    count a lower bound under the limit (``ascbench profile`` names them)."""
    outside = "audio outside the split" + (f" ({row['audio_outside_split']})" if isinstance(row.get("audio_outside_split"), str) else "")
    checks = (("memory", row["memory_ok"]), ("MACs", row["macs_ok"]), (outside, row.get("split_audio_only", True)))
    broken = [name for name, ok in checks if not _missing(ok) and not ok]
    if broken:
        return "FAIL: " + ", ".join(broken)
    unknown = [name for name, ok in checks if _missing(ok)]
    if unknown:
        return "unknown: " + ", ".join(unknown) + " (uncounted operators)"
    external = row.get("external_resources")
    return f"pass if declared: {external}" if isinstance(external, str) and external else "pass"


def board_note(board: Leaderboard) -> str:
    """The rules and definitions under a board: its task's."""
    return DEVICE_NOTE if board.group.device_models else DCASE_NOTE


def gap_text(difference: object, p: object, significant: object) -> str:
    """'+1.2 pts (p=0.004) yes': a paired difference, its p-value and whether its 95 % interval
    excludes 0."""
    if _missing(difference):
        return DASH
    p_text = "p<0.001" if float(p) < 0.001 else f"p={float(p):.3f}"
    return f"{float(difference) * 100:+.1f} pts ({p_text}) {'yes' if significant else 'no'}".replace("-", "−", 1)


def device_display_frame(board: Leaderboard) -> pd.DataFrame:
    """A board of a task with device models: the device-aware system beside its general model,
    overall and per device group, with the paired difference, and the largest model's complexity."""
    rows = []
    for rank, (_, r) in enumerate(board.table.iterrows(), start=1):
        row = {
            "#": str(rank),
            "System": r["system"],
            "Params": number(r["params"], ","),
            "MACs (M)": number(r["macs"] / 1e6, ".2f"),
            "Device-specific %": percent(r["accuracy"], r["accuracy_std"]),
            "General %": percent(r["general_accuracy"], r["general_accuracy_std"]),
            "Δ vs general, significant?": gap_text(r["delta_general"], r["delta_general_p_value"], r["delta_general_significant"]),
        }
        for group, title in (("real", "Real (a–c)"), ("seen", "Seen (s1–s3)"), ("unseen", "Unseen (s4–s6)")):
            row[f"{title} % general → device"] = f"{percent(r[f'general_{group}_accuracy'])} → {percent(r[f'{group}_accuracy'])}"
        row["Log loss"] = number(r["log_loss"], ".3f")
        row["Int8 params (kB)"] = number(r["param_memory_kb_int8"], ".1f")
        row["DCASE limits"] = dcase_verdict(r)
        row["Seeds"] = str(r["seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def delta_text(row: pd.Series, is_best: bool, best_seeds: int | None = None) -> str:
    """'−3.2 pts (p=0.001) yes' for a significant gap to the top system, '… no' otherwise.

    A gap paired over fewer seeds than either row averages says which seeds it covers: it is
    then not the difference of the two accuracies shown."""
    if is_best:
        return "best" if not _missing(row["delta_vs_best"]) else DASH
    if _missing(row["delta_vs_best"]):
        return DASH
    verdict = "yes" if row["delta_significant"] else "no"
    p = row["delta_p_value"]
    p_text = "p<0.001" if p < 0.001 else f"p={p:.3f}"
    text = f"{row['delta_vs_best'] * 100:+.1f} pts ({p_text}) {verdict}".replace("-", "−", 1)
    paired = str(row.get("delta_seeds") or "").split(",")
    if paired != [""] and len(paired) < max(int(row["seeds"]), best_seeds or 0):
        text += f", seed{'s' if len(paired) > 1 else ''} {','.join(paired)} only"
    return text


def display_frame(board: Leaderboard) -> pd.DataFrame:
    """The leaderboard as strings with display headers, best system first."""
    if board.group.device_models:
        return device_display_frame(board)
    rows = []
    for rank, (_, r) in enumerate(board.table.iterrows(), start=1):
        ci = DASH if _missing(r["ci95_low"]) else f"{r['ci95_low'] * 100:.1f}–{r['ci95_high'] * 100:.1f}"
        rows.append({
            "#": str(rank),
            "System": r["system"],
            "Paper label": r["paper_label"] or DASH,
            "Params": number(r["params"], ","),
            "MACs (M)": number(r["macs"] / 1e6, ".2f"),
            "Accuracy %": percent(r["accuracy"], r["accuracy_std"]),
            "95 % CI": ci,
            "Seen %": percent(r["seen_accuracy"], r["seen_accuracy_std"]),
            "Unseen % (S4–S6)": percent(r["unseen_accuracy"], r["unseen_accuracy_std"]),
            "S4–S6 attenuation %": number(r["attenuation_pct"], ".1f")
            + ("" if _missing(r["attenuation_pct_std"]) else f" ± {r['attenuation_pct_std']:.1f}"),
            "Int8 params (kB)": number(r["param_memory_kb_int8"], ".1f"),
            "Int8 file (kB)": number(r["int8_artifact_kb"], ".1f"),
            "DCASE limits": dcase_verdict(r),
            "Seeds": str(r["seeds"]),
            "Δ vs best, significant?": delta_text(r, rank == 1, int(board.table["seeds"].iloc[0])),
            "Rank 95 %": rank_interval(r),
        })  # fmt: skip
    return pd.DataFrame(rows)


def rank_interval(row: pd.Series) -> str:
    """``2–5``: the row's 95 % rank interval (``1`` when it never moves); a dash without one."""
    low, high = row.get("rank_ci_low"), row.get("rank_ci_high")
    if _missing(low) or _missing(high):
        return DASH
    return f"{low:.0f}" if low == high else f"{low:.0f}–{high:.0f}"


def rank_display(table: pd.DataFrame) -> pd.DataFrame:
    """The DCASE rank-score table (one accuracy per split and their mean) as strings."""
    rows = []
    for _, r in table.iterrows():
        row = {"System": r["system"]}
        row.update({f"{column} %": percent(r[column]) for column in SPLIT_COLUMNS})
        row["Rank score %"] = percent(r["rank_score"])
        rows.append(row)
    return pd.DataFrame(rows)


TERMINAL_HEADERS = {
    "Paper label": "Label", "MACs (M)": "MACs M", "Accuracy %": "Acc %", "95 % CI": "95% CI",
    "Unseen % (S4–S6)": "Unseen %", "S4–S6 attenuation %": "S4–S6 att. %", "Int8 params (kB)": "int8 kB",
    "Int8 file (kB)": "file kB", "DCASE limits": "DCASE", "Seeds": "n", "Δ vs best, significant?": "Δ best",
    "Device-specific %": "Device %", "General %": "General %", "Δ vs general, significant?": "Δ gen.",
    "Real (a–c) % general → device": "Real gen→dev", "Seen (s1–s3) % general → device": "Seen gen→dev",
    "Unseen (s4–s6) % general → device": "Unseen gen→dev",
}  # fmt: skip
"""Shorter headers for the terminal, where width is scarce; files and ``--wide`` keep the full ones."""

OPTIONAL_IN_TERMINAL = ("Rank 95 %", "Int8 file (kB)", "95 % CI", "Paper label", "S4–S6 attenuation %", "Seen %", "Log loss",
                        "Params", "Int8 params (kB)", "Seen (s1–s3) % general → device", "Real (a–c) % general → device",
                        "Seeds", "MACs (M)", "Unseen (s4–s6) % general → device", "General %")  # fmt: skip
"""Columns left out, in this order, while the terminal is too narrow for the table (each kind of
board has its own: a board of device models has no "95 % CI", a plain one no "General %")."""

LEFT = {"System", "Paper label", "DCASE limits", "Δ vs best, significant?", "Δ vs general, significant?"}
"""Left-aligned columns (the gaps' short forms come padded, so that their points line up)."""
GAP = 2
"""Columns of the terminal table are two spaces apart (no vertical lines)."""
SYSTEM_MIN = 12
"""The narrowest the System column gets before the table gives up fitting."""


def short_verdict(row: pd.Series) -> str:
    """The DCASE verdict in a few characters: ``pass``, ``pass*`` (once the external resources are
    declared), ``FAIL mem,MACs,out`` (what is broken) or ``? MACs`` (a lower bound under the limit)."""
    checks = (("mem", row["memory_ok"]), ("MACs", row["macs_ok"]), ("out", row.get("split_audio_only", True)))
    broken = [name for name, ok in checks if not _missing(ok) and not ok]
    if broken:
        return "FAIL " + ",".join(broken)
    unknown = [name for name, ok in checks if _missing(ok)]
    if unknown:
        return "? " + ",".join(unknown)
    external = row.get("external_resources")
    return "pass*" if isinstance(external, str) and external else "pass"


def short_gap(difference: object, significant: object, best: bool = False, partial: bool = False) -> str:
    """A paired gap in points, ``*`` when its 95 % interval excludes 0 (a space otherwise, so the
    points line up), ``†`` when it is paired over fewer seeds than the rows average: ``−1.2*``."""
    if _missing(difference):
        return DASH
    if best:
        return "best"
    return f"{float(difference) * 100:+.1f}".replace("-", "−", 1) + ("*" if significant else " ") + ("†" if partial else "")


def terminal_frame(board: Leaderboard) -> tuple[pd.DataFrame, list[str]]:
    """The display frame with the verdict and the gap in their short forms and uniform seeds left
    to the legend; and the legend lines that explain what the short forms stand for."""
    frame = display_frame(board)
    rows = [r for _, r in board.table.iterrows()]
    frame["DCASE limits"] = [short_verdict(r) for r in rows]
    if board.group.device_models:
        column, gap = "Δ vs general, significant?", "Δ gen.: device-specific minus general, points"
        frame[column] = [short_gap(r["delta_general"], r["delta_general_significant"]) for r in rows]
    else:
        column, gap = "Δ vs best, significant?", "Δ best: points behind the best"
        frame[column] = [short_gap(r["delta_vs_best"], r["delta_significant"], i == 0, text.endswith(" only"))
                         for i, (r, text) in enumerate(zip(rows, frame[column]))]  # fmt: skip
    frame[column] = frame[column].str.rjust(frame[column].str.len().max())  # points line up, marks after them
    gap += " (paired over the same test clips and seeds); * significant after Holm's correction over the board"
    if frame[column].str.contains("†").any():
        gap += "; † paired over fewer seeds than the rows average"
    seeds = sorted(set(frame["Seeds"]))
    if len(seeds) == 1:
        frame = frame.drop(columns="Seeds")
    spread = "one seed" if seeds == ["1"] else f"mean ± std over {seeds[0]} seeds" if len(seeds) == 1 else "mean ± std over n seeds"
    marks = {mark for v in frame["DCASE limits"] for mark in (v.split(" ", 1)[1].split(",") if v.startswith("FAIL ") else [v.split(" ")[0]])}
    outside = sorted({use for r in rows if isinstance(r.get("audio_outside_split"), str) for use in r["audio_outside_split"].split(", ")})
    rules = f"mem ≤ {DCASE_MAX_PARAM_KB:g} kB int8 parameters, MACs ≤ {DCASE_MAX_MACS / 1e6:g} M per 1-s clip"
    if not board.group.device_models or "out" in marks:
        rules += ", out: the split's audio only" + (f" (used here: {', '.join(outside)})" if outside else "")
    rules += "; FAIL names the limits broken" + ("; pass* passes once its external resources are declared" if "pass*" in marks else "")
    rules += "; ? a MAC count that is a lower bound (uncounted operators)" if "?" in marks else ""
    legend = [f"Accuracy: macro class-wise on test.csv, {spread}.", f"DCASE limits: {rules}.", gap + "."]
    return frame, legend


def fold_name(name: str, width: int) -> str:
    """A system name over lines of at most ``width`` characters: a variant (``~no-qat``,
    ``@pool-kd1``) starts a line of its own when it does not fit beside the name, and one longer
    than a line breaks before a ``+`` or after a hyphen, never inside a word."""
    lines = [""]
    for part in re.split(r"(?=[~@])", name):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        for piece in re.split(r"(?<=-)|(?=\+)", part) if len(part) > width else [part]:
            if lines[-1] and len(lines[-1]) + len(piece) > width:
                lines.append("")
            lines[-1] += piece
    return "\n".join(lines)


def _width(frame: pd.DataFrame, column: str) -> int:
    return max(len(TERMINAL_HEADERS.get(column, column)), *(len(line) for v in frame[column] for line in str(v).split("\n")))


def fit_columns(frame: pd.DataFrame, width: int) -> pd.DataFrame:
    """Drop optional columns until the rest fit ``width`` with each system name folded at most to
    its registered part (``hubert-mobilenetv2`` of ``hubert-mobilenetv2~no-qat``); then fold the
    names into the width left. No number is ever cut: only names fold."""
    if frame.empty:
        return frame
    base = max(len(re.split(r"[~@]", name)[0]) for name in frame["System"])

    def others(f: pd.DataFrame) -> int:
        return sum(_width(f, c) + GAP for c in f.columns if c != "System")

    for column in OPTIONAL_IN_TERMINAL:
        if others(frame) + min(base, _width(frame, "System")) <= width:
            break
        if column in frame.columns:
            frame = frame.drop(columns=column)
    room = max(width - others(frame), SYSTEM_MIN)
    return frame.assign(System=[fold_name(name, room) for name in frame["System"]])


def rich_table(board: Leaderboard, width: int | None = None) -> Table:
    """The terminal table; the title names the data set and fingerprint, failures are red.

    Given the terminal ``width``, the table fits it: short verdicts and gaps with a legend in the
    caption, less important columns left out, long system names folded, rather than every cell
    wrapped into a column of fragments. ``width=None`` (``--wide``) keeps every column, full texts
    and the full rules note, at the table's natural width; files always hold every column.
    """
    if width is None:
        frame, caption, headers = display_frame(board), board_note(board), {}
    else:
        shown, legend = terminal_frame(board)
        frame = fit_columns(shown, width)
        hidden = [TERMINAL_HEADERS.get(c, c) for c in shown.columns if c not in frame.columns]
        caption = "\n".join(legend + ([f"ascbench leaderboard --wide shows every column ({', '.join(hidden)}) and the full texts."] if hidden else []))
        headers = TERMINAL_HEADERS
    table = Table(title=Text(board.title), caption=Text(caption), caption_justify="left", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True)  # fmt: skip
    for column in frame.columns:
        table.add_column(headers.get(column, column), justify="left" if column in LEFT else "right", no_wrap=True,
                         overflow="fold", min_width=_width(frame, column) if column == "System" else None)  # fmt: skip
    verdict_at = list(frame.columns).index("DCASE limits")
    for _, row in frame.iterrows():
        cells = [Text(str(v)) for v in row]
        verdict = cells[verdict_at]
        verdict.stylize("bold red" if str(verdict).startswith("FAIL") else "green")
        if "*" in str(cells[-1]) or str(cells[-1]).endswith(" yes"):
            cells[-1].stylize("bold")
        table.add_row(*cells)
    return table


def rich_rank_table(title: str, frame: pd.DataFrame, width: int | None = None) -> Table:
    """The DCASE rank-score table (:func:`rank_display`) for the terminal: headers without their
    unit (the caption says it), system names folded into the ``width`` left, never cut."""
    headers = {column: column.removesuffix(" %") for column in frame.columns}
    if width is not None and not frame.empty:
        room = width - sum(_width(frame.rename(columns=headers), headers[c]) + GAP for c in frame.columns if c != "System")
        frame = frame.assign(System=[fold_name(name, max(room, SYSTEM_MIN)) for name in frame["System"]])
    table = Table(title=Text(f"DCASE rank score: {title}"), title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True,
                  caption="Accuracy % per split; rank score: their mean (— until every split has a record).")  # fmt: skip
    for column in frame.columns:
        table.add_column(headers[column], justify="left" if column == "System" else "right", no_wrap=True)
    for row in frame.itertuples(index=False):
        table.add_row(*map(str, row))
    return table


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    numeric = [c for c in frame.columns if c not in {"System", "Paper label", "DCASE limits", "Δ vs best, significant?", "Δ vs general, significant?"}]
    lines = ["| " + " | ".join(map(cell, frame.columns)) + " |",
             "|" + "|".join("---:" if c in numeric else "---" for c in frame.columns) + "|"]  # fmt: skip
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def markdown(boards: Sequence[Leaderboard], generated_by: str, ranks: Sequence[tuple[object, pd.DataFrame]] = ()) -> str:
    """Markdown page: one section per leaderboard (and per rank-score table)."""
    parts = [f"<!-- Generated by `{generated_by}` from run records. Do not edit by hand. -->", ""]
    for board in boards:
        parts += [f"## {board.title}", ""]
        if board.group.synthetic:
            parts += [f"> Synthetic data set `{board.group.dataset}`: these numbers are not TAU22 results.", ""]
        parts += [markdown_table(display_frame(board)), ""]
        if board.notes:
            parts += [*(f"- {note}" for note in board.notes), ""]
        parts += [board_note(board), ""]
    for key, table in ranks:
        parts += [f"## DCASE rank score: {key.title}", "", markdown_table(rank_display(table)), "",
                  "Rank score: mean of the five split accuracies (as DCASE 2024 Task 1 ranks systems).", ""]  # fmt: skip
    parts.append(f"_Generated by `{generated_by}`._")
    return "\n".join(parts) + "\n"


def rank_csv_text(ranks: Sequence[tuple[RankGroupKey, pd.DataFrame]], generated_by: str) -> str:
    """Rank-score tables in one CSV, their group (data set, fingerprint, profile) in the first columns."""
    groups = [({"dataset": k.dataset, "dataset_fingerprint": k.fingerprint, "profile": k.profile}, table) for k, table in ranks]
    return _grouped_csv(groups, generated_by)


def csv_text(boards: Sequence[Leaderboard], generated_by: str) -> str:
    """Raw numbers of every leaderboard in one CSV, the group in the first columns."""
    groups = [({"dataset": b.group.dataset, "dataset_fingerprint": b.group.fingerprint, "fraction": b.group.fraction,
                "profile": b.group.profile}, b.table) for b in boards]  # fmt: skip
    return _grouped_csv(groups, generated_by)


def _grouped_csv(groups: Sequence[tuple[dict[str, object], pd.DataFrame]], generated_by: str) -> str:
    """Tables stacked into one CSV, each row led by its group's columns, under a provenance line:
    rows of different data, splits or profiles stay told apart."""
    frames = [pd.concat([pd.DataFrame({k: [v] * len(table) for k, v in group.items()}), table.reset_index(drop=True)], axis=1)
              for group, table in groups]  # fmt: skip
    body = pd.concat(frames, ignore_index=True).to_csv(index=False, lineterminator="\n") if frames else ""
    return f"# Generated by `{generated_by}` from run records. Do not edit by hand.\n{body}"
