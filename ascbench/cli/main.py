"""The ``ascbench`` command line: one typer app, one module per command group."""

from __future__ import annotations

import typer

from ascbench import __version__
from ascbench.cli import ablation as ablation_cli
from ascbench.cli import complexity as complexity_cli
from ascbench.cli import data as data_cli
from ascbench.cli import export as export_cli
from ascbench.cli import results as results_cli
from ascbench.cli import run as run_cli
from ascbench.cli import systems as systems_cli
from ascbench.cli import tasks as tasks_cli

app = typer.Typer(
    name="ascbench",
    help="Benchmark harness for low-complexity, device-robust acoustic scene classification "
    "(DCASE Task 1, TAU Urban Acoustic Scenes 2022 Mobile layout). Every command works on the "
    "embedded synthetic data set 'synth-tau22' unless told otherwise; no result on it is a TAU result.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(data_cli.app, name="data")
run_cli.register(app)
ablation_cli.register(app)
systems_cli.register(app)
tasks_cli.register(app)
complexity_cli.register(app)
results_cli.register(app)
export_cli.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ascbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """ascbench: train or load ASC systems under identical splits and measure them honestly."""
