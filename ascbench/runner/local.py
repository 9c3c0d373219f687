"""Run a grid of requests one after another in this process, with an overall progress bar.

A failing system does not stop the others (its error is reported at the end); Ctrl-C stops
the grid, keeps every finished record and the interrupted run's checkpoints, so the same command
resumes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ascbench.runner.execute import execute_run
from ascbench.runner.request import RunOutcome, RunRequest
from ascbench.systems.registry import Registry, SystemLoadError, discover
from ascbench.training import TrainingDiverged

RECOVERABLE = (TrainingDiverged, SystemLoadError, RuntimeError, ValueError, OSError)
"""Errors that end one run but let the grid go on (a bug in one plugin must not cost the rest: a
submission whose model gives the wrong output shape is a :class:`SystemLoadError`)."""


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
                outcome = RunOutcome(request, None, None, error=f"{type(error).__name__}: {error}")
                console.print(f"[red]run {request.label()} failed:[/] {escape(outcome.error)}", highlight=False)
            if outcome.skipped:
                console.print(f"[dim]{request.label()}: complete record found, skipped (--force reruns)[/]")
            outcomes.append(outcome)
            bar.advance(task)
    return outcomes
