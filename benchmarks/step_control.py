"""Is a ``--pool-kd`` gain the pool's, or only the extra optimizer steps? The control.

A ``--pool-kd R`` run trains on (1 + R) times as many clips per epoch as the plain run, so it also
takes (1 + R) times the optimizer steps -- and at the 5 % split the ``quick`` profile's 20 epochs
were only 60 steps (before it had a step floor). This script trains the named systems on the
split's labelled clips alone for exactly ``--epochs`` epochs (the floor switched off), through the
ordinary runner (same teacher stages, same evaluation), and records each run under
``SYSTEM@epochsN`` in the same home, so that ``ascbench leaderboard --systems ...`` compares it,
paired, with the plain and the pool runs::

    python benchmarks/step_control.py --home HOME --models mobilenetv2,beats-mobilenetv2 \\
        --fraction 0.05 --seeds 0,1,2 --epochs 100

Not a test and not collected by pytest (no ``bench_`` prefix).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ascbench.data.layout import parse_fraction
from ascbench.data.resolve import resolve_data
from ascbench.runner.request import SOURCE_SEPARATOR, RunRequest
from ascbench.training import config as training_config


@dataclasses.dataclass(frozen=True)
class EpochControlRequest(RunRequest):
    """A run recorded as ``SYSTEM@epochsN``: never skipped for, nor overwriting, the plain record."""

    epochs: int = 0

    @property
    def recorded_system(self) -> str:
        return f"{super().recorded_system}{SOURCE_SEPARATOR}epochs{self.epochs}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--models", required=True, help="comma-separated systems")
    parser.add_argument("--fraction", default="0.25")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, required=True, help="epochs of the profile's training (stage 1 + 2 for H_M)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--data", default=None, help="as for `ascbench run --data` (default: synth-tau22 small)")
    args = parser.parse_args(argv)

    # before the registry imports the baselines: their recipes read the profile when registered
    base = training_config.get_profile(args.profile)
    # exactly N epochs: the profile's step floor (min_steps) would raise them on a small split.
    # The teachers' fine-tuning keeps its floor (QUICK_MIN_STEPS), so their stages are the plain runs'.
    training_config.PROFILES[args.profile] = dataclasses.replace(base, epochs=args.epochs, min_steps=None)

    from ascbench.runner.grid import run_grid, teacher_kind
    from ascbench.systems.registry import discover

    registry = discover(None)
    data_root = resolve_data(args.data, args.home, progress=False)
    requests = [
        EpochControlRequest(
            system=name, data_root=data_root, fraction=parse_fraction(args.fraction), seed=int(seed), profile=args.profile,
            home=args.home, teacher=teacher_kind(registry.get(name)), epochs=args.epochs,
            command=("python", "benchmarks/step_control.py", *sys.argv[1:]),
        )  # fmt: skip
        for name in args.models.split(",")
        for seed in args.seeds.split(",")
    ]
    outcomes = run_grid(requests, registry=registry, progress=False)
    for outcome in outcomes:
        accuracy = outcome.record.metrics.accuracy if outcome.record else None
        status = "skipped (recorded)" if outcome.skipped else outcome.error or "done"
        print(f"{outcome.request.label()}: {status}" + (f", accuracy {accuracy:.3f}" if accuracy is not None else ""))


if __name__ == "__main__":
    main()
