"""``ascbench data check``: validate a TAU22-layout directory and summarise what it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ascbench.cli.common import HomeOption, console, fail
from ascbench.data.check import CheckReport, check_dataset
from ascbench.data.layout import META_FILE
from ascbench.paths import datasets_dir

DEFAULT_DATASET_DIR = "synth-tau22-small-seed0"
"""The default synthetic data set's directory under ``<home>/datasets`` (``ascbench data synth`` writes it)."""

SHOWN_PROBLEMS = 50


def register(app: typer.Typer) -> None:
    """Add this module's command to the ``data`` group."""
    app.command("check")(check)


def check(
    directory: Annotated[
        Optional[Path],
        typer.Argument(
            help="Data set root (the directory holding meta.csv and audio/). "
            f"Default: the synthetic data set <home>/datasets/{DEFAULT_DATASET_DIR}.",
            show_default=False,
        ),
    ] = None,
    home: HomeOption = None,
    no_audio: Annotated[
        bool,
        typer.Option("--no-audio", help="Check only the csv files; skip the audio directory (presence, wav headers, samples of float wavs, audio digest)."),
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help=f"List every problem, not only the first {SHOWN_PROBLEMS}.")
    ] = False,
) -> None:
    """Validate a TAU22-layout data set: csv files, splits, and every audio file's header.

    Prints clips per split, device and class, the fingerprint and the digest of the audio bytes (the first check of a data set reads all of its audio; later ones only what changed), then every problem with its file and line: missing or extra audio, bad headers, unknown labels or devices, labels that disagree between files, splits that are not nested, recordings shared by training and test, unseen devices s4-s6 in training, wavs that are not 44.1 kHz mono 1 s, float wavs holding NaN or inf samples.

    Exit status: 0 if the data set is clean, 1 if there are problems, 2 if the directory does not exist.
    """
    if directory is None:
        directory = datasets_dir(home) / DEFAULT_DATASET_DIR
        if not directory.is_dir():
            fail(f"the default data set {directory} does not exist; create it with `ascbench data synth`")
    elif not directory.is_dir():
        fail(f"{directory}: no such directory; expected a TAU22-layout data set root (meta.csv, audio/, split_setup/)")

    report = check_dataset(directory, progress=True, audio=not no_audio, digest=True, home=home)
    console.print(_summary_table(report))
    if not report.audio_checked:
        reason = "--no-audio" if no_audio else f"{META_FILE} is unusable"
        console.print(f"[yellow]audio not checked ({reason})[/]")
    if report.ok:
        console.print(f"[bold green]OK[/]: no problems in {escape(str(report.root))}")
        return
    shown = report.problems if show_all else report.problems[:SHOWN_PROBLEMS]
    console.print(f"\n[bold red]{len(report.problems)} problem{'s' if len(report.problems) > 1 else ''}[/] in {escape(str(report.root))}:")
    for problem in shown:
        console.print(f"  {escape(str(problem))}", highlight=False, soft_wrap=True)
    if len(shown) < len(report.problems):
        console.print(f"  ... and {len(report.problems) - len(shown)} more (--all lists them all)")
    raise typer.Exit(1)


def _summary_table(report: CheckReport) -> Table:
    """Clips per device and per class (rows) for meta.csv and each split/test file (columns)."""
    columns = list(report.by_device.columns)
    table = Table(
        title=f"{report.name}  ({escape(str(report.root))})",
        # the fingerprint sees audio names and sizes only; the audio digest, the bytes
        caption=f"fingerprint {report.fingerprint or '-'}   audio digest {report.audio_digest or '-'}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("", no_wrap=True)
    for name in columns:
        table.add_column(name.removesuffix(".csv"), justify="right", no_wrap=True, min_width=len(name) - 4)

    def row(label: str, values: list[int], **style: object) -> None:
        table.add_row(label, *(f"{value:,}" for value in values), **style)

    row("clips", [report.clips[name] for name in columns], style="bold")
    row("recordings", [report.recordings[name] for name in columns], end_section=True)
    for device, counts in report.by_device.iterrows():
        row(f"device {device}", counts.tolist())
    table.rows[-1].end_section = True
    for scene, counts in report.by_class.iterrows():
        row(str(scene), counts.tolist())
    return table
