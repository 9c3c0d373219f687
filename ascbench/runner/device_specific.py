"""A run of a task with device models (``dcase2025``): the general model, one fine-tuned model per
training device, and each test clip through the model of its device.

The general model is the plain (``dcase2024``) run of the same system, options, split and seed:
it is trained once, or found in the store, and shared with that run. Its predictions' sha256 is
part of this run's identity, so a general model trained again (``--force``) makes the device
models that were fine-tuned from the old one a stale record that is rerun, never shown.

The record holds the device-aware system's figures (its predictions are the routed ones), and in
``device_specific`` the general model's figures on the same clips, the paired difference
between the two, and each model's training and complexity: the limits of the task apply to each
device's model on its own.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ascbench.data.reader import load_split
from ascbench.evaluation.bootstrap import paired_bootstrap
from ascbench.evaluation.metrics import evaluate, group_accuracies
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.features.cache import load_features
from ascbench.progress import progress_bar
from ascbench.recipes.base import RecipeResult
from ascbench.recipes.device_finetune import fine_tune_config, fine_tune_devices
from ascbench.results.provenance import clock, collect
from ascbench.results.record import Complexity, Record
from ascbench.results.store import ResultsStore
from ascbench.runner.execute import RunConfig, execute_run, measure_deployable, predict_test, prepare_run, record_once
from ascbench.runner.identity import config_digest
from ascbench.runner.request import RunOutcome, RunRequest
from ascbench.systems.checkpoint import load_trained_model, save_trained_model
from ascbench.systems.registry import Registry
from ascbench.tasks import DEFAULT_TASK, DEVICE_GROUPS, Task, get_task
from ascbench.training import TrainConfig, resolve_device
from ascbench.training.engine import global_rng_preserved

GENERAL = "general"
"""The name of the general model among a run's models (device ids name the others)."""


@dataclass(frozen=True)
class DeviceStage:
    """What decides the device models besides the general model they start from."""

    task: str
    devices: tuple[str, ...]
    fine_tune: TrainConfig


@dataclass(frozen=True)
class DeviceRunConfig(RunConfig):
    """The general run's configuration and the device stage: the record's provenance holds both,
    flat, so that what reads a run's recipe config (the rules column) reads it the same way."""

    device_stage: DeviceStage

    @classmethod
    def of(cls, general: RunConfig, stage: DeviceStage) -> "DeviceRunConfig":
        return cls(**{f.name: getattr(general, f.name) for f in dataclasses.fields(RunConfig)}, device_stage=stage)


def general_request(request: RunRequest) -> RunRequest:
    """The plain run whose model the device models start from: the same system, options, split and
    seed under the default task (its record is the general model's, shared with ``ascbench run``)."""
    return dataclasses.replace(request, task=DEFAULT_TASK)


def task_groups(task: Task) -> dict[str, tuple[str, ...]]:
    """The device groups a board reports: real, seen and unseen devices, and the devices with a
    model of their own (``known``) against those without (``unknown``)."""
    unknown = tuple(d for members in DEVICE_GROUPS.values() for d in members if d not in task.device_models)
    return {**DEVICE_GROUPS, "known": task.device_models, "unknown": unknown}


def route(task: Task, general: ClipPredictions, by_device: dict[str, ClipPredictions]) -> ClipPredictions:
    """Each clip's scores from the model of its device; the general model's for every device
    without one."""
    scores = np.array(general.scores, copy=True)
    devices = np.asarray(general.devices)
    for name, predictions in by_device.items():
        if task.model_for(name) != name:
            raise ValueError(f"task {task.name} has no model of its own for device {name!r}")
        mine = devices == name
        scores[mine] = np.asarray(predictions.aligned_to(general.filenames).scores)[mine]
    return ClipPredictions(general.filenames, general.labels, scores, general.scores_are)


def execute_device_specific(
    request: RunRequest, *, registry: Registry | None = None, progress: bool = True, log: Callable[[str], None] = print
) -> RunOutcome:
    """Run the general model (or reuse its record), then fine-tune and measure the device models,
    unless an intact record of this run with today's identity exists."""
    task = get_task(request.task)
    task.check_fractions([request.fraction])
    general = execute_run(general_request(request), registry=registry, progress=progress, log=log)
    if general.record is None:
        raise RuntimeError(f"{request.label()}: the general model's run recorded nothing")
    run = prepare_run(request, registry)
    stage = DeviceStage(task.name, task.device_models, fine_tune_config(request.profile))
    config = DeviceRunConfig.of(run.config, stage)
    identity = {
        **run.identity,
        "general": general.record.predictions_sha256 or str(general.record.checksum),
        "device_recipe": config_digest(stage, varying=()),
    }
    run = dataclasses.replace(run, identity=identity)
    store = ResultsStore(run.home)
    return record_once(
        run, store, lambda workdir, out_dir: _fine_tune_and_measure(run, config, general.record, store, workdir, out_dir, progress, log), log
    )


def _fine_tune_and_measure(run, config: DeviceRunConfig, general_record: Record, store: ResultsStore, workdir: Path, out_dir: Path,
                           progress: bool, log: Callable[[str], None]) -> tuple[Record, ClipPredictions]:  # fmt: skip
    request, spec, home, dataset = run.request, run.spec, run.home, run.dataset
    task, stage = get_task(request.task), config.device_stage
    split = load_split(dataset, request.fraction)
    device = resolve_device(request.device)
    provenance = collect(config, list(request.command) or None)
    timings: dict[str, float] = {}
    model_file = general_record.artifacts.get("model")
    if not model_file or not (home / model_file).is_file():
        raise RuntimeError(f"{request.label()}: the general run {general_record.key.slug()} has no model file in this home "
                           f"({model_file or 'none recorded'}); rerun it with --force")  # fmt: skip
    with clock(provenance) as run_clock:
        general_model = load_trained_model(spec, home / model_file)
        with global_rng_preserved():
            features = load_features(dataset, spec.frontend, home=home, progress=progress)
        started = time.perf_counter()
        device_models = fine_tune_devices(general_model, stage.devices, features, split, stage.fine_tune, workdir, request.seed,
                                          device=device, progress=progress, log=log)  # fmt: skip
        timings["fine_tune_s"] = time.perf_counter() - started

        started = time.perf_counter()
        general_predictions = store.load_predictions(general_record)
        models = {GENERAL: general_model, **{m.device: m.model.to("cpu").eval() for m in device_models}}
        predictions = {GENERAL: general_predictions}
        for name, model in models.items():
            if name != GENERAL:
                predictions[name] = predict_test(model, features, split, device)
        routed = route(task, general_predictions, {n: p for n, p in predictions.items() if n != GENERAL})
        metrics = evaluate(routed)
        timings["eval_s"] = time.perf_counter() - started

        started = time.perf_counter()
        artifacts: dict[str, str] = {}
        figures: dict[str, dict[str, object]] = {}
        complexities = []
        with progress_bar(progress, "device models int8", total=len(models)) as stage:
            for name, model in models.items():
                folder = out_dir if name == GENERAL else out_dir / f"device-{name}"
                suffix = "" if name == GENERAL else f"@{name}"
                result = RecipeResult(model=model)
                if name == GENERAL:  # measured by its own run: its figures, and a copy of its int8 file
                    complexity, files = general_record.complexity, _copy_int8(general_record, home, folder)
                else:
                    complexity, files = measure_deployable(spec, model, result, features, split, folder, home, predictions[name])
                path = save_trained_model(model, spec, folder / "model.pt", meta={"run": run.key.slug(), "device_model": name})
                artifacts[f"model{suffix}"] = str(path.relative_to(home))
                if "int8" in files:
                    artifacts[f"int8{suffix}"] = files["int8"]
                complexities.append(complexity)
                stage.advance(status=name)
                figures[name] = {**dataclasses.asdict(complexity), **({"int8_error": result.notes["int8_error"]} if "int8_error" in result.notes else {})}
        timings["complexity_s"] = time.perf_counter() - started
    timings["total_s"] = run_clock.elapsed_s or 0.0

    for trained in device_models:
        figures[trained.device]["training"] = trained.notes()
        figures[trained.device]["own_device_accuracy"] = metrics.per_device.get(trained.device)
    groups = task_groups(task)
    gap = paired_bootstrap(routed, general_predictions)
    device_specific = {
        "task": task.name,
        "devices_with_models": [m.device for m in device_models],
        "fallback": GENERAL,
        "general_run": general_record.key.slug(),
        "general_predictions_sha256": general_record.predictions_sha256,
        "general": {
            "accuracy": general_record.metrics.accuracy,
            "per_device": dict(general_record.metrics.per_device),
            "log_loss": general_record.metrics.log_loss,
            "groups": group_accuracies(general_predictions, groups),
        },
        "groups": group_accuracies(routed, groups),
        "delta_vs_general": {"accuracy": gap.difference, "ci95": list(gap.ci95), "p_value": gap.p_value, "n_resamples": gap.n_resamples},
        "models": figures,
    }
    record = Record(
        key=run.key,
        system=spec.summary(),
        metrics=metrics,
        complexity=largest(complexities),
        timings={k: round(v, 3) for k, v in timings.items()},
        provenance=provenance,
        artifacts=artifacts,
        # the general run's notes say what it learnt from (its teacher, the audio it used), which
        # the device models inherit; the rules column reads them from here
        notes={**general_record.notes, "general_run": general_record.key.slug(),
               "fine_tune_epochs": {m.device: m.result.epochs for m in device_models}},  # fmt: skip
        identity=dict(run.identity),
        options=run.options.to_dict(),
        device_specific=device_specific,
    )
    return record, routed


def _copy_int8(record: Record, home: Path, folder: Path) -> dict[str, str]:
    """The general run's int8 file, copied beside this run's models (the general run's own folder
    goes when that run is redone, and this record must keep naming files that exist)."""
    source = record.artifacts.get("int8")
    if not source or not (home / source).is_file():
        return {}
    target = folder / "int8" / Path(source).name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    shutil.copyfile(home / source, partial)
    partial.replace(target)
    return {"int8": str(target.relative_to(home))}


def largest(complexities: list[Complexity]) -> Complexity:
    """The figures a task that limits each device's model on its own is judged by: the largest of
    its models in each measure (the worst int8 agreement), within the limits only if every one is."""
    first = complexities[0]
    int8 = [c.int8_artifact_bytes for c in complexities]
    agreement = [c.int8_agreement for c in complexities if c.int8_agreement is not None]
    within = [c.within_dcase_limits for c in complexities]
    return dataclasses.replace(
        first,
        params=max(c.params for c in complexities),
        macs=max(c.macs for c in complexities),
        param_memory_kb_int8=max(c.param_memory_kb_int8 for c in complexities),
        param_memory_kb_fp16=max(c.param_memory_kb_fp16 for c in complexities),
        int8_artifact_bytes=None if None in int8 else max(int8),  # type: ignore[type-var]
        int8_agreement=min(agreement) if agreement else None,
        within_dcase_limits=False if False in within else (None if None in within else True),
        uncounted_ops=sorted({op for c in complexities for op in c.uncounted_ops}),
    )
