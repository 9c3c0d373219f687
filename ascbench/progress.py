"""The one progress display of long work: rich bars, in one live region.

Used by the training loop (students, teacher fine-tuning and pre-training), the teachers' batch
jobs, the feature cache, evaluation and prediction. Why one helper: each had grown its own bar with
its own columns; one keeps what they show, and how a disabled display costs nothing, the same
everywhere.

Inside :func:`live_display` (``ascbench run``'s grid), every bar becomes one more line of the
grid's own display, labelled "system · stage", and goes when its stage ends; log lines printed
through :func:`live_console` appear above the bars, not through them. Two displays each redrawing
one terminal line in turn is what made the line flicker and fill the scrollback with stale bars.
A console that is not a terminal (a pipe, a file, CI) gets no live region: plain lines only.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.table import Column
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, Task, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text


_LIVE: contextvars.ContextVar["Progress | None"] = contextvars.ContextVar("ascbench_live_progress", default=None)
_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("ascbench_progress_label", default="")


SPEED_PERIOD_S = 3600.0
"""Seconds over which rich averages a bar's speed for its ETA. rich's 30 s default leaves no
sample in the window when one step (an epoch) takes longer, and the ETA then reads -:--:--; a
stage's whole history gives an ETA that does not jump."""


class RemainingColumn(TimeRemainingColumn):
    """The ETA: a task's own ``remaining`` estimate when it has one (the runs bar's, from the runs'
    expected times: :mod:`ascbench.runner.eta`), else rich's, from the bar's speed."""

    def render(self, task: Task) -> Text:
        remaining = task.fields.get("remaining")
        seconds = remaining() if callable(remaining) and not task.finished else None
        if seconds is None:
            return super().render(task)
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{secs:02d}", style="progress.remaining")


def _columns() -> tuple:
    """Description and status are cut (never wrapped) so that the count, the elapsed time and the
    ETA always fit an 80-column terminal."""
    return (TextColumn("{task.description}", table_column=Column(max_width=30, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=8), MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[status]}", table_column=Column(max_width=14, no_wrap=True, overflow="ellipsis")),
            TimeElapsedColumn(table_column=Column(min_width=7, no_wrap=True)),
            RemainingColumn(elapsed_when_finished=True, table_column=Column(min_width=7, no_wrap=True)))  # fmt: skip


@contextlib.contextmanager
def live_display(enabled: bool, console: Console) -> Iterator[Progress | None]:
    """The grid's one live region on ``console`` (None when not ``enabled`` or not a terminal):
    every :func:`progress_bar` opened inside it is a line of it."""
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(*_columns(), speed_estimate_period=SPEED_PERIOD_S, console=console, transient=False) as progress:
        token = _LIVE.set(progress)
        try:
            yield progress
        finally:
            _LIVE.reset(token)


@contextlib.contextmanager
def labelled(label: str) -> Iterator[None]:
    """Bars opened inside are labelled ``label · stage`` (the run they belong to)."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


def live_console() -> Console | None:
    """The console of the live region, if one is showing: print there to appear above the bars."""
    live = _LIVE.get()
    return live.console if live is not None else None


class ProgressBar:
    """One bar: ``advance`` it by finished units, with a status line (loss, speed) beside it.

    Built by :func:`progress_bar`; without a display (``enabled=False``) every call is a no-op,
    so callers never branch on whether progress is shown."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None, prefix: str = "") -> None:
        self._progress, self._task, self._prefix = progress, task, prefix

    def advance(self, units: int = 1, status: str | None = None) -> None:
        if self._progress is not None:
            fields = {} if status is None else {"status": status}
            self._progress.update(self._task, advance=units, **fields)

    def describe(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=self._prefix + description)


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, total: int, completed: int = 0, *, console: Console | None = None,
                 transient: bool = False) -> Iterator[ProgressBar]:  # fmt: skip
    """A :class:`ProgressBar` over ``total`` units (``completed`` already done, e.g. restored from a
    checkpoint), shown while the block runs when ``enabled``: on ``console`` (default stderr), and
    removed at the end when ``transient`` (a command whose output follows it)."""
    if not enabled:
        yield ProgressBar()
        return
    live = _LIVE.get()
    if live is not None:  # a line of the grid's display, gone when the stage ends
        label = _LABEL.get()
        task = live.add_task(f"{label} · {description}" if label else description, total=total, completed=completed, status="")
        try:
            yield ProgressBar(live, task, prefix=f"{label} · " if label else "")
        finally:
            live.remove_task(task)
        return
    with Progress(*_columns(), speed_estimate_period=SPEED_PERIOD_S, console=console or Console(stderr=True), transient=transient) as progress:
        yield ProgressBar(progress, progress.add_task(description, total=total, completed=completed, status=""))


def stderr_log(enabled: bool, prefix: str) -> Callable[[str], None] | None:
    """A ``log`` callable for :func:`ascbench.training.loop.fit` that prints the stage's lines on
    stderr (the teachers' stages, which have no run log of their own); None when not ``enabled``.

    ``prefix`` (the stage) heads the first line alone and the lines follow indented, not
    ``prefix: line`` on every line: a stage name of 20-35 characters before an epoch line of
    60-75 made every line fold in an 80-column terminal."""
    if not enabled:
        return None
    console = live_console() or Console(stderr=True)
    headed = False

    def log(line: str) -> None:
        nonlocal headed
        if not headed:
            console.print(f"{prefix}:", highlight=False)
            headed = True
        console.print(f"  {line}", highlight=False)

    return log
