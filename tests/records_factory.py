"""Run records built the way the runner builds them, for store, leaderboard and check tests.

Predictions come from a simulated classifier over a real-format test clip list (every scene x
every device, parallel recordings), metrics are computed from them by
:func:`ascbench.evaluation.metrics.evaluate` and provenance by
:func:`ascbench.results.provenance.collect`, so the whole record pipeline is exercised and no
metric value is typed by hand. ``skill`` is the probability that a seen-device clip is classified
correctly; unseen devices (s4-s6) lose ``unseen_penalty`` of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ascbench.data.layout import DEVICES, SCENE_INDEX, SCENES, UNSEEN_DEVICES, ClipName
from ascbench.evaluation.metrics import evaluate
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.results.provenance import clock, collect
from ascbench.results.record import Complexity, Record, RunKey

FINGERPRINT = "3f9a0c21d4e5b6a7"
RESAMPLES = 200
"""Bootstrap resamples for the CI: enough for a stable interval, fast under test load."""

CP_MOBILE = {"params": 61_148, "macs": 29_419_156}
"""The DCASE 2024 baseline's official complexity (docs/metrics.md)."""


@dataclass(frozen=True)
class TrainConfig:
    """Stands in for a recipe's configuration dataclass."""

    lr: float = 1e-3
    epochs: int = 2
    batch_size: int = 32


def clip_list(per_cell: int = 4) -> tuple[tuple[str, ...], np.ndarray]:
    """``per_cell`` parallel recordings per scene, each captured by all nine devices."""
    names, labels = [], []
    for scene in SCENES:
        for recording in range(per_cell):
            for device in DEVICES:
                clip = ClipName(scene, "lyon", f"{100 + recording}", f"{5000 + recording}", 3, device)
                names.append(clip.filename)
                labels.append(SCENE_INDEX[scene])
    return tuple(names), np.array(labels, dtype=np.int64)


def simulate_predictions(skill: float, seed: int, unseen_penalty: float = 0.15, per_cell: int = 4) -> ClipPredictions:
    """Logits of a classifier that is right with probability ``skill`` (less on s4-s6)."""
    names, labels = clip_list(per_cell)
    rng = np.random.default_rng(seed)
    unseen = np.array([ClipName.parse(n).device in UNSEEN_DEVICES for n in names])
    p_right = np.where(unseen, skill - unseen_penalty, skill)
    right = rng.random(len(names)) < p_right
    wrong_class = (labels + rng.integers(1, len(SCENES), len(names))) % len(SCENES)
    target = np.where(right, labels, wrong_class)
    logits = rng.normal(0.0, 1.0, (len(names), len(SCENES))).astype(np.float32)
    logits[np.arange(len(names)), target] += 4.0
    return ClipPredictions(names, labels, logits, "logits")


def make_record(
    system: str,
    *,
    seed: int = 0,
    skill: float = 0.7,
    unseen_penalty: float = 0.15,
    params: int = CP_MOBILE["params"],
    macs: int = CP_MOBILE["macs"],
    dataset: str = "synth-tau22-tiny",
    fingerprint: str = FINGERPRINT,
    fraction: float = 0.25,
    profile: str = "smoke",
    paper_label: str = "",
    config: TrainConfig = TrainConfig(),
) -> tuple[Record, ClipPredictions]:
    """A complete record and the predictions it was computed from (prediction noise seeded by
    system name and seed, so two systems of equal skill still differ clip by clip)."""
    noise_seed = seed * 1000 + sum(map(ord, system))
    predictions = simulate_predictions(skill, noise_seed, unseen_penalty)
    provenance = collect(config, ["ascbench", "run", "--models", system, "--seeds", str(seed)])
    with clock(provenance) as run:
        metrics = evaluate(predictions, n_resamples=RESAMPLES, seed=seed)
    complexity = Complexity(
        params=params,
        macs=macs,
        input_shape=[1, 1, 256, 65],
        param_memory_kb_int8=params / 1000,
        param_memory_kb_fp16=params * 2 / 1000,
        int8_artifact_bytes=params + 14_000,
        int8_agreement=0.99,
        within_dcase_limits=params <= 128_000 and macs <= 30_000_000,
    )
    record = Record(
        key=RunKey(system, dataset, fingerprint, fraction, seed, profile),
        system={"name": system, "family": "baseline", "description": f"{system} test system", "reference": "",
                "paper_label": paper_label, "frontend": "baseline-mel"},
        metrics=metrics,
        complexity=complexity,
        timings={"train_s": 1.5, "eval_s": run.elapsed_s, "total_s": 1.5 + run.elapsed_s},
        provenance=provenance,
    )
    return record, predictions


def rekey(record: Record, **changes: object) -> Record:
    """The same record under a key with some fields changed (dataset, fraction, system, ...)."""
    return dataclasses.replace(record, key=dataclasses.replace(record.key, **changes))


def make_wrong(predictions: ClipPredictions, n: int) -> ClipPredictions:
    """The same predictions with the first ``n`` correctly classified clips now misclassified
    (the true class's score moved to the next class): a controlled, small accuracy loss."""
    scores = np.array(predictions.scores, copy=True)
    right = np.flatnonzero(predictions.predicted == predictions.labels)[:n]
    for i in right:
        label = predictions.labels[i]
        scores[i, (label + 1) % len(SCENES)] = scores[i, label] + 1.0
    return dataclasses.replace(predictions, scores=scores)


def with_predictions(record: Record, predictions: ClipPredictions) -> Record:
    """``record`` with its metrics recomputed from ``predictions``."""
    return dataclasses.replace(record, metrics=evaluate(predictions, n_resamples=RESAMPLES, seed=record.key.seed))
