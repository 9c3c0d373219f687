"""The one progress display (``ascbench.progress``): what it shows, and that a disabled one is inert."""

from __future__ import annotations

import io

from rich.console import Console

from ascbench.progress import progress_bar


def test_a_bar_shows_its_description_count_and_status_and_a_disabled_one_prints_nothing() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_bar(True, "baseline-mel features", 10, completed=2, console=console) as bar:
        bar.advance(3, status="loss 1.25")
        bar.advance(5)
    shown = out.getvalue()
    assert "baseline-mel features" in shown and "10/10" in shown and "loss 1.25" in shown

    quiet = io.StringIO()
    with progress_bar(False, "nothing", 4, console=Console(file=quiet)) as bar:
        bar.advance(4, status="x")
        bar.describe("y")
    assert quiet.getvalue() == ""
