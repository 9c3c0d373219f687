"""Is the gap between two systems real? A paired bootstrap over test clips, across seeds.

For one seed this is exactly :func:`ascbench.evaluation.bootstrap.paired_bootstrap`. With
several seeds the leaderboard ranks by the seed-averaged accuracy, so the question is whether
that mean gap is real: each resample draws one set of test clips and applies it to every seed of
both systems (the clips are the same for all runs), and the statistic is the gap averaged over
seeds. Resampling seeds' copies of a clip independently would treat one hard clip as several
independent ones and overstate significance.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ascbench.evaluation.bootstrap import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PairedComparison,
    paired_bootstrap,
    summarise_differences,
    resample_indices,
    resampled_macro_accuracy,
)
from ascbench.evaluation.predictions import ClipPredictions


def paired_over_seeds(
    a: Mapping[int, ClipPredictions],
    b: Mapping[int, ClipPredictions],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> PairedComparison:
    """System A minus system B (run seed -> predictions), over the run seeds both have.

    Raises ``ValueError`` when they share no run seed or were not tested on the same clips.
    """
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError(f"no run seed in common (seeds {sorted(a)} vs {sorted(b)})")
    if len(shared) == 1:
        return paired_bootstrap(a[shared[0]], b[shared[0]], n_resamples=n_resamples, seed=seed, confidence=confidence)

    reference = a[shared[0]]
    labels = reference.labels
    correct = []
    for run in shared:
        for predictions in (a[run], b[run]):
            aligned = predictions.aligned_to(reference.filenames)
            if not np.array_equal(aligned.labels, labels):
                raise ValueError(f"run seed {run}: the true labels differ, so the runs used different test sets")
            correct.append(aligned.predicted == labels)
    pairs = [(correct[i], correct[i + 1]) for i in range(0, len(correct), 2)]

    def mean_gap(indices: np.ndarray) -> np.ndarray:
        gaps = [resampled_macro_accuracy(labels, ca, indices) - resampled_macro_accuracy(labels, cb, indices)
                for ca, cb in pairs]  # fmt: skip
        return np.mean(gaps, axis=0)

    observed = float(mean_gap(np.arange(len(labels))[None, :])[0])
    differences = np.concatenate([mean_gap(idx) for idx in resample_indices(len(labels), n_resamples, seed)])
    return summarise_differences(observed, differences, len(labels), confidence)
