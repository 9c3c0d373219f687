"""Run a grid on a Ray cluster: one Ray task per run, the same :func:`execute_run` as locally.

Records stay the single source of truth, so the rules are the local executor's:

- a run whose complete record exists is not scheduled (unless ``force``); after a driver or node
  death the same command keeps every finished run and reruns only the unfinished ones (Ray
  itself retries a task whose worker died, and :func:`execute_run` resumes from its checkpoints);
- runs that share a teacher stage (``request.shared_stage_key()``, e.g. the same teacher on the
  same split) must not train it twice at the same time: the first pending run of each group
  builds it, and the others are Ray tasks that take the first one's result as an argument, so
  Ray starts them only after it finished and they find the stage in the cache. If that first
  run fails, they are reported as not run instead of each retrying the stage in parallel.

Every node must see the same data root, ascbench home and submissions folder (a shared file
system) and have ascbench installed; the driver fixes the home into each request so that no
worker falls back to its own ``$ASCBENCH_HOME``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ascbench.paths import resolve_home
from ascbench.results.store import ResultsStore
from ascbench.runner.request import RunOutcome, RunRequest

RAY_MISSING = "the Ray executor needs Ray: pip install 'ascbench[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


def stage_key(request: RunRequest) -> Hashable | None:
    """The teacher stage a run shares with others (None: none)."""
    method: Callable[[], Hashable | None] | None = getattr(request, "shared_stage_key", None)
    return method() if method is not None else None


def plan(requests: Sequence[RunRequest]) -> list[list[int]]:
    """For each request, the indices of the requests it must wait for (empty: start at once).

    The first request of each shared-stage group builds the stage; the rest of the group wait for
    it. A student of an ensemble teacher (``runs:SYS``) waits for its members' runs, which
    :func:`ascbench.runner.grid.build_requests` put in the same grid.
    """
    leaders: dict[Hashable, int] = {}
    runs = {(r.system, r.fraction, r.seed): i for i, r in enumerate(requests)}
    waits: list[list[int]] = []
    for index, request in enumerate(requests):
        wait: list[int] = []
        key = stage_key(request)
        if key is not None and key in leaders:
            wait.append(leaders[key])
        elif key is not None:
            leaders[key] = index
        source = request.options.source if request.options is not None else None
        if source is not None and source.kind == "runs":
            wait += [runs[m] for m in ((s, request.fraction, request.seed) for s in source.systems) if m in runs and runs[m] < index]
        waits.append(wait)
    return waits


def already_recorded(requests: Sequence[RunRequest]) -> dict[int, RunOutcome]:
    """Outcomes of the requests whose intact record of the same identity exists (and that are not
    forced): the same test as :func:`ascbench.runner.execute.recorded_outcome`, so a record made
    by an edited plugin or other audio is rerun on Ray too."""
    from ascbench.runner.execute import prepare_run, recorded_outcome
    from ascbench.systems.registry import PLUGIN_ERRORS, discover

    done: dict[int, RunOutcome] = {}
    registry = None
    for index, request in enumerate(requests):
        if request.force:
            continue
        registry = registry if registry is not None else discover(request.submissions)
        try:
            run = prepare_run(request, registry)
        except PLUGIN_ERRORS:  # the run itself reports it, on its worker
            continue
        outcome = recorded_outcome(run, ResultsStore(request.home))
        if outcome is not None:
            done[index] = outcome
    return done


def _execute(request: RunRequest, threads: int, *after: RunOutcome) -> RunOutcome:
    """The body of one Ray task (module level, so workers import it instead of unpickling code).

    A run's failure is returned as its outcome, with the local executor's rule of what a failure is
    (:data:`ascbench.runner.local.RECOVERABLE`), so one plugin's bug costs that run only.

    The run computes with as many threads as CPUs it reserved: more would oversubscribe the node,
    and a run's floating-point results depend on its thread count, so the same request gives the
    same record wherever it runs with the same ``cpus_per_run``.
    """
    import torch

    from ascbench.runner.execute import execute_run
    from ascbench.runner.local import RECOVERABLE, run_error

    torch.set_num_threads(threads)
    for before in after:
        if before.error is not None:
            return RunOutcome(request, None, None, error=f"not run: {before.request.label()}, which builds its teacher, failed ({before.error})")
    try:
        return execute_run(request, progress=False)
    except RECOVERABLE as error:
        # caught here, not left to Ray: an exception escaping the task would reach the runs that
        # wait on this one as their own error, and a SystemExit ends the worker process, which Ray
        # takes for a crashed worker and retries the run (ray-project/ray#40358)
        return RunOutcome(request, None, None, error=run_error(error))


def run_with_ray(
    requests: Sequence[RunRequest],
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    *,
    progress: bool = True,
    console: Console | None = None,
) -> list[RunOutcome]:
    """Execute ``requests`` as Ray tasks; one outcome per request, in request order.

    ``address``: None starts a local Ray instance (or joins ``$RAY_ADDRESS``), ``"auto"`` joins
    the cluster this machine belongs to, ``"host:port"`` a given one. A Ray session that is
    already initialised is used as it is and left running.
    """
    ray = import_ray()
    console = console or Console()
    requests = [dataclasses.replace(r, home=resolve_home(r.home)) for r in requests]
    outcomes: dict[int, RunOutcome] = already_recorded(requests)
    for index in outcomes:
        console.print(f"[dim]{escape(requests[index].label())}: complete record found, skipped (--force reruns)[/]")
    pending = [i for i in range(len(requests)) if i not in outcomes]
    if not pending:  # everything is recorded: starting a Ray instance (seconds, ports, workers) would do nothing
        return [outcomes[i] for i in range(len(requests))]
    waits = plan([requests[i] for i in pending])

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    try:
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run)(_execute)
        threads = max(1, int(cpus_per_run))
        refs: list[Any] = []
        for position, index in enumerate(pending):
            refs.append(task.remote(requests[index], threads, *(refs[wait] for wait in waits[position])))
        index_of = {ref: index for ref, index in zip(refs, pending)}
        with Progress(
            TextColumn("[bold]runs (ray)[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not progress,
        ) as bar:
            bar_task = bar.add_task("", total=len(requests), completed=len(outcomes))
            remaining = list(refs)
            while remaining:
                ready, remaining = ray.wait(remaining, num_returns=1)
                index = index_of[ready[0]]
                outcomes[index] = _result(ray, ready[0], requests[index])
                if outcomes[index].error:
                    console.print(f"[red]run {escape(requests[index].label())} failed:[/] {escape(outcomes[index].error)}", highlight=False)
                bar.advance(bar_task)
    finally:
        if started_here:
            ray.shutdown()
    return [outcomes[i] for i in range(len(requests))]


def _result(ray: Any, ref: Any, request: RunRequest) -> RunOutcome:
    """A task's outcome; an exception that escaped it (a bug, a lost node) becomes the run's error."""
    try:
        return ray.get(ref)
    except Exception as error:  # RayTaskError wraps the worker's exception; keep its last line
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        return RunOutcome(request, None, None, error=f"{type(error).__name__}: {reason}")
