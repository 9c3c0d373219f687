"""Test-set metrics of one run and their aggregation across seeds (defined in docs/metrics.md).

The ranking number is DCASE's macro class-wise accuracy: the mean over classes of per-class
recall, so that a frequent class cannot dominate. Two edge cases are defined here once:

* a class **absent from the test labels** has no recall; it is left out of the macro mean (not
  counted as 0), and its per-class entry is ``None``. This matters for per-device and
  seen/unseen subsets, and for small synthetic test sets;
* a class **present but never predicted** has recall 0 and counts as 0.

Scores may be logits or probabilities; the caller says which (``scores_are``) and log loss is
always computed on probabilities (a softmax of logits). Accuracies are fractions in [0, 1];
attenuation is given in % of the seen accuracy and in points, as the record schema fixes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, log_loss, recall_score

from ascbench.data.layout import DEVICES, SCENES, SEEN_DEVICES, UNSEEN_DEVICES
from ascbench.evaluation.bootstrap import CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED, macro_accuracy_ci
from ascbench.evaluation.predictions import ClipPredictions, ScoreKind, as_probabilities
from ascbench.results.record import Metrics

CLASSES: list[int] = list(range(len(SCENES)))


def per_class_recall(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Recall of each class in SCENES order; NaN for a class with no clip in ``labels``."""
    return recall_score(labels, predicted, labels=CLASSES, average=None, zero_division=np.nan)


def macro_class_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float | None:
    """Mean per-class recall over the classes present in ``labels``; None for no clips.

    (scikit-learn's ``balanced_accuracy_score`` computes the same mean but decides the class set
    from the data and warns; fixing ``labels=range(10)`` here keeps the rule explicit.)
    """
    if len(labels) == 0:
        return None
    return float(np.nanmean(per_class_recall(labels, predicted)))


def compute_metrics(
    scores: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    devices: Sequence[str],
    *,
    scores_are: ScoreKind,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Metrics:
    """Every metric of docs/metrics.md from scores [N, 10], true class indices [N] and device names [N].

    ``seed`` only drives the bootstrap interval: the same inputs and seed give the same record.
    """
    probabilities = as_probabilities(scores, scores_are)
    n = probabilities.shape[0]
    labels = _check_labels(labels, n)
    devices = _check_devices(devices, n)
    predicted = probabilities.argmax(axis=1)

    accuracy = macro_class_accuracy(labels, predicted)
    recall = per_class_recall(labels, predicted)
    seen = _subset_accuracy(labels, predicted, devices, SEEN_DEVICES)
    unseen = _subset_accuracy(labels, predicted, devices, UNSEEN_DEVICES)
    return Metrics(
        accuracy=accuracy,
        accuracy_ci95=macro_accuracy_ci(
            labels, predicted, n_resamples=n_resamples, seed=seed, confidence=confidence
        ),
        per_device={d: _subset_accuracy(labels, predicted, devices, (d,)) for d in DEVICES},
        per_class={scene: (None if math.isnan(r) else float(r)) for scene, r in zip(SCENES, recall)},
        seen_accuracy=seen,
        unseen_accuracy=unseen,
        attenuation_pct=attenuation_pct(seen, unseen),
        attenuation_points=attenuation_points(seen, unseen),
        log_loss=float(log_loss(labels, probabilities, labels=CLASSES)),
        confusion_matrix=confusion_matrix(labels, predicted, labels=CLASSES).tolist(),
        n_test=n,
    )


def evaluate(
    predictions: ClipPredictions,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Metrics:
    """:func:`compute_metrics` for stored or fresh per-clip predictions (devices from file names)."""
    return compute_metrics(
        predictions.scores,
        predictions.labels,
        predictions.devices,
        scores_are=predictions.scores_are,
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
    )


def attenuation_pct(seen: float | None, unseen: float | None) -> float | None:
    """(seen - unseen) / seen x 100: how much of its seen-device accuracy a system loses on s4-s6."""
    if seen is None or unseen is None or seen == 0:
        return None
    return (seen - unseen) / seen * 100.0


def attenuation_points(seen: float | None, unseen: float | None) -> float | None:
    """(seen - unseen) x 100: the same gap in accuracy points."""
    if seen is None or unseen is None:
        return None
    return (seen - unseen) * 100.0


def aggregate(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (ddof=1) and count of one metric across seeds.

    ``None`` values (a metric undefined for a run, e.g. no unseen-device clips) are skipped and
    not counted in ``n``. With a single value the standard deviation is ``None``, not 0: one seed
    says nothing about the spread, and a leaderboard should show "n=1" rather than "± 0.0".
    No values at all gives ``(None, None, 0)``.
    """
    kept = np.array([float(v) for v in values if v is not None], dtype=np.float64)
    if kept.size == 0:
        return None, None, 0
    if np.isnan(kept).any():
        raise ValueError("aggregate: NaN among the values; undefined metrics must be None")
    std = float(kept.std(ddof=1)) if kept.size > 1 else None
    return float(kept.mean()), std, int(kept.size)


def _subset_accuracy(
    labels: np.ndarray, predicted: np.ndarray, devices: np.ndarray, subset: Iterable[str]
) -> float | None:
    mask = np.isin(devices, list(subset))
    return macro_class_accuracy(labels[mask], predicted[mask])


def _check_labels(labels: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.shape != (n,):
        raise ValueError(f"labels: expected shape [{n}] (one per row of scores), got {list(array.shape)}")
    if n == 0:
        raise ValueError("no test clips: metrics need at least one prediction")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels: expected integer class indices in SCENES order, got dtype {array.dtype}")
    bad = np.flatnonzero((array < 0) | (array >= len(SCENES)))
    if bad.size:
        raise ValueError(f"labels: clip {int(bad[0])} has class index {array[bad[0]]}; expected 0-{len(SCENES) - 1}")
    return array.astype(np.int64, copy=False)


def _check_devices(devices: Sequence[str], n: int) -> np.ndarray:
    array = np.asarray(list(devices), dtype=str)
    if array.shape != (n,):
        raise ValueError(f"devices: expected {n} device names (one per row of scores), got {array.shape[0]}")
    unknown = np.flatnonzero(~np.isin(array, DEVICES))
    if unknown.size:
        raise ValueError(
            f"devices: clip {int(unknown[0])} has device '{array[unknown[0]]}'; expected one of {', '.join(DEVICES)}"
        )
    return array


def group_accuracies(predictions: ClipPredictions, groups: Mapping[str, Iterable[str]]) -> dict[str, float | None]:
    """Macro class-wise accuracy over the clips of each named group of devices (None: a group
    with no test clips). Pooled over the group's clips, not averaged over its devices, as DCASE
    reports seen/unseen accuracy."""
    labels, predicted = np.asarray(predictions.labels), predictions.predicted
    devices = np.asarray(predictions.devices)
    return {name: _subset_accuracy(labels, predicted, devices, tuple(members)) for name, members in groups.items()}
