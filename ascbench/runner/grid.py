"""A benchmark grid (systems × fractions × seeds) and the choice of executor that runs it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ascbench.runner.local import run_local
from ascbench.runner.request import RunOutcome, RunRequest
from ascbench.systems.registry import Registry
from ascbench.systems.spec import SystemSpec


def build_requests(
    systems: Sequence[SystemSpec],
    data_root: Path,
    fractions: Sequence[float],
    seeds: Sequence[int],
    **common,
) -> list[RunRequest]:
    """One request per (system, fraction, seed), systems outermost so a system's runs stay together.

    A ``teacher_checkpoint``, a pinned ``teacher_seed`` and ``pool_kd`` go only to the systems that
    distil from a teacher; the others run (and are recorded) as usual.
    """
    teacher_checkpoint = common.pop("teacher_checkpoint", None)
    teacher_seed = common.pop("teacher_seed", None)
    pool_kd = float(common.pop("pool_kd", 0.0) or 0.0)
    return [
        RunRequest(
            system=spec.name,
            data_root=Path(data_root),
            fraction=fraction,
            seed=seed,
            teacher=teacher_kind(spec),
            teacher_checkpoint=teacher_checkpoint if teacher_kind(spec) else None,
            teacher_seed=teacher_seed if teacher_kind(spec) else None,
            pool_kd=pool_kd if teacher_kind(spec) else 0.0,
            **common,
        )
        for spec in systems
        for fraction in fractions
        for seed in seeds
    ]


def teacher_kind(spec: SystemSpec) -> str | None:
    """The teacher (``hubert``, ``beats``) a system's recipe distils from; None without one."""
    return getattr(spec.recipe, "teacher_name", None)


def run_grid(
    requests: Sequence[RunRequest],
    *,
    executor: str = "local",
    registry: Registry | None = None,
    progress: bool = True,
    console: Console | None = None,
    ray_address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
) -> list[RunOutcome]:
    """Run every request with the chosen executor; the records are the same either way."""
    if executor == "ray":
        from ascbench.runner.ray_executor import run_with_ray

        return run_with_ray(
            requests, address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, progress=progress, console=console
        )
    return run_local(requests, registry=registry, progress=progress, console=console)
