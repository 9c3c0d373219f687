"""The one progress display of long work: a rich bar on stderr.

Used by the training loop (students, teacher fine-tuning and pre-training), the teachers' batch
jobs, the feature cache and prediction. Why one helper: each had grown its own bar with its own
columns; one keeps what they show, and how a disabled display costs nothing, the same everywhere.
(The grid's table of runs, ``ascbench.runner``, is a summary of runs, not a bar of units.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """One bar: ``advance`` it by finished units, with a status line (loss, speed) beside it.

    Built by :func:`progress_bar`; without a display (``enabled=False``) every call is a no-op,
    so callers never branch on whether progress is shown."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, units: int = 1, status: str | None = None) -> None:
        if self._progress is not None:
            fields = {} if status is None else {"status": status}
            self._progress.update(self._task, advance=units, **fields)

    def describe(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description)


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, total: int, completed: int = 0, *, console: Console | None = None,
                 transient: bool = False) -> Iterator[ProgressBar]:  # fmt: skip
    """A :class:`ProgressBar` over ``total`` units (``completed`` already done, e.g. restored from a
    checkpoint), shown while the block runs when ``enabled``: on ``console`` (default stderr), and
    removed at the end when ``transient`` (a command whose output follows it)."""
    if not enabled:
        yield ProgressBar()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
               TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console or Console(stderr=True), transient=transient) as progress:
        yield ProgressBar(progress, progress.add_task(description, total=total, completed=completed, status=""))


def stderr_log(enabled: bool, prefix: str) -> Callable[[str], None] | None:
    """A ``log`` callable for :func:`ascbench.training.loop.fit` that prints ``prefix: line`` on
    stderr (the teachers' stages, which have no run log of their own); None when not ``enabled``."""
    if not enabled:
        return None
    console = Console(stderr=True)
    return lambda line: console.print(f"{prefix}: {line}")
