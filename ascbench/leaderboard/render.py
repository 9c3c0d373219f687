"""Leaderboards as people read them: the paper's columns in percent, M MACs and kB.

One display frame (strings) feeds the terminal table, Markdown and HTML, so the three never
disagree on rounding or headers; CSV and JSON carry the raw numbers instead.
"""

from __future__ import annotations

import math
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
    "and seeds (significant = 95 % interval excludes 0)."
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
        })  # fmt: skip
    return pd.DataFrame(rows)


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
    "Int8 file (kB)": "file kB", "DCASE limits": "DCASE", "Seeds": "n", "Δ vs best, significant?": "Δ vs best (sig.?)",
    "Device-specific %": "Device %", "General %": "General %", "Δ vs general, significant?": "Δ vs general (sig.?)",
    "Real (a–c) % general → device": "Real gen→dev", "Seen (s1–s3) % general → device": "Seen gen→dev",
    "Unseen (s4–s6) % general → device": "Unseen gen→dev",
}  # fmt: skip
"""Shorter headers for the terminal, where width is scarce; files keep the full ones."""


OPTIONAL_IN_TERMINAL = ("Int8 file (kB)", "95 % CI", "Seen %", "Paper label",
                        # a board of device models (--format md has every column)
                        "Params", "Int8 params (kB)", "Log loss", "Seen (s1–s3) % general → device", "MACs (M)",
                        "Unseen (s4–s6) % general → device", "Real (a–c) % general → device")  # fmt: skip
"""Columns left out, in this order, while the terminal is too narrow for the whole table."""


def fit_columns(frame: pd.DataFrame, width: int | None) -> pd.DataFrame:
    """Drop optional columns until each remaining one fits on one line within ``width``."""
    def needed(f: pd.DataFrame) -> int:
        return sum(max(len(TERMINAL_HEADERS.get(c, c)), *(len(str(v)) for v in f[c])) + 3 for c in f.columns)

    for column in OPTIONAL_IN_TERMINAL:
        if width is None or len(frame) == 0 or needed(frame) <= width:
            break
        if column in frame.columns:  # each kind of board has its own optional columns
            frame = frame.drop(columns=column)
    return frame


def rich_table(board: Leaderboard, width: int | None = None) -> Table:
    """A terminal table; the title names the data set and fingerprint, failures are red.

    Given the terminal ``width``, less important columns are left out rather than every cell
    wrapped into an unreadable column of fragments (files always hold every column).
    """
    frame = display_frame(board)
    frame["DCASE limits"] = frame["DCASE limits"].str.replace("audio outside the split (", "outside split (", regex=False)
    frame = fit_columns(frame, width)
    table = Table(title=board.title, caption=board_note(board), caption_justify="left", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    left = {"System", "Paper label", "Δ vs best, significant?", "DCASE limits", "Δ vs general, significant?"}
    for column in frame.columns:
        table.add_column(TERMINAL_HEADERS.get(column, column), justify="left" if column in left else "right",
                         no_wrap=column in ("System", "#"), overflow="fold")  # fmt: skip
    for _, row in frame.iterrows():
        cells = [Text(str(v)) for v in row]
        verdict = cells[list(frame.columns).index("DCASE limits")]
        verdict.stylize("bold red" if str(verdict).startswith("FAIL") else "green")
        if str(cells[-1]).endswith(" yes"):
            cells[-1].stylize("bold")
        table.add_row(*cells)
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
