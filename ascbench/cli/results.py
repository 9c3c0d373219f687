"""``ascbench leaderboard`` and ``ascbench check``: views of the results store."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ascbench.cli.common import (
    OUTPUT_PANEL,
    RECORDS_PANEL,
    HomeOption,
    console,
    err_console,
    examples,
    fail,
    home_option,
    print_wide,
    recorded_data_option,
)
from ascbench.tasks import DEFAULT_TASK, get_task

if TYPE_CHECKING:
    from ascbench.results.store import ResultsStore

EXPORT_DIR = Path("leaderboards")
RecordsHome = home_option(RECORDS_PANEL)
SYSTEMS_PATTERN_HELP = "comma-separated names or shell patterns ('hubert-mobilenetv2*': the system and its ablation rows)"


class Format(str, enum.Enum):
    table = "table"
    md = "md"
    csv = "csv"
    json = "json"
    html = "html"


def _records(home: Path | None, data: str | None, fraction: str | None, profile: str | None, systems: str | None = None,
             seeds: list[int] | None = None, task: str | None = DEFAULT_TASK):  # fmt: skip
    """The store and the usable records matching the filters; unusable record files are reported."""
    from fnmatch import fnmatchcase

    from ascbench.results.store import ResultsStore

    store = ResultsStore(home)
    for invalid in store.invalid_records():
        err_console.print(f"[yellow]skipped unusable record[/] {escape(str(invalid.path))}: {escape(invalid.reason)}", highlight=False)
    name, fingerprint = recorded_data_option(data)
    try:
        records = list(store.iter_records(dataset=name, fraction=fraction, profile=profile, task=task, fingerprint=fingerprint))
    except ValueError as error:
        fail(str(error))
    if systems:
        records = [r for r in records if any(fnmatchcase(r.key.system, p) for p in patterns(systems))]
    if seeds:
        records = [r for r in records if r.key.seed in seeds]
    return store, records


def _recorded_data_sets(store: ResultsStore) -> list[str]:
    """``name [fingerprint]`` of every data set this store has records of, for an error that says
    what there is to ask for."""
    return sorted({f"{r.key.dataset} [{r.key.dataset_fingerprint}]" for r in store.iter_records(task=None)})


def patterns(systems: str) -> list[str]:
    """``--systems a,b*``: the names and shell patterns, blanks dropped."""
    return [p.strip() for p in systems.split(",") if p.strip()]


LEADERBOARD_EXAMPLES = examples(
    ("ascbench leaderboard", "every board, fitted to the terminal"),
    ("ascbench leaderboard --fraction 25 --profile quick --wide | less -S", "one board, every column"),
    ("ascbench leaderboard --systems 'hubert-mobilenetv2*' --format md", "the ablation table"),
    ("ascbench leaderboard --fraction all", "the DCASE rank score over the five splits"),
    ("ascbench leaderboard --export", "rewrite the committed files in leaderboards/"),
)


def leaderboard(
    data: Annotated[Optional[str], typer.Option("--data", rich_help_panel=RECORDS_PANEL, help="Only this data set: the directory `run --data` was given (its content), or the name records carry (synth-tau22-small, tau22, tau22-layout-DIR).")] = None,
    fraction: Annotated[Optional[str], typer.Option("--fraction", rich_help_panel=RECORDS_PANEL, help="Only this training fraction (0.05, 0.1, 0.25, 0.5, 1.0 or 5 ... 100), or 'all' for the DCASE rank-score table: one accuracy column per split and their mean.")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", rich_help_panel=RECORDS_PANEL, help="Only this training profile (smoke, quick, dcase).")] = None,
    systems: Annotated[Optional[str], typer.Option("--systems", rich_help_panel=RECORDS_PANEL, help=f"Only these systems: {SYSTEMS_PATTERN_HELP}.")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", rich_help_panel=RECORDS_PANEL, help="Only these run seeds (comma-separated), e.g. the seeds one `ascbench ablation` ran.")] = None,
    task: Annotated[str, typer.Option("--task", rich_help_panel=RECORDS_PANEL, help="Only runs of this challenge task: dcase2024 (default), dcase2025 (device-aware systems beside their general models), or all.")] = DEFAULT_TASK,
    home: RecordsHome = None,
    fmt: Annotated[Format, typer.Option("--format", rich_help_panel=OUTPUT_PANEL, help="table: terminal; md, csv, json (with provenance), html (self-contained page with plots).")] = Format.table,
    wide: Annotated[bool, typer.Option("--wide", rich_help_panel=OUTPUT_PANEL, help="The terminal table with every column and the full texts, past the terminal's edge if need be (pipe it to `less -S`); by default it fits the terminal.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", rich_help_panel=OUTPUT_PANEL, help="Write to this file instead of the terminal; with --export, the directory (default: leaderboards/).")] = None,
    export: Annotated[bool, typer.Option("--export", rich_help_panel=OUTPUT_PANEL, help="Regenerate the committed leaderboard files (md, json, html, csv per data set, fraction and profile) in --out.")] = False,
    resamples: Annotated[int, typer.Option("--resamples", min=100, rich_help_panel=OUTPUT_PANEL, help="Bootstrap resamples for the paired comparison with the best system.")] = 1000,
) -> None:
    """Leaderboards from the run records: systems averaged over seeds, best first.

    One board per data set (name and fingerprint), training fraction and profile. Columns follow the seed paper's tables (params, MACs, accuracy, S4–S6 attenuation, int8 size) plus seen/unseen accuracy, 95 % CI, seeds, DCASE limits (≤ 128 kB int8 parameters, ≤ 30 M MACs) and a paired bootstrap of each system against the best one on the same test clips and seeds.

    The files under leaderboards/ are written by `ascbench leaderboard --export` and never by hand.
    """
    from ascbench.leaderboard.build import RankGroupKey, build_leaderboards, rank_table, rank_tables
    from ascbench.leaderboard.export import dumps, leaderboard_json
    from ascbench.leaderboard.files import write_exports
    from ascbench.leaderboard.html import html_page
    from ascbench.leaderboard.render import csv_text, markdown, rank_csv_text, rank_display, rich_rank_table, rich_table

    if wide and (export or fmt is not Format.table):
        fail("--wide widens the terminal table; the files of --format md|csv|json|html and --export always hold every column")
    if export and (systems or seeds):
        fail("--export writes whole boards under fixed names; --systems or --seeds would overwrite them with part of one. "
             "Write the filtered table to a file of its own: --format md|json|html|csv --out FILE")
    from ascbench.cli.run import parse_seeds

    try:
        seed_list = parse_seeds(seeds) if seeds is not None else None
    except ValueError as error:
        fail(str(error))
    if out is not None and export and out.exists() and not out.is_dir():
        fail(f"--out {out}: with --export, --out is a directory (the files are named per data set, split and profile)")
    if out is not None and not export and out.is_dir():
        fail(f"--out {out} is a directory: name the file to write (or use --export to write every board into a directory)")
    if task != "all":
        try:
            get_task(task)
        except ValueError as error:
            fail(f"--task: {error}")
    rank_mode = fraction is not None and fraction.strip().lower() == "all"
    store, records = _records(home, data, None if rank_mode else fraction, profile, systems, seed_list, None if task == "all" else task)
    if not records:
        wanted = ", ".join(f"{k}={v}" for k, v in (("task", None if task == DEFAULT_TASK else task), ("data", data), ("fraction", fraction), ("profile", profile), ("systems", systems),
                                                    ("seeds", seeds)) if v)  # fmt: skip
        present = _recorded_data_sets(store) if data else []
        there = f"; it has records of {', '.join(present)}" if present else ""
        fail(f"no run records{' with ' + wanted if wanted else ''} in {store.root}{there}; run `ascbench run` first", code=1)

    if export:
        boards = build_leaderboards(records, store, n_resamples=resamples)
        out_dir = out or EXPORT_DIR
        written = write_exports(boards, out_dir, rank_tables(records))
        for path in written:
            console.print(f"wrote {escape(str(path))}", highlight=False)
        return

    filters = (("task", None if task == DEFAULT_TASK else task), ("data", data), ("fraction", fraction), ("profile", profile), ("systems", f"'{systems}'" if systems else None),
               ("seeds", ",".join(map(str, seed_list)) if seed_list else None))  # fmt: skip
    command = " ".join(["ascbench leaderboard", *(f"--{k} {v}" for k, v in filters if v), f"--format {fmt.value}"])
    if rank_mode:
        groups: dict = {}
        for r in records:
            groups.setdefault(RankGroupKey(r.key.dataset, r.key.dataset_fingerprint, r.key.profile), []).append(r)
        ranks = [(key, rank_table(recs)) for key, recs in sorted(groups.items())]
        boards = []
    else:
        ranks = []
        boards = build_leaderboards(records, store, n_resamples=resamples)

    if fmt is Format.table:
        if out is not None:
            fail("--format table prints to the terminal; choose md, csv, json or html to write --out")
        for board in boards:
            if wide:
                print_wide(rich_table(board))
            else:
                console.print(rich_table(board, console.width))
            for note in board.notes:
                console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        for key, table in ranks:
            console.print(rich_rank_table(key.title, rank_display(table), console.width))
        return
    if fmt is Format.md:
        text = markdown(boards, command, ranks)
    elif fmt is Format.json:
        text = dumps(leaderboard_json(boards, command, ranks))
    elif fmt is Format.html:
        text = html_page(boards, command, ranks)
    elif ranks:
        text = rank_csv_text(ranks, command)
    else:
        text = csv_text(boards, command)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {escape(str(out))}", highlight=False)


def check(
    reference: Annotated[Path, typer.Option("--reference", help="A leaderboard JSON written by `ascbench leaderboard --export` (leaderboards/<file>.json).")],
    systems: Annotated[Optional[str], typer.Option("--systems", help=f"Compare these reference systems, {SYSTEMS_PATTERN_HELP}; each must have current records of every seed the reference has. Default: the reference's systems that have current records, over the seeds they have; the others are listed in a note.")] = None,
    tolerance_acc: Annotated[float, typer.Option("--tolerance-acc", min=0.0, help="Allowed drop of mean accuracy, as a fraction (0.02 = 2 points).")] = 0.02,
    home: HomeOption = None,
) -> None:
    """CI regression check: compare current records with a committed leaderboard JSON.

    Only records of the reference's data set fingerprint, fraction and profile are used. By default it compares what ran: the reference's systems that have current records, over the seeds they have (after the Quickstart, its five systems at one seed); the other rows are listed in a note. With --systems, the systems named must be there with every seed of the reference ('*': the whole board).

    A compared system regresses if its mean accuracy drops by more than the tolerance, its parameters or MACs grow, or it newly breaks a DCASE limit; a record of it that cannot be used (damaged or edited: a lost seed) fails too, as does a check with nothing to compare.

    Exit status: 0 no regressions, 1 regressions (listed in a table), 2 unreadable reference.
    """
    from ascbench.leaderboard.export import load_leaderboard_json
    from ascbench.leaderboard.regression import check_entry

    try:
        entries = load_leaderboard_json(reference)
    except ValueError as error:
        fail(str(error))
    store, records = _records(home, None, None, None, task=None)
    invalid = [(str(i.path.relative_to(store.root).with_suffix("")), str(i.path), i.reason) for i in store.invalid_records()]
    failed = False
    for entry in entries:
        report = check_entry(entry, records, tolerance_acc, invalid, patterns(systems) if systems is not None else None)
        for note in report.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        if report.new_systems:
            console.print(f"new systems (not in the reference): {escape(', '.join(report.new_systems))}", highlight=False)
        if report.ok:
            console.print(f"[green]no regressions[/] in {escape(report.group.title)} "
                          f"({len(report.compared)} systems compared with {escape(str(reference))})", highlight=False)  # fmt: skip
            continue
        failed = True
        table = Table(title=Text(f"Regressions: {report.group.title}"), title_justify="left",  # the [fingerprint] is no markup
                      caption=Text(f"reference {reference}; current records in {store.root}"), caption_justify="left")  # fmt: skip
        for column in ("System", "What", "Reference", "Current"):
            table.add_column(column, justify="right" if column in ("Reference", "Current") else "left", overflow="fold")
        for f in report.regressions:
            table.add_row(escape(f.system), escape(f.what), escape(f.reference), f"[red]{escape(f.current)}[/]")
        console.print(table)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` and ``check`` to the main app."""
    app.command("leaderboard", epilog=LEADERBOARD_EXAMPLES)(leaderboard)
    app.command("check")(check)
