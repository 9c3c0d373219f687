"""A benchmark grid (systems × fractions × seeds) and the choice of executor that runs it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console

from ascbench.recipes.base import options_type
from ascbench.recipes.options import RunOptions
from ascbench.runner.local import run_local
from ascbench.runner.request import RunOutcome, RunRequest
from ascbench.systems.registry import Registry
from ascbench.systems.spec import SystemSpec
from ascbench.tasks import DEFAULT_TASK


def build_requests(
    systems: Sequence[SystemSpec],
    data_root: Path,
    fractions: Sequence[float],
    seeds: Sequence[int],
    options: Mapping[str, RunOptions] | None = None,
    registry: Registry | None = None,
    **common,
) -> list[RunRequest]:
    """One request per (system, fraction, seed), systems outermost so a system's runs stay
    together; ``options`` maps a system's name to its validated run options (default: its
    recipe's defaults).

    The runs an ensemble teacher (``--teacher runs:SYS``) reads come first, at the same data,
    split, seed and profile: missing ones are trained, recorded ones are skipped as usual."""
    chosen = {spec.name: (options or {}).get(spec.name) or default_options(spec) for spec in systems}
    requests = [
        RunRequest(
            system=spec.name,
            data_root=Path(data_root),
            fraction=fraction,
            seed=seed,
            options=chosen[spec.name],
            teacher=teacher_kind(spec, chosen[spec.name]),
            **common,
        )
        for spec in systems
        for fraction in fractions
        for seed in seeds
    ]
    return teacher_runs(requests, registry) + requests


def default_options(spec: SystemSpec) -> RunOptions:
    """What ``ascbench run --models SYS`` runs ``spec`` with: its recipe's default options."""
    return options_type(spec.recipe)()


def teacher_kind(spec: SystemSpec, options: RunOptions | None = None) -> str | None:
    """The teacher network (``hubert``, ``beats``) a run of ``spec`` pre-trains or loads; None
    when it has none (a supervised system, or a teacher that gives logits only)."""
    kind = getattr(spec.recipe, "teacher_name", None)
    source = options.source if options is not None else None
    if kind is None or (source is not None and not source.layered):
        return None
    return kind


def teacher_runs(requests: Sequence[RunRequest], registry: Registry | None) -> list[RunRequest]:
    """The member runs of every ``runs:`` teacher in ``requests``, once each, with their systems'
    default options (what ``ascbench run --models SYS`` records), minus those already requested."""
    wanted = {(r.system, r.fraction, r.seed) for r in requests if r.checkpoint is None and r.options == _default(r.system, registry)}
    members: dict[tuple, RunRequest] = {}
    for request in requests:
        source = request.options.source if request.options is not None else None
        if source is None or source.kind != "runs":
            continue
        for system in source.systems:
            key = (system, request.fraction, request.seed)
            if key in wanted or key in members:
                continue
            spec = registry.get(system) if registry is not None else None
            members[key] = dataclasses.replace(request, system=system, options=_default(system, registry), force=False, checkpoint=None,
                                               teacher=teacher_kind(spec) if spec is not None else None,
                                               task=DEFAULT_TASK)  # fmt: skip
    return list(members.values())


def _default(system: str, registry: Registry | None) -> RunOptions | None:
    return default_options(registry.get(system)) if registry is not None and system in registry.systems else None


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
