"""Bootstrap over test clips: a confidence interval for one system, a paired test for two.

Both resample test clips with replacement and recompute the macro class-wise accuracy on each
resample. The recomputation is vectorised (one ``bincount`` per block of resamples instead of
a scikit-learn call per resample) because a record wants 1,000 resamples and evaluation should
not take longer than inference. Resamples are drawn in blocks of a fixed size so memory stays
bounded on the full TAU22 test set (~30k clips) and the same seed always gives the same draws.

A class absent from a resample is left out of that resample's mean, exactly as a class absent
from the test labels is left out of the point estimate (see :mod:`ascbench.evaluation.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ascbench.data.layout import SCENES
from ascbench.evaluation.predictions import ClipPredictions

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
BLOCK = 128
"""Resamples drawn at once: BLOCK x N indices in memory (~30 MB for the full TAU22 test set)."""


def resample_indices(n_clips: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks [b, n_clips] of clip indices drawn with replacement; same seed, same blocks."""
    if n_clips < 1:
        raise ValueError("bootstrap needs at least one test clip")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, BLOCK):
        yield rng.integers(0, n_clips, size=(min(BLOCK, n_resamples - start), n_clips))


def resampled_macro_accuracy(labels: np.ndarray, correct: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Macro class-wise accuracy of each resample: ``indices`` [b, n] -> [b].

    ``correct`` is a boolean [N] (prediction == label). Per-class totals and hits are counted
    with one ``bincount`` over (resample, class) keys.
    """
    n_classes = len(SCENES)
    rows = indices.shape[0]
    keys = (np.arange(rows)[:, None] * n_classes + labels[indices]).ravel()
    totals = np.bincount(keys, minlength=rows * n_classes).reshape(rows, n_classes)
    hits = np.bincount(keys, weights=correct[indices].ravel(), minlength=rows * n_classes)
    hits = hits.reshape(rows, n_classes)
    present = totals > 0
    recall = np.divide(hits, totals, out=np.zeros_like(hits), where=present)
    return recall.sum(axis=1) / present.sum(axis=1)


def bootstrap_macro_accuracy(
    labels: np.ndarray,
    predicted: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> np.ndarray:
    """The macro accuracy of ``n_resamples`` bootstrap resamples of the test clips."""
    labels, correct = _labels_and_correct(labels, predicted)
    blocks = resample_indices(len(labels), n_resamples, seed)
    return np.concatenate([resampled_macro_accuracy(labels, correct, idx) for idx in blocks])


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval (e.g. the 2.5th and 97.5th percentiles for 95 %)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def macro_accuracy_ci(
    labels: np.ndarray,
    predicted: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the macro class-wise accuracy."""
    samples = bootstrap_macro_accuracy(labels, predicted, n_resamples=n_resamples, seed=seed)
    return percentile_interval(samples, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """System A minus system B in macro class-wise accuracy (fractions, so 0.02 = 2 points)."""

    difference: float
    """A - B on the full test set."""
    mean_difference: float
    """Mean of A - B over the bootstrap resamples."""
    ci95: tuple[float, float]
    """Percentile interval of A - B at the requested confidence (95 % by default)."""
    p_value: float
    """Two-sided: 2 x the smaller fraction of resamples with A - B <= 0 or >= 0, capped at 1.
    Small when resampling the clips rarely flips which system is better."""
    n_resamples: int
    n_clips: int


def paired_bootstrap(
    a: ClipPredictions,
    b: ClipPredictions,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> PairedComparison:
    """Compare two systems on the same test clips, resampling the clips jointly.

    Both systems are scored on the same resampled indices, so the clip-to-clip variation they
    share cancels out and the interval is much narrower than two independent intervals. ``b``
    is reordered to ``a``'s clip order; different clip lists or different true labels for the
    same clip are refused.
    """
    b = b.aligned_to(a.filenames)
    if not np.array_equal(a.labels, b.labels):
        first = int(np.flatnonzero(a.labels != b.labels)[0])
        raise ValueError(
            f"the two systems disagree on the true label of {a.filenames[first]!r} "
            f"({SCENES[a.labels[first]]} vs {SCENES[b.labels[first]]}): they were not tested on the same test set"
        )
    labels = a.labels
    correct_a = a.predicted == labels
    correct_b = b.predicted == labels
    everything = np.arange(len(labels))[None, :]
    observed = float(
        resampled_macro_accuracy(labels, correct_a, everything)[0]
        - resampled_macro_accuracy(labels, correct_b, everything)[0]
    )
    differences = np.concatenate(
        [
            resampled_macro_accuracy(labels, correct_a, idx) - resampled_macro_accuracy(labels, correct_b, idx)
            for idx in resample_indices(len(labels), n_resamples, seed)
        ]
    )
    return summarise_differences(observed, differences, len(labels), confidence)


def summarise_differences(
    observed: float, differences: np.ndarray, n_clips: int, confidence: float = CONFIDENCE
) -> PairedComparison:
    """Interval and two-sided p-value of bootstrap differences A - B (shared by every paired test)."""
    flips = min(float(np.mean(differences <= 0)), float(np.mean(differences >= 0)))
    return PairedComparison(
        difference=observed,
        mean_difference=float(differences.mean()),
        ci95=percentile_interval(differences, confidence),
        p_value=min(1.0, 2.0 * flips),
        n_resamples=len(differences),
        n_clips=n_clips,
    )


def _labels_and_correct(labels: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise ValueError(f"labels {list(labels.shape)} and predictions {list(predicted.shape)}: expected two [N] arrays")
    return labels, predicted == labels
