"""Pieces every ascbench command shares: the console, the ``--home`` option, help panels and
examples, clean failures."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.markup import escape

def _console(stderr: bool = False) -> Console:
    """A terminal gets its own width; a pipe or log file gets 160 columns (rich's default of 80
    wraps leaderboard tables into unreadable columns) unless $COLUMNS says otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=160 if wide else None)


console = _console()
err_console = _console(stderr=True)

DATA_PANEL = "Data"
TRAINING_PANEL = "Training"
TEACHERS_PANEL = "Teachers"
EXECUTION_PANEL = "Execution"
RECORDS_PANEL = "Records"
OUTPUT_PANEL = "Output"
"""Help panels: options grouped by what they decide, the same names in every command."""


def home_option(panel: str | None = None) -> Any:
    """The ``--home`` option, in ``panel`` of a command whose options are grouped."""
    return Annotated[
        Optional[Path],
        typer.Option(
            "--home",
            help="Where ascbench keeps data sets, caches, checkpoints and records (default: $ASCBENCH_HOME, else ~/.cache/ascbench).",
            show_default=False,
            rich_help_panel=panel,
        ),
    ]


HomeOption = home_option()


def examples(*lines: tuple[str, str]) -> str:
    """A help epilog of example command lines, each under a comment that says what it does (rich
    markup; a comment beside its command would wrap at 80 columns)."""
    return "[bold]Examples[/]\n\n" + "\n".join(f"[dim]# {escape(what)}[/]\n{escape(command)}" for command, what in lines)


def print_wide(renderable: RenderableType) -> None:
    """Print at the renderable's natural width, past the terminal's edge if need be (``--wide``:
    every column whole, for a wider window or ``less -S``) instead of folding cells to fit."""
    natural = Measurement.get(console, console.options.update_width(10_000), renderable).maximum
    if natural <= console.width:
        console.print(renderable)
        return
    Console(file=console.file, width=natural, color_system=console.color_system, force_terminal=console.is_terminal).print(renderable)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error (no traceback: the user's input was wrong, not the program)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # one line: greppable, never re-wrapped
    raise typer.Exit(code)


def resolve_data_root(data: str | None, home: Path | None, progress: bool) -> Path:
    """``--data`` as a directory, the embedded set generated on first use; a bad value is an
    error line, and Ctrl-C while generating leaves nothing half-written (the set is published
    whole or not at all) and says so."""
    from ascbench.data.resolve import resolve_data

    try:
        return resolve_data(data, home, progress=progress, log=lambda message: console.print(escape(message), highlight=False))
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] the data set was not written; the same command generates it again.")
        raise typer.Exit(130) from None


def report_plugin_problems(problems: Iterable[object], out: Console = console) -> None:
    """One line per plugin that did not load (file and cause), never re-wrapped: greppable, and a
    long path is not broken in two."""
    for problem in problems:
        out.print(f"[yellow]plugin problem:[/] {escape(str(problem))}", highlight=False, soft_wrap=True)


SUBMISSIONS_HELP = (
    "Folder of submission plugins to load instead of the default folders ($ASCBENCH_SUBMISSIONS, "
    "else ./submissions and the checkout's submissions/); it must exist. Entry-point plugins "
    "(the baselines) are always loaded."
)
"""The truth about ``--submissions`` (:func:`ascbench.systems.registry.submission_folders`): it
replaces the default folders, it does not add to them."""


def recorded_data_option(data: str | None) -> tuple[str | None, str | None]:
    """``--data``: a recorded name, or the directory ``run --data`` was given (its name and
    fingerprint); a broken directory is an error line naming its file."""
    if data is None:
        return None, None
    from ascbench.data.reader import DataError
    from ascbench.data.resolve import recorded_data

    try:
        return recorded_data(data)
    except (DataError, FileNotFoundError) as error:
        fail(f"--data {data}: {error}")
