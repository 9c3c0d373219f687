"""Run a grid of requests one after another in this process, with an overall progress bar.

A failing system does not stop the others (its error is reported at the end); Ctrl-C stops
the grid, keeps every finished record and the interrupted run's checkpoints, so the same command
resumes.

"Failing" is anything a run raises but ``KeyboardInterrupt``: plugin code runs inside every run
(its factory, its forward in training mode, its recipe), and whatever its bug raises (an
``AttributeError``, a ``KeyError``, an ``assert``, a ``sys.exit()``) must cost that run only.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ascbench.runner.execute import execute_run
from ascbench.runner.request import RunOutcome, RunRequest
from ascbench.systems.registry import PLUGIN_ERRORS, Registry, SystemLoadError, describe_error, discover
from ascbench.training import TrainingDiverged

RECOVERABLE: tuple[type[BaseException], ...] = PLUGIN_ERRORS
"""Errors that end one run but let the grid go on: every ``Exception`` and ``SystemExit``. A list of
"expected" types once left out ``AttributeError``, ``TypeError``, ``KeyError``... and one buggy
submission then took the whole grid down with a traceback. ``KeyboardInterrupt`` is not here:
Ctrl-C stops the grid (the CLI says how to resume)."""

DIAGNOSED = (SystemLoadError, TrainingDiverged)
"""Errors whose message is already the harness's diagnosis (the plugin named, the diverged step):
a source line inside ascbench would add nothing to them."""


def run_error(error: BaseException) -> str:
    """The one-paragraph reason a run failed: type, message and, unless the harness diagnosed it
    already, where it was raised (the plugin's own line when the error surfaced in a library)."""
    if isinstance(error, DIAGNOSED):
        return f"{type(error).__name__}: {error}"
    return describe_error(error)


def run_local(
    requests: Sequence[RunRequest],
    *,
    registry: Registry | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> list[RunOutcome]:
    """Execute ``requests`` in order; returns one :class:`RunOutcome` per request."""
    console = console or Console()
    registry = registry if registry is not None else discover(requests[0].submissions if requests else None)
    outcomes: list[RunOutcome] = []
    with Progress(
        TextColumn("[bold]runs[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task("", total=len(requests))
        for request in requests:
            bar.update(task, description=request.label())
            try:
                outcome = execute_run(request, registry=registry, progress=progress, log=console.print)
            except RECOVERABLE as error:
                outcome = RunOutcome(request, None, None, error=run_error(error))
                console.print(f"[red]run {escape(request.label())} failed:[/] {escape(outcome.error)}", highlight=False)
            if outcome.skipped:
                console.print(f"[dim]{escape(request.label())}: complete record found, skipped (--force reruns)[/]")
            outcomes.append(outcome)
            bar.advance(task)
    return outcomes
