"""Pieces every ascbench command shares: the console, the ``--home`` option, clean failures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

HomeOption = Annotated[
    Optional[Path],
    typer.Option(
        "--home",
        help="Where ascbench keeps data sets, caches, checkpoints and records "
        "(default: $ASCBENCH_HOME, else ~/.cache/ascbench).",
        show_default=False,
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error (no traceback: the user's input was wrong, not the program)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)
