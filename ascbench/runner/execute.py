"""Execute one run: data → features → model → recipe → evaluation → complexity → record.

This is the only place that strings the stages together, so the local and the Ray executor
produce identical records: both call :func:`execute_run`. A run writes its record last; if
anything fails or the user interrupts, the store holds what it held before (the previous record,
if any, and the files it names), and the next identical command resumes from the training
checkpoints in the run's work directory.
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
import torch
from torch import nn

from ascbench.data.content import audio_digest
from ascbench.data.dataset import Dataset, DataSplit
from ascbench.data.reader import load_dataset, load_split
from ascbench.evaluation.complexity import measure_complexity
from ascbench.evaluation.metrics import evaluate
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.evaluation.quantize import int8_agreement, quantize_int8
from ascbench.features.cache import CachedFeatures, load_features
from ascbench.locking import exclusive
from ascbench.paths import checkpoints_dir, resolve_home
from ascbench.progress import progress_bar
from ascbench.recipes.base import Recipe, RecipeContext, RecipeResult, effective_config, options_type
from ascbench.recipes.options import RunOptions
from ascbench.recipes.supervised import SupervisedRecipe
from ascbench.results.provenance import clock, collect
from ascbench.results.record import Record, RunKey, audio_outside_split
from ascbench.results.store import ResultsStore
from ascbench.runner.identity import run_identity
from ascbench.results.identity import identity_changes, identity_label
from ascbench.runner.request import RunOutcome, RunRequest
from ascbench.runner.teacher import ResolvedTeacher, resolve_teacher
from ascbench.systems.checkpoint import load_trained_model, read_checkpoint, save_trained_model
from ascbench.systems.registry import Registry, discover, model_input_shape, validate_system
from ascbench.systems.spec import SystemSpec
from ascbench.tasks import DEFAULT_TASK, get_task
from ascbench.training import predict, resolve_device
from ascbench.training.engine import global_rng_preserved

CALIBRATION_CLIPS = 128
"""Training clips used to calibrate int8 activation ranges (never test clips)."""
AGREEMENT_CLIPS = 256
"""Test clips (evenly spaced over test.csv) on which int8/float agreement is measured: the int8
program runs PyTorch's reference kernels on CPU (~20 clips/s for the student), so all of a large
test set would cost minutes per run for a figure that 256 clips already give to about ±3 points."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's numbers; its hash goes into the record's provenance."""

    system: str
    dataset: str
    dataset_fingerprint: str
    fraction: float
    seed: int
    profile: str
    recipe: str
    recipe_config: object
    options: object
    """The recipe's run options (:class:`ascbench.recipes.options.RunOptions`), whole."""
    checkpoint: str | None
    teacher_seed: int | None
    """The teacher's fine-tuning seed, for runs that fine-tune a teacher network (None otherwise)."""


def system_recipe(spec: SystemSpec) -> Recipe:
    """The recipe ``spec`` trains with: its own, or the default supervised one."""
    return spec.recipe if spec.recipe is not None else SupervisedRecipe()


def trained_by(path: Path, store: ResultsStore) -> dict[str, object]:
    """The training run of weights ``ascbench run`` wrote, when this home holds its record.

    Why: weights evaluated with ``--checkpoint`` learnt from whatever audio their training run
    did (a teacher pre-trained on the pool, ``--pool-kd``); the new record must not pass the
    DCASE column that the training run's record fails."""
    try:
        slug = read_checkpoint(path)["meta"].get("run")
    except (OSError, ValueError):  # a plugin's own file format: its origin is unknown here
        return {}
    source = store.read_slug(slug) if isinstance(slug, str) else None
    if source is None:
        return {}
    return {"trained_by": slug, "weights_audio_outside_split": audio_outside_split(source)}


def run_key(request: RunRequest, dataset: Dataset) -> RunKey:
    return RunKey(request.recorded_system, dataset.name, dataset.fingerprint, request.fraction, request.seed, request.profile, request.task)


@dataclass
class PreparedRun:
    """A request resolved against today's code and data: what it would compute, and its identity."""

    request: RunRequest
    home: Path
    dataset: Dataset
    key: RunKey
    spec: SystemSpec
    recipe: Recipe
    config: RunConfig
    model: nn.Module
    """The freshly built model, initialised under the run's seed: what training starts from."""
    identity: dict[str, str]
    options: RunOptions
    teacher: ResolvedTeacher | None = None
    """A ``logits:``/``runs:`` teacher, resolved (None for other sources or none)."""

    @property
    def run_dir(self) -> Path:
        return checkpoints_dir(self.home) / self.key.slug()


def prepare_run(request: RunRequest, registry: Registry | None = None) -> PreparedRun:
    """Resolve ``request``: data set, system, recipe options and the run's identity.

    The model is built here, under the run's seed, both to check the plugin before any feature is
    computed (minutes on real data) and because its architecture is part of the identity.
    """
    home = resolve_home(request.home)
    dataset = load_dataset(request.data_root)
    registry = registry if registry is not None else discover(request.submissions)
    spec = registry.get(request.system)
    recipe = system_recipe(spec)
    options = request.options if request.options is not None else options_type(recipe)()
    fine_tunes_teacher = request.teacher is not None and request.checkpoint is None
    config = RunConfig(
        system=spec.name,
        dataset=dataset.name,
        dataset_fingerprint=dataset.fingerprint,
        fraction=request.fraction,
        seed=request.seed,
        profile=request.profile,
        recipe=recipe.name,
        recipe_config=effective_config(recipe, request.profile, options),
        options=options,
        checkpoint=str(request.checkpoint) if request.checkpoint else None,
        teacher_seed=request.effective_teacher_seed if fine_tunes_teacher else None,
    )
    teacher = None
    if request.checkpoint is None:
        teacher = resolve_teacher(options.source, lambda system: member_run(request, system, registry), request.seed, home)
    torch.manual_seed(request.seed)  # the initial weights are part of what the seed decides
    model = validate_system(spec)
    varying = ("seed", "teacher_seed") if getattr(options, "teacher_seed", None) is None else ("seed",)  # a teacher seed that follows the run's
    identity = run_identity(model, [spec.build_model, spec.recipe], config, audio_digest(dataset, home), varying)
    if teacher is not None:
        identity["teacher"] = teacher.digest
        identity["teacher_source"] = teacher.source_digest
    return PreparedRun(request, home, dataset, run_key(request, dataset), spec, recipe, config, model, identity, options, teacher)


def member_run(request: RunRequest, system: str, registry: Registry) -> tuple[SystemSpec, Record | None, str]:
    """An ensemble member's usable record at ``request``'s data, split, seed and profile, with
    today's identity (a member retrained since is the new record), and the command that trains it."""
    kind = getattr(registry.get(system).recipe, "teacher_name", None)
    member = dataclasses.replace(request, system=system, options=None, force=False, checkpoint=None, teacher=kind,
                                 task=DEFAULT_TASK)  # its recipe's defaults, and its plain run (never device-routed predictions)
    run = prepare_run(member, registry)
    found = recorded_outcome(run, ResultsStore(run.home), log=lambda _: None)
    command = (f"ascbench run --models {system} --fraction {request.fraction:g} --seeds {request.seed} "
               f"--profile {request.profile} --data {request.data_root}")
    return run.spec, found.record if found is not None else None, command


def recorded_outcome(run: PreparedRun, store: ResultsStore, log: Callable[[str], None] = print) -> RunOutcome | None:
    """The outcome of ``run`` when an intact record of it exists with the same identity (and the
    run is not forced); None when it must run. A record made by other code or data is named with
    what changed, then rerun."""
    if run.request.force:
        return None
    recorded = store.usable(run.key)
    if recorded is None:
        return None
    changes = identity_changes(recorded.identity, run.identity)
    if changes:
        log(f"{run.request.label()}: rerun, since {'; '.join(changes)} changed since it was recorded")
        return None
    return RunOutcome(run.request, recorded, store.record_path(run.key), skipped=True)


def execute_run(
    request: RunRequest,
    *,
    registry: Registry | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> RunOutcome:
    """Run ``request`` unless an intact record of the same run and identity exists (and ``force``
    is off): see :func:`record_once` for what a failed or concurrent run leaves behind."""
    if get_task(request.task).device_models:  # a general model, then one per device
        from ascbench.runner.device_specific import execute_device_specific

        return execute_device_specific(request, registry=registry, progress=progress, log=log)
    run = prepare_run(request, registry)
    store = ResultsStore(run.home)
    return record_once(
        run, store, lambda workdir, out_dir: _train_and_measure(run, store, workdir / "train", out_dir, progress, log), log
    )


Measure = Callable[[Path, Path], "tuple[Record, ClipPredictions]"]
"""Computes a run's record and predictions, given its resumable work directory and the fresh
directory its model and int8 files go into."""


def record_once(run: PreparedRun, store: ResultsStore, measure: Measure, log: Callable[[str], None] = print) -> RunOutcome:
    """``measure`` the run and write its record, unless an intact record with the run's identity
    exists; every kind of run (plain or device-routed) goes through here.

    One process at a time runs a given run key (a second one waits, then finds the record). The
    run writes into directories of its own and its record last, so a run that fails or is
    interrupted, forced or not, leaves the previous record and everything it names untouched.
    """
    request, run_dir = run.request, run.run_dir
    lock = run_dir.parent / f"{run_dir.name}.lock"
    with exclusive(lock, on_wait=lambda: log(f"{request.label()}: another process is running it; waiting for it to finish")):
        outcome = recorded_outcome(run, store, log)
        if outcome is not None:
            return outcome
        attempt = uuid.uuid4().hex[:8]
        # resumable epoch checkpoints belong to one identity; --force starts afresh, beside them
        workdir = run_dir / (f"force-{attempt}" if request.force else f"train-{identity_label(run.identity)}")
        out_dir = run_dir / f"{ARTIFACTS_PREFIX}{attempt}"
        try:
            record, predictions = measure(workdir, out_dir)
            path = store.write(record, predictions)
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            if request.force:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        _remove_superseded(run_dir, keep={out_dir.name})
    return RunOutcome(request, store.read(run.key), path)


ARTIFACTS_PREFIX = "artifacts-"
"""Each attempt writes its model and int8 files into ``artifacts-<id>/`` of the run's directory,
so a failed or interrupted rerun can never have replaced the files the standing record names."""


def _remove_superseded(run_dir: Path, keep: set[str]) -> None:
    """After a new record is in place: earlier attempts' files, the finished training's epoch
    checkpoints (and older identities'), and the ``model.pt``/``int8`` of the layout before
    attempts had folders of their own."""
    for child in run_dir.iterdir():
        if child.name in keep:
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _train_and_measure(
    run: PreparedRun, store: ResultsStore, workdir: Path, out_dir: Path, progress: bool, log: Callable[[str], None]
) -> tuple[Record, ClipPredictions]:
    """Train (or load) the model, evaluate it, measure the deployable model, and build the record."""
    request, spec, home, dataset, model = run.request, run.spec, run.home, run.dataset, run.model
    split = load_split(dataset, request.fraction)
    device = resolve_device(request.device)
    provenance = collect(run.config, list(request.command) or None)
    timings: dict[str, float] = {}

    with clock(provenance) as run_clock:
        started = time.perf_counter()
        with global_rng_preserved():  # built or read from the cache, the draws after it are the same
            features = load_features(dataset, spec.frontend, home=home, progress=progress)
        timings["features_s"] = time.perf_counter() - started

        if request.checkpoint is not None:
            model = load_trained_model(spec, request.checkpoint)
            notes = {"loaded_checkpoint": str(request.checkpoint), **trained_by(request.checkpoint, store)}
            result = RecipeResult(model=model, notes=notes)
        else:
            ctx = RecipeContext(
                spec=spec,
                split=split,
                features=features,
                profile=request.profile,
                seed=request.seed,
                device=device,
                workdir=workdir,
                home=home,
                options=run.options,
                progress=progress,
                log=log,
            )
            if run.teacher is not None:
                ctx.teacher_logits = run.teacher.logits_fn(dataset, split, home, device, progress)
                ctx.teacher_info = run.teacher.info
            started = time.perf_counter()
            result = run.recipe.fit(model, ctx)
            timings["train_s"] = time.perf_counter() - started
            timings.update(result.stage_seconds)
        model = result.model.to("cpu").eval()

        with progress_bar(progress, "eval + int8", total=2) as stage:  # 10-40 s with nothing else to show
            started = time.perf_counter()
            if len(model_input_shape(spec)) == 4:
                # channels-last: 2-7x faster convolutions (depthwise above all) on x86 CPUs, same outputs
                model = model.to(memory_format=torch.channels_last)
            predictions = predict_test(model, features, split, device)
            metrics = evaluate(predictions)
            timings["eval_s"] = time.perf_counter() - started
            stage.advance(status="evaluated")

            started = time.perf_counter()
            complexity, artifacts = measure_deployable(spec, model, result, features, split, out_dir, home, predictions)
            timings["complexity_s"] = time.perf_counter() - started
            stage.advance(status="int8 done")

        model_path = save_trained_model(model, spec, out_dir / "model.pt", meta={"run": run.key.slug()})
        artifacts["model"] = str(model_path.relative_to(home))
    timings["total_s"] = run_clock.elapsed_s or 0.0

    record = Record(
        key=run.key,
        system=spec.summary(),
        metrics=metrics,
        complexity=complexity,
        timings={k: round(v, 3) for k, v in timings.items()},
        provenance=provenance,
        artifacts=artifacts,
        notes=dict(result.notes),
        identity=dict(run.identity),
        options=run.options.to_dict(),
    )
    return record, predictions


def predict_test(model: nn.Module, features: CachedFeatures, split: DataSplit, device: torch.device) -> ClipPredictions:
    """Logits of every test clip, in test.csv order."""
    filenames = tuple(c.filename for c in split.test)
    logits = predict(model, features, features.rows(filenames), device=device)
    labels = np.array([c.label for c in split.test], dtype=np.int64)
    return ClipPredictions(filenames, labels, np.asarray(logits, dtype=np.float64), scores_are="logits")


def measure_deployable(
    spec: SystemSpec,
    model: nn.Module,
    result: RecipeResult,
    features: CachedFeatures,
    split: DataSplit,
    out_dir: Path,
    home: Path,
    predictions: ClipPredictions,
):
    """Params, MACs and the int8 artifact of the trained deployable model.

    Calibration uses training clips; agreement with the float model's test predictions is
    measured on up to :data:`AGREEMENT_CLIPS` test clips, which is where a deployed int8 model
    would have to agree.
    """
    report = measure_complexity(model, model_input_shape(spec))
    complexity = report.to_record()
    artifacts: dict[str, str] = {}
    train_rows = features.rows([c.filename for c in split.train[:CALIBRATION_CLIPS]])
    picked = np.unique(np.linspace(0, len(split.test) - 1, min(AGREEMENT_CLIPS, len(split.test))).round().astype(np.int64))
    test_rows = features.rows([split.test[i].filename for i in picked])
    float_classes = torch.from_numpy(np.asarray(predictions.scores)[picked].argmax(-1))
    calibration = _model_inputs(spec, features.batch(train_rows))
    try:
        artifact = quantize_int8(result.quantized_model or model, calibration, out_dir / "int8")
    except Exception as error:  # a model the int8 path cannot convert is recorded, not fatal
        result.notes["int8_error"] = f"{type(error).__name__}: {error}"
        return complexity, artifacts
    agreement = int8_agreement(None, artifact.model, _model_inputs(spec, features.batch(test_rows)), float_classes=float_classes)
    result.notes["int8_agreement_clips"] = int(len(picked))
    artifacts["int8"] = str(Path(artifact.path).relative_to(home))
    complexity = dataclasses.replace(complexity, int8_artifact_bytes=int(artifact.bytes), int8_agreement=float(agreement))
    return complexity, artifacts


def _model_inputs(spec: SystemSpec, batch: torch.Tensor) -> torch.Tensor:
    """Cached features [N, *frontend shape] → model input (a channel axis for spectrograms)."""
    return batch if len(spec.frontend.output_shape()) == 1 else batch.unsqueeze(1)
