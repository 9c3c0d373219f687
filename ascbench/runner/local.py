"""Run a grid of requests one after another in this process, in one live display: the runs bar
with its ETA and, under it, the current run's stage bars.

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
from rich.progress import Progress

from ascbench.progress import labelled, live_display
from ascbench.runner.eta import GridEta
from ascbench.runner.execute import execute_run
from ascbench.runner.plan import estimate_seconds
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
    with live_display(progress, console) as live:
        runs_bar = RunsBar(live, requests, registry)
        for index, request in enumerate(requests):
            runs_bar.start(index, request)
            try:
                with labelled(request.system):  # the runs line names the split and seed
                    outcome = execute_run(request, registry=registry, progress=progress, log=console.print)
            except RECOVERABLE as error:
                outcome = RunOutcome(request, None, None, error=run_error(error))
                console.print(f"[red]run {escape(request.label())} failed:[/] {escape(outcome.error)}", highlight=False)
            if outcome.skipped:
                console.print(f"[dim]{escape(request.label())}: complete record found, skipped (--force reruns)[/]")
            elif outcome.record is not None:
                console.print(result_line(outcome), highlight=False)
            outcomes.append(outcome)
            runs_bar.finish(index, computed=outcome.record is not None and not outcome.skipped)
    return outcomes


class RunsBar:
    """The grid's top line: runs done of all, the current run, and the grid's ETA
    (:class:`ascbench.runner.eta.GridEta`); does nothing without a live display."""

    def __init__(self, live: Progress | None, requests: Sequence[RunRequest], registry: Registry) -> None:
        self._live = live
        self._eta = grid_eta(requests, registry) if live is not None else None
        if live is not None:
            remaining = self._eta.remaining if self._eta is not None else None
            self._task = live.add_task("[bold]runs[/]", total=len(requests), status="", remaining=remaining)

    def start(self, index: int, request: RunRequest) -> None:
        if self._live is not None:
            # the system in the description, the split and seed in the status column: the whole
            # label in the 30-column description cut "hubert-mobilenetv2 split25 seed0" to "spl…"
            self._live.update(self._task, description=f"[bold]runs[/] · {escape(request.recorded_system)}", status=escape(request.where()))
        if self._eta is not None:
            self._eta.start(index)

    def finish(self, index: int, computed: bool) -> None:
        if self._eta is not None:
            self._eta.finish(index, computed)
        if self._live is not None:
            self._live.update(self._task, advance=1, description="[bold]runs[/]", status="")


def grid_eta(requests: Sequence[RunRequest], registry: Registry) -> GridEta | None:
    """The runs bar's ETA, or None (rich's own) when the runs cannot be estimated: an estimate
    is a nicety that must never stop a grid, so whatever estimating raises only costs the ETA."""
    try:
        eta = GridEta(estimate_seconds(requests, registry))
    except RECOVERABLE:
        return None
    return eta if eta.known else None


def result_line(outcome: RunOutcome) -> str:
    """One line per finished run: what a user scanning the log wants first."""
    record = outcome.record
    metrics = record.metrics
    unseen = "" if metrics.unseen_accuracy is None else f", unseen {metrics.unseen_accuracy * 100:.1f} %"
    wall = record.timings.get("total_s")
    took = "" if wall is None else f", {wall:,.0f} s"
    return f"[green]done[/] {escape(outcome.request.label())}: accuracy {metrics.accuracy * 100:.1f} %{unseen}{took}"
