"""What a ``run`` would do, before it does anything: ``ascbench run ... --dry-run``.

A grid of systems × splits × seeds can take minutes or days and tens of GB of caches; the plan
says which runs are recorded (and skipped), which will compute and why, the caches each builds,
their size on disk, and how long the computing runs should take on this machine. Nothing is
trained, written or generated while planning.

How the time is estimated, in order of trust:

1. ``records``: the median seconds per training clip of this system's records at this profile and
   data set made on this machine (same host name), times this run's training clips. It includes
   everything the recorded runs did (teacher stages, evaluation, int8), from caches as they were.
2. ``probe``: no such record. A few optimizer steps of the system's network on random input of
   its shape, timed here, times the optimizer steps the recipe will take. It covers the student's
   training only: teacher stages and device fine-tuning are listed as not estimated.
"""

from __future__ import annotations

import math
import socket
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ascbench.data.dataset import Dataset
from ascbench.data.layout import SAMPLE_RATE
from ascbench.data.synth import SynthConfig, default_synth_dir
from ascbench.data.synth.plan import SPLIT_FRACTIONS, make_plan
from ascbench.data.reader import load_dataset, load_split
from ascbench.features.cache import STORAGE_DTYPE, cache_dir
from ascbench.paths import resolve_home
from ascbench.recipes.base import effective_config, options_type
from ascbench.results.record import Record
from ascbench.results.store import ResultsStore
from ascbench.runner.execute import prepare_run, recorded_outcome, system_recipe
from ascbench.runner.request import RunRequest
from ascbench.systems.registry import Registry, discover, model_input_shape
from ascbench.systems.spec import SystemSpec
from ascbench.tasks import get_task

PROBE_STEPS = 2
"""Timed optimizer steps per system (after one untimed warm-up step)."""
PROBE_BATCH = 8
"""Clips per probe step: a step's time grows about linearly with the batch on a CPU, so a small
batch, scaled, keeps ``--dry-run`` to seconds per system."""


@dataclass(frozen=True)
class PlannedRun:
    label: str
    skipped: bool
    reason: str
    """Why it runs (no record, what changed), or that its record is current."""
    train_clips: int
    stages: tuple[str, ...]
    seconds: float | None
    """Estimated wall time; None for a skipped run."""
    estimated_by: str
    """``records (N on this machine)`` or ``probe``; what the estimate leaves out follows it."""


@dataclass(frozen=True)
class PlannedCache:
    what: str
    path: Path
    bytes: int
    exists: bool


@dataclass
class Plan:
    data: str
    runs: list[PlannedRun] = field(default_factory=list)
    caches: list[PlannedCache] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(r.seconds or 0.0 for r in self.runs)

    @property
    def new_bytes(self) -> int:
        return sum(c.bytes for c in self.caches if not c.exists)


def plan_runs(requests: Sequence[RunRequest], registry: Registry | None = None) -> Plan:
    """The plan of ``requests`` (their data set must exist: see the CLI for a set not yet generated)."""
    if not requests:
        return Plan(data="nothing")
    first = requests[0]
    registry = registry if registry is not None else discover(first.submissions)
    home = resolve_home(first.home)
    store = ResultsStore(home)
    dataset = load_dataset(first.data_root)
    plan = Plan(data=f"{dataset.name} ({len(dataset.clips):,} clips) at {dataset.root}")
    frontends: dict[str, PlannedCache] = {}
    estimator = _Estimator(split_sizes(dataset), store, dataset)
    for request in requests:
        spec = registry.get(request.system)
        key = spec.frontend.key()
        if key not in frontends:
            shape = spec.frontend.output_shape()
            size = len(dataset.clips) * math.prod(shape) * STORAGE_DTYPE.itemsize
            directory = cache_dir(dataset, spec.frontend, home)
            frontends[key] = PlannedCache(f"features {key}", directory, size, (directory / "manifest.json").is_file())
        plan.runs.append(_plan_one(request, spec, registry, store, estimator))
    plan.caches = list(frontends.values())
    return plan


def estimate_seconds(requests: Sequence[RunRequest], registry: Registry | None = None) -> list[float | None]:
    """Each request's expected wall time, as the plan estimates it (records, else a probe), for the
    runs bar's ETA. Whether a run is recorded is not checked here: that costs what the run's own
    check costs, and a skipped run simply drops its estimate when it ends."""
    if not requests:
        return []
    registry = registry if registry is not None else discover(requests[0].submissions)
    store = ResultsStore(resolve_home(requests[0].home))
    dataset = load_dataset(requests[0].data_root)
    estimator = _Estimator(split_sizes(dataset), store, dataset)
    return [estimator.estimate(request, registry.get(request.system))[0] for request in requests]


def split_sizes(dataset: Dataset) -> Callable[[float], int]:
    """Training clips per fraction, each split read once however many runs and records ask."""
    sizes: dict[float, int] = {}

    def train_clips(fraction: float) -> int:
        if fraction not in sizes:
            sizes[fraction] = len(load_split(dataset, fraction).train)
        return sizes[fraction]

    return train_clips


@dataclass
class _Estimator:
    """Estimates runs' wall times (see the module's docstring); within one plan each system's
    records are read once and each system is probed once, however many splits and seeds it has."""

    train_clips_of: Callable[[float], int]
    store: ResultsStore | None = None
    dataset: Dataset | None = None
    probes: dict[str, float] = field(default_factory=dict)
    rates: dict[tuple[str, str], tuple[float | None, str]] = field(default_factory=dict)
    scoring: dict[str, float | None] = field(default_factory=dict)

    def estimate(self, request: RunRequest, spec: SystemSpec) -> tuple[float, str]:
        """Seconds for ``request`` and how they were estimated."""
        key = (request.recorded_system, request.profile)
        if key not in self.rates and self.store is not None and self.dataset is not None:
            self.rates[key] = _recorded_seconds_per_clip(self.store, *key, self.dataset, self.train_clips_of)
        per_clip, how = self.rates.get(key, (None, ""))
        train_clips = self.train_clips_of(request.fraction)
        if per_clip is not None:
            how += " (without device fine-tuning)" if get_task(request.task).device_models else ""
            return per_clip * train_clips, how
        return self.probe(spec, request, train_clips)

    def probe(self, spec: SystemSpec, request: RunRequest, train_clips: int) -> tuple[float, str]:
        """The student's training time: the recipe's optimizer steps times a step timed here."""
        recipe = system_recipe(spec)
        options = request.options if request.options is not None else options_type(recipe)()
        config = effective_config(recipe, request.profile, options)
        train = getattr(config, "train", config)
        batch = int(getattr(train, "batch_size", 64))
        sized = train.sized_for(train_clips) if hasattr(train, "sized_for") else train
        steps = int(getattr(sized, "epochs", 1)) * math.ceil(train_clips / batch)
        if getattr(sized, "max_steps", None):
            steps = min(steps, int(sized.max_steps))
        if spec.name not in self.probes:
            self.probes[spec.name] = probe_step_seconds(spec, min(batch, PROBE_BATCH)) * batch / min(batch, PROBE_BATCH)
        seconds = steps * self.probes[spec.name]
        scoring = self.scoring_seconds(spec.name)
        if scoring is None:
            return seconds, "probe (the student's training only)"
        return seconds + scoring, "probe (the student's training) + records (evaluation, int8)"

    def scoring_seconds(self, system: str) -> float | None:
        """Evaluation and int8 seconds of ``system`` from this machine's records of the data set,
        at any profile and split: they score the same network on the same test clips whatever the
        training was. Without them a probe misses what dominates a short run (``smoke``: 1 s of
        training against 10-25 s of evaluation and int8)."""
        if system not in self.scoring:
            found = None if self.store is None or self.dataset is None else _recorded_scoring_seconds(self.store, system, self.dataset)
            self.scoring[system] = found
        return self.scoring[system]


def _plan_one(request: RunRequest, spec: SystemSpec, registry: Registry, store: ResultsStore, estimator: _Estimator) -> PlannedRun:
    reasons: list[str] = []
    run = prepare_run(request, registry)
    found = recorded_outcome(run, store, log=reasons.append)
    train_clips = estimator.train_clips_of(request.fraction)
    stages = _stages(run.recipe, request, spec)
    if get_task(request.task).device_models and not request.force and store.usable(run.key) is not None:
        # its identity adds the general run's predictions, known only once that run is settled
        return PlannedRun(request.label(), True, "recorded: skipped unless its general run changed", train_clips, stages, None, "")
    if found is not None and not get_task(request.task).device_models:
        return PlannedRun(request.label(), True, "recorded: skipped", train_clips, stages, None, "")
    reason = "--force" if request.force else (reasons[0].split(": ", 1)[-1] if reasons else "no record yet")
    seconds, how = estimator.estimate(request, spec)
    return PlannedRun(request.label(), False, reason, train_clips, stages, seconds, how)


def plan_new_synthetic(requests: Sequence[RunRequest], registry: Registry, size: str, seed: int = 0) -> Plan:
    """The plan when the embedded data set is still to be generated: its size comes from the
    generator's plan (no audio is rendered), every run computes, and every estimate is a probe."""
    config = SynthConfig.preset(size, seed)
    synth = make_plan(config)
    clips = len(synth.clips())
    train_clips = {fraction: len(synth.splits[name]) for name, fraction in SPLIT_FRACTIONS.items()}
    root = default_synth_dir(size, seed, requests[0].home if requests else None)
    plan = Plan(data=f"synth-tau22-{size}, to be generated ({clips:,} clips) at {root}")
    plan.caches.append(PlannedCache(f"data set synth-tau22-{size} (24-bit wav)", root, clips * SAMPLE_RATE * 3, False))
    estimator = _Estimator(train_clips.__getitem__)  # no records of a set not generated yet: probes only
    home = resolve_home(requests[0].home) if requests else None
    for request in requests:
        spec = registry.get(request.system)
        key = spec.frontend.key()
        if home is not None and not any(c.what == f"features {key}" for c in plan.caches):
            size_bytes = clips * math.prod(spec.frontend.output_shape()) * STORAGE_DTYPE.itemsize
            plan.caches.append(PlannedCache(f"features {key}", home / "features", size_bytes, False))
        stages = _stages(system_recipe(spec), request, spec)
        n = train_clips[request.fraction]
        seconds, how = estimator.probe(spec, request, n)
        plan.runs.append(PlannedRun(request.label(), False, "no record yet (new data set)", n, stages, seconds, how))
    return plan


def _stages(recipe: object, request: RunRequest, spec: SystemSpec) -> tuple[str, ...]:
    if request.checkpoint is not None:
        return ("load weights", "evaluate", "int8")
    stages = []
    teacher = getattr(recipe, "teacher_name", None)
    source = getattr(request.options, "source", None) if request.options is not None else None
    if teacher is not None and (source is None or source.layered):
        stages += [f"{teacher} teacher pre-training" if source is None or source.kind != "checkpoint" else f"{teacher} teacher loading",
                   f"{teacher} teacher fine-tuning"]  # fmt: skip
    stages.append("train")
    task = get_task(request.task)
    if task.device_models:
        stages.append(f"device fine-tuning x{len(task.device_models)}")
    return (*stages, "evaluate", "int8")


def _recorded_seconds_per_clip(store: ResultsStore, system: str, profile: str, dataset: Dataset,
                               train_clips_of: Callable[[float], int]) -> tuple[float | None, str]:  # fmt: skip
    """Median wall seconds per training clip of this system's records of ``dataset`` at ``profile``
    made on this machine (by host name), with how many there were."""
    rates = [record.timings["total_s"] / train_clips_of(record.key.fraction)
             for record in _this_machines_records(store, dataset, system, profile) if record.timings.get("total_s")]
    if not rates:
        return None, ""
    return statistics.median(rates), f"records ({len(rates)} on this machine)"


def _recorded_scoring_seconds(store: ResultsStore, system: str, dataset: Dataset) -> float | None:
    """Median evaluation + int8 seconds of ``system``'s records of ``dataset`` made on this machine."""
    seconds = [record.timings["eval_s"] + record.timings["complexity_s"] for record in _this_machines_records(store, dataset, system)
               if "eval_s" in record.timings and "complexity_s" in record.timings]  # fmt: skip
    return statistics.median(seconds) if seconds else None


def _this_machines_records(store: ResultsStore, dataset: Dataset, system: str, profile: str | None = None) -> Iterator[Record]:
    """``system``'s records of this very data set (by fingerprint) made on this machine (by host
    name): another machine's timings say nothing about this one's."""
    host = socket.gethostname()
    for record in store.iter_records(dataset=dataset.name, system=system, profile=profile, fingerprint=dataset.fingerprint):
        if record.provenance.get("hostname") == host:
            yield record


def probe_step_seconds(spec: SystemSpec, batch: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per optimizer step of ``spec``'s network on random input, on the CPU, here (the
    global random state is left as it was: the runs bar probes just before the runs it estimates)."""
    with torch.random.fork_rng(devices=[]):
        return _timed_steps(spec, batch, clock)


def _timed_steps(spec: SystemSpec, batch: int, clock: Callable[[], float]) -> float:
    torch.manual_seed(0)
    model = spec.build_model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs = torch.randn(batch, *model_input_shape(spec)[1:])  # the shape has a batch axis of 1
    labels = torch.randint(0, spec.n_classes, (batch,))

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    step()
    started = clock()
    for _ in range(PROBE_STEPS):
        step()
    return (clock() - started) / PROBE_STEPS
