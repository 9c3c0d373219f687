"""The runs bar's ETA, from what each run is expected to take rather than from how fast the bar
has moved.

rich's own ETA divides the runs left by the recent rate of finished runs: it reads ``-:--:--``
until a run finishes, and after that assumes every run costs the same, though an EfficientNet run
takes several times a CP-Mobile one and a teacher system adds its teacher's stages. Here each run
has its own estimate (:func:`ascbench.runner.plan.estimate_seconds`: this machine's records, else
a probe), and the estimates are corrected as the grid goes by the ratio of measured to estimated
time of the runs already finished here, so a machine slower or busier than the records' one
shows it after the first run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

RATIO_LIMITS = (0.2, 5.0)
"""How far the measured/estimated ratio may move the estimates: one odd run (caches built, a
teacher pre-trained once for several seeds) must not swing the ETA by more."""


class GridEta:
    """Seconds left in a grid of runs, ticking down while a run computes.

    The current run counts its estimate minus its elapsed time, never below zero: a run that takes
    longer than estimated holds the ETA at the later runs' total instead of letting it go negative
    or jump."""

    def __init__(self, estimates: Sequence[float | None], clock: Callable[[], float] = time.monotonic) -> None:
        known = [e for e in estimates if e]
        fallback = sum(known) / len(known) if known else None  # a run without an estimate: the mean of the others
        self._estimates = [e if e else fallback for e in estimates]
        self._clock = clock
        self._done: set[int] = set()
        self._current: int | None = None
        self._started = 0.0
        self._measured = 0.0
        self._estimated = 0.0

    @property
    def known(self) -> bool:
        """Whether any run has an estimate (else the ETA is unknown and rich's own is shown)."""
        return any(e is not None for e in self._estimates)

    def start(self, index: int) -> None:
        self._current, self._started = index, self._clock()

    def finish(self, index: int, computed: bool) -> None:
        """Run ``index`` ended; its wall time corrects the estimates only if it ``computed`` (a
        recorded run skipped in a second, or a failure, says nothing about the machine's speed)."""
        self._done.add(index)
        if self._current != index:
            return
        if computed and self._estimates[index]:
            self._measured += self._clock() - self._started
            self._estimated += self._estimates[index]
        self._current = None

    @property
    def ratio(self) -> float:
        if not self._estimated:
            return 1.0
        low, high = RATIO_LIMITS
        return min(max(self._measured / self._estimated, low), high)

    def remaining(self) -> float | None:
        if not self.known:
            return None
        ratio = self.ratio
        later = sum(e for i, e in enumerate(self._estimates) if i not in self._done and i != self._current and e)
        current = 0.0
        if self._current is not None and self._estimates[self._current]:
            current = max(self._estimates[self._current] * ratio - (self._clock() - self._started), 0.0)
        return later * ratio + current
