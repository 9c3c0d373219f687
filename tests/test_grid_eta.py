"""The runs bar's ETA (``ascbench.runner.eta``): each run's own estimate, ticking down while it
runs, held at the later runs' total when a run overruns, and corrected by the runs measured here."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from ascbench.progress import RemainingColumn
from ascbench.runner.eta import RATIO_LIMITS, GridEta


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_eta_counts_down_holds_on_an_overrun_and_learns_from_finished_runs() -> None:
    clock = Clock()
    eta = GridEta([10.0, 20.0, None], clock=clock)  # the third has no estimate: the mean of the others
    assert eta.known and eta.remaining() == pytest.approx(45.0)
    eta.start(0)
    clock.now += 4
    assert eta.remaining() == pytest.approx(41.0)
    clock.now += 16  # twice the estimate: the current run counts zero, never negative
    assert eta.remaining() == pytest.approx(35.0)
    eta.finish(0, computed=True)  # 20 s measured for 10 estimated: this machine is twice as slow
    assert eta.ratio == pytest.approx(2.0) and eta.remaining() == pytest.approx(70.0)
    eta.start(1)
    clock.now += 0.5
    eta.finish(1, computed=False)  # a recorded run skipped in half a second says nothing of speed
    assert eta.ratio == pytest.approx(2.0) and eta.remaining() == pytest.approx(30.0)


def test_one_odd_run_moves_the_estimates_only_so_far_and_no_estimate_means_no_eta() -> None:
    clock = Clock()
    eta = GridEta([1.0, 1.0], clock=clock)
    eta.start(0)
    clock.now += 1000  # caches built, a teacher pre-trained: far off the estimate
    eta.finish(0, computed=True)
    assert eta.ratio == RATIO_LIMITS[1] and eta.remaining() == pytest.approx(RATIO_LIMITS[1])
    unknown = GridEta([None, None])
    assert not unknown.known and unknown.remaining() is None


def test_the_column_shows_a_tasks_own_estimate_else_riches() -> None:
    console = Console(file=io.StringIO(), width=80)
    progress = Progress(RemainingColumn(), console=console)
    own = progress.add_task("runs", total=3, remaining=lambda: 3725.0)
    speed = progress.add_task("epochs", total=3)
    column = progress.columns[0]
    assert column.render(progress.tasks[own]).plain == "1:02:05"
    assert column.render(progress.tasks[speed]).plain == "-:--:--"  # nothing done yet: rich's own, unknown
