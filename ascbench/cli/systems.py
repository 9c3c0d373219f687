"""``ascbench systems``: what is registered, where it came from, and how big it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ascbench.cli.common import SUBMISSIONS_HELP, console, fail, report_plugin_problems


def systems(
    submissions: Annotated[Optional[Path], typer.Option("--submissions", help=SUBMISSIONS_HELP)] = None,
    no_complexity: Annotated[bool, typer.Option("--no-complexity", help="Skip building each model to count params and MACs.")] = False,
    options: Annotated[bool, typer.Option("--options", help="Instead, list each system's run options (what `ascbench run --set KEY=VALUE` sets) with their defaults.")] = False,
) -> None:
    """List every registered system (baselines/, submissions/, entry points) with its family,
    reference, frontend, params and MACs per 1-s clip; plugins that failed to load are listed
    with the reason, and every other system stays usable."""
    from ascbench.evaluation.complexity import measure_complexity
    from ascbench.systems.registry import SystemLoadError, discover, model_input_shape, validate_system

    try:
        registry = discover(submissions)
    except SystemLoadError as error:  # a --submissions / $ASCBENCH_SUBMISSIONS folder that is not there
        fail(str(error))
    if options:
        print_options(registry)
        return
    table = Table(title="Registered systems")
    for column in ("name", "family", "paper", "frontend", "params", "MACs", "reference", "origin"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left", overflow="fold")
    broken: list[str] = []
    for name in registry.names():
        spec = registry.get(name)
        params = macs = "—"
        if not no_complexity:
            try:
                report = measure_complexity(validate_system(spec), model_input_shape(spec))
                params, macs = f"{report.params:,}", f"{report.macs:,}"
            except SystemLoadError as error:
                broken.append(str(error))
                params = macs = "[red]broken[/]"
        table.add_row(spec.name, spec.family, spec.paper_label or "", spec.frontend.name, params, macs, spec.reference, spec.origin)
    console.print(table)
    report_plugin_problems([*registry.problems, *broken])


def print_options(registry) -> None:
    """One table row per (system, option): the recipe's options type, its default and what it does."""
    import dataclasses

    from ascbench.recipes.base import options_type
    from ascbench.runner.execute import system_recipe

    table = Table(title="Run options (ascbench run --set KEY=VALUE)")
    for column in ("system", "option", "default", "what"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        kind = options_type(system_recipe(registry.get(name)))
        defaults = kind()
        for f in dataclasses.fields(kind):
            default = getattr(defaults, f.name)
            table.add_row(name, f.name, "none" if default is None else ",".join(default) if isinstance(default, tuple) else str(default),
                          f.metadata.get("help", ""))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``systems`` to the main app."""
    app.command("systems")(systems)
