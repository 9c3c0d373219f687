"""``ascbench data synth``: write the embedded synthetic data set synth-tau22."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ascbench.cli.common import HomeOption, console, fail
from ascbench.data.check import check_dataset
from ascbench.data.synth import SIZES, SynthConfig, default_synth_dir, generate, is_complete

Size = Enum("Size", {name: name for name in SIZES}, type=str)  # tiny | small | medium


def register(app: typer.Typer) -> None:
    """Add this module's command to the ``data`` group."""
    app.command("synth")(synth)


def synth(
    size: Annotated[
        Size,
        typer.Option("--size", help="tiny (~1,200 clips, for tests), small (~5,500 clips, the default data set), medium (~23,000 clips)."),
    ] = Size.small,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of everything drawn: scenes, cities, devices, splits.")] = 0,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Directory to write (default: <home>/datasets/synth-tau22-<size>-seed<seed>).", show_default=False),
    ] = None,
    home: HomeOption = None,
    force: Annotated[bool, typer.Option("--force", help="Regenerate even if a complete data set is already there.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes writing audio (the output does not depend on it).")] = 2,
) -> None:
    """Generate synth-tau22: a deterministic synthetic data set in the exact TAU22 Mobile layout.

    10 scene classes from class-specific backgrounds and events (with TAU's confusions), city and location variation, parallel recordings by devices a, b, c, s1-s6, TAU device proportions in training, balanced devices in test, s4-s6 only in test. The same size and seed always give the same bytes. Results on it are not TAU results.
    """
    config = SynthConfig.preset(size.value, seed, workers=workers)
    root = (out.expanduser().resolve() if out is not None else default_synth_dir(size.value, seed, home))
    if is_complete(root, config) and not force:
        console.print(f"[green]already there[/]: {escape(str(root))} (--force regenerates it)")
        _summary(root)
        return
    console.print(f"writing synth-tau22-{size.value} (seed {seed}) to {escape(str(root))}")
    started = time.perf_counter()
    try:
        generate(config, root, progress=True)
    except FileExistsError as error:
        fail(f"{error}; choose another --out")
    except OSError as error:
        fail(f"cannot write {root}: {error}")
    console.print(f"[bold green]done[/] in {time.perf_counter() - started:.1f} s: {escape(str(root))}")
    _summary(root)


def _summary(root: Path) -> None:
    """Clips per file and the fingerprint (csv checks only: the audio was just written by us)."""
    report = check_dataset(root, progress=False, audio=False)
    clips = ", ".join(f"{name.removesuffix('.csv')} {count:,}" for name, count in report.clips.items())
    console.print(f"{report.name}: {clips}; fingerprint {report.fingerprint}", highlight=False)
    if not report.ok:
        fail(f"the generated data set has {len(report.problems)} problems; run `ascbench data check {root}`")
