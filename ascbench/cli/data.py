"""``ascbench data ...``: generate the synthetic data set and validate any TAU22-layout directory."""

from __future__ import annotations

import typer

from ascbench.cli import data_check, data_probe, data_synth

app = typer.Typer(help="Generate (synth), validate (check) and probe (linear floor) TAU22-layout data sets.", no_args_is_help=True)
data_synth.register(app)
data_check.register(app)
data_probe.register(app)
