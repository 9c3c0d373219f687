"""``ascbench data probe``: is a data set learnable but hard, and do its devices matter?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ascbench.cli.common import HomeOption, console, fail
from ascbench.cli.data_check import DEFAULT_DATASET_DIR
from ascbench.paths import datasets_dir


def register(app: typer.Typer) -> None:
    """Add this module's command to the ``data`` group."""
    app.command("probe")(probe_command)


def probe_command(
    directory: Annotated[
        Optional[Path],
        typer.Argument(help=f"Data set root (default: <home>/datasets/{DEFAULT_DATASET_DIR}).", show_default=False),
    ] = None,
    home: HomeOption = None,
) -> None:
    """The linear floor of a TAU22-layout data set: what a logistic regression on log-mel reaches.

    A scikit-learn logistic regression on the per-clip mean and std of each baseline log-mel bin, trained on split100, tested on test.csv.

    Prints its macro class-wise accuracy (overall, seen devices, unseen s4-s6), a device
    classifier's accuracy (3-fold, grouped by recording), and how often TAU's confusable pairs
    are confused compared with other pairs. Any model worth reporting should beat this floor.
    """
    from ascbench.data.layout import DEVICES
    from ascbench.data.reader import DataError
    from ascbench.data.synth.probe import probe
    from ascbench.features.audio import AudioFormatError

    root = directory if directory is not None else datasets_dir(home) / DEFAULT_DATASET_DIR
    if not (root / "meta.csv").is_file():
        fail(f"{root}: no meta.csv here; give a TAU22-layout directory (or run `ascbench data synth` first)")
    console.print(f"probing {escape(str(root))} (reads every split100 and test clip) ...", highlight=False)
    try:
        report = probe(root)
    except (DataError, AudioFormatError, OSError) as error:  # a broken data set is the user's to fix: say what, no traceback
        fail(str(error))
    confused, other = report.pair_confusion()
    table = Table(title="Linear probe: logistic regression on per-bin log-mel mean and std", title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("scene accuracy (macro, test.csv)", f"{100 * report.accuracy:.1f} %  (chance 10 %)")
    table.add_row("  seen devices a, b, c, s1-s3", f"{100 * report.seen_accuracy:.1f} %")
    table.add_row("  unseen devices s4-s6", f"{100 * report.unseen_accuracy:.1f} %")
    table.add_row("  S4-S6 gap", f"{100 * report.gap:.1f} points")
    table.add_row("device accuracy (3-fold by recording)", f"{100 * report.device_accuracy:.1f} %  (chance {100 / len(DEVICES):.1f} %)")
    table.add_row("confusion of TAU's confusable pairs", f"{100 * confused:.1f} %  vs {100 * other:.1f} % other pairs")
    console.print(table)
