"""The ``ascbench`` command line: one typer app, one module per command group."""

from __future__ import annotations

import inspect
import sys

import typer
from rich.markup import escape
from typer.core import TyperOption

from ascbench import __version__
from ascbench.cli import ablation as ablation_cli
from ascbench.cli import complexity as complexity_cli
from ascbench.cli import data as data_cli
from ascbench.cli import export as export_cli
from ascbench.cli import results as results_cli
from ascbench.cli import run as run_cli
from ascbench.cli import systems as systems_cli
from ascbench.cli import tasks as tasks_cli
from ascbench.cli.common import err_console
from ascbench.cli.native_libraries import native_library_problem

app = typer.Typer(
    name="ascbench",
    help="Benchmark harness for low-complexity, device-robust acoustic scene classification "
    "(DCASE Task 1, TAU Urban Acoustic Scenes 2022 Mobile layout). Every command works on the "
    "embedded synthetic data set 'synth-tau22' unless told otherwise; no result on it is a TAU result.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=True,
)
app.add_typer(data_cli.app, name="data")
run_cli.register(app)
ablation_cli.register(app)
systems_cli.register(app)
tasks_cli.register(app)
complexity_cli.register(app)
results_cli.register(app)
export_cli.register(app)


def _flags_take_no_value() -> None:
    """Show no value type after a flag. Typer's rich help (0.2x) prints one after every option,
    so ``--force`` read ``--force <bool>``, as if it took a value; a flag takes none (older typer
    printed none either). Options that take a value keep theirs (``--seeds <str>``)."""
    typed = getattr(TyperOption, "display_type_rich", None)
    if typed is None or getattr(typed, "flags_untyped", False):
        return

    def display_type_rich(self: TyperOption, ctx: object) -> str | None:
        return None if self.is_flag else typed(self, ctx)

    display_type_rich.flags_untyped = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def _one_line_paragraphs(typer_app: typer.Typer) -> None:
    """Give every command its docstring as help with each paragraph on one line, for rich to
    wrap to the terminal: typer keeps the source's line breaks, which come out ragged (a summary
    broken mid-sentence in the command list, a short line in the middle of a paragraph)."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            paragraphs = inspect.cleandoc(info.callback.__doc__).split("\n\n")
            info.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _one_line_paragraphs(group.typer_instance)


_flags_take_no_value()
_one_line_paragraphs(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ascbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """ascbench: train or load ASC systems under identical splits and measure them honestly."""


def main() -> None:
    """The ``ascbench`` console script: the app, with one line instead of a traceback when the
    machine lacks a native library torch or torchaudio needs (the program is fine, the system is
    not; :mod:`ascbench.cli.native_libraries`). Any other error keeps its traceback."""
    try:
        app()
    except OSError as error:
        problem = native_library_problem(error)
        if problem is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        sys.exit(2)
