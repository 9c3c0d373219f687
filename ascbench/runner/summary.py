"""What ``ascbench run`` prints at the end: the leaderboard of the records it touched."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from ascbench.leaderboard.build import build_leaderboards, rank_tables
from ascbench.leaderboard.render import rank_display, rich_table
from ascbench.results.store import ResultsStore
from ascbench.runner.request import RunOutcome


def print_summary(outcomes: Sequence[RunOutcome], console: Console, store: ResultsStore) -> None:
    """The leaderboard (one per data set, fraction and profile) of this command's records only,
    so older records of other systems never sneak into what the user just asked for."""
    for outcome in outcomes:
        if outcome.error:  # printed in full when the run failed; here, one line per run
            first, *rest = outcome.error.splitlines() or [""]
            more = " (full error above)" if rest or len(first) > 200 else ""
            console.print(f"[red]failed:[/] {escape(outcome.request.label())}: {escape(first[:200])}{more}", highlight=False)
    records = [o.record for o in outcomes if o.record is not None]
    if not records:
        return
    for board in build_leaderboards(records, store):
        console.print(rich_table(board, console.width))
        for note in board.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for key, table in rank_tables(records):
        console.print(f"[bold]{escape(key.title)}[/]")
        console.print(rank_display(table).to_string(index=False))
