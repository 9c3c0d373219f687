"""``ascbench systems``: what is registered, where it came from, and how big it is."""

from __future__ import annotations

import enum
import json
import re
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ascbench.cli.common import SUBMISSIONS_HELP, console, err_console, fail, print_wide, report_plugin_problems


class SystemsFormat(str, enum.Enum):
    table = "table"
    json = "json"


def public_reference(reference: str) -> str:
    """A system's reference without the paths of files beside this checkout (``(this
    benchmark's ../shared/seed-paper.txt)``): they mean nothing to a reader elsewhere."""
    text = re.sub(r"\s*\([^()]*\.\.?/[^()]*\)", "", reference)
    return re.sub(r"\s*\.\.?/\S+", "", text).strip()


def system_rows(registry: Any, complexity: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per registered system (its public fields, params and MACs, or the error that
    kept them from being counted), and the plugins' problems."""
    from ascbench.evaluation.complexity import measure_complexity
    from ascbench.systems.registry import SystemLoadError, model_input_shape, validate_system

    rows, broken = [], []
    for name in registry.names():
        spec = registry.get(name)
        row = {"name": spec.name, "family": spec.family, "paper_label": spec.paper_label or None, "frontend": spec.frontend.name,
               "params": None, "macs": None, "reference": public_reference(spec.reference), "description": spec.description,
               "origin": spec.origin}  # fmt: skip
        if complexity:
            try:
                report = measure_complexity(validate_system(spec), model_input_shape(spec))
                row.update(params=report.params, macs=report.macs)
            except SystemLoadError as error:
                broken.append(str(error))
                row["error"] = str(error)
        rows.append(row)
    return rows, [*map(str, registry.problems), *broken]


def systems_table(rows: list[dict[str, Any]], width: int | None) -> Table:
    """The registered systems, one line each. Fitted to ``width``, a reference is cut to its
    first clause and then to the room left (``--wide``, ``width=None``, and ``--format json`` have
    it whole), MACs are in millions, and a frontend all systems share is said once, in the caption."""
    frontends = {row["frontend"] for row in rows}
    columns = ["name", "family", "paper", "params", "MACs" if width is None else "MACs M", "reference"]
    if width is None or len(frontends) > 1:
        columns.insert(3, "frontend")
    caption = "Params and MACs per 1-s clip" + ("" if "frontend" in columns else f", all on the {frontends.pop()} frontend") + "."
    caption += "" if width is None else " Whole references: --wide or --format json."
    cells = []
    for row in rows:
        count = "—" if row["params"] is None else f"{row['params']:,}"
        macs = "—" if row["macs"] is None else f"{row['macs']:,}" if width is None else f"{row['macs'] / 1e6:.2f}"
        if "error" in row:
            count = macs = "broken"
        cells.append({"name": row["name"], "family": row["family"], "paper": row["paper_label"] or "", "frontend": row["frontend"],
                      "params": count, "MACs": macs, "MACs M": macs,
                      "reference": row["reference"] if width is None else row["reference"].split(";")[0]})  # fmt: skip
    table = Table(title="Registered systems", title_justify="left", caption=caption, caption_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True)  # fmt: skip
    room = None if width is None else width - sum(max(len(c), *(len(r[c]) for r in cells)) + 2 for c in columns[:-1])
    for column in columns:
        table.add_column(column, justify="right" if column.startswith(("params", "MACs")) else "left", no_wrap=True, overflow="ellipsis",
                         max_width=max(room, 9) if room is not None and column == "reference" else None)  # fmt: skip
    for cell in cells:
        table.add_row(*(f"[red]{cell[c]}[/]" if cell[c] == "broken" else escape(cell[c]) for c in columns))
    return table


def systems(
    submissions: Annotated[Optional[Path], typer.Option("--submissions", help=SUBMISSIONS_HELP)] = None,
    no_complexity: Annotated[bool, typer.Option("--no-complexity", help="Skip building each model to count params and MACs.")] = False,
    options: Annotated[bool, typer.Option("--options", help="Instead, list each system's run options (what `ascbench run --set KEY=VALUE` sets) with their defaults.")] = False,
    fmt: Annotated[SystemsFormat, typer.Option("--format", help="table: the terminal; json: every field, for scripts.")] = SystemsFormat.table,
    wide: Annotated[bool, typer.Option("--wide", help="The table with every column and whole references (MACs exact), past the terminal's edge if need be.")] = False,
) -> None:
    """List the registered systems: family, paper label, params and MACs per 1-s clip.

    Every registered system (baselines/, submissions/, entry points) with its family, paper label,
    frontend, params, MACs and reference; plugins that failed to load are listed with the reason,
    and every other system stays usable."""
    from ascbench.systems.registry import SystemLoadError, discover

    try:
        registry = discover(submissions)
    except SystemLoadError as error:  # a --submissions / $ASCBENCH_SUBMISSIONS folder that is not there
        fail(str(error))
    if options:
        print_options(registry)
        return
    rows, problems = system_rows(registry, complexity=not no_complexity)
    if fmt is SystemsFormat.json:
        typer.echo(json.dumps({"systems": rows, "problems": problems}, indent=2, ensure_ascii=False))
        report_plugin_problems(problems, err_console)  # stdout stays JSON
        return
    table = systems_table(rows, None if wide else console.width)
    if wide:
        print_wide(table)
    else:
        console.print(table)
    report_plugin_problems(problems)


def print_options(registry: Any) -> None:
    """Each recipe's run options (what ``--set KEY=VALUE`` sets), their defaults and what they do:
    one table per set of options, naming the systems that share it (one row per system and
    option repeated the same rows and took 149 lines at 80 columns)."""
    import dataclasses

    from ascbench.recipes.base import options_type
    from ascbench.runner.execute import system_recipe

    shared: dict[tuple[tuple[str, str, str], ...], list[str]] = {}
    for name in registry.names():
        kind = options_type(system_recipe(registry.get(name)))
        defaults = kind()
        rows = []
        for f in dataclasses.fields(kind):
            default = getattr(defaults, f.name)
            shown = "none" if default is None else ",".join(default) if isinstance(default, tuple) else str(default)
            rows.append((f.name, shown, f.metadata.get("help", "")))
        shared.setdefault(tuple(rows), []).append(name)
    for rows, names in shared.items():
        table = Table(title=f"Run options of {', '.join(names)} (ascbench run --set KEY=VALUE)", title_justify="left",
                      box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)  # fmt: skip
        table.add_column("option", no_wrap=True)
        table.add_column("default", no_wrap=True)
        table.add_column("what")
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
        console.print()


def register(app: typer.Typer) -> None:
    """Add ``systems`` to the main app."""
    app.command("systems")(systems)
