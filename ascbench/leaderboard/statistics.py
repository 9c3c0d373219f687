"""How sure a board is of its order: Holm-corrected gaps to the best, rank intervals, the group
tied with the best, and the smallest gap the seeds and clips at hand can detect.

Why each exists (the requests other harnesses' users filed, and what they found):

- **Holm.** A board of 17 rows makes 16 comparisons with the best; at 5 % each, about one row
  would look significantly worse by chance alone (lm-evaluation-harness #4017 asks for a
  correction). Holm's step-down keeps the family-wise error at 5 % without assuming
  independence between the comparisons, which share the best system's predictions.
- **Rank intervals.** A rank is a point estimate too (EuroEval #1196, MTEB #5208). Each resample
  draws one set of test clips for every system (the clips are shared, so the draw is paired)
  and, per system, its seeds with replacement (so seed-to-seed variation widens the interval);
  ranks are computed per resample and their 2.5 and 97.5 percentiles reported.
- **Tied with the best.** The rows whose Holm-corrected gap to the best is not significant: the
  honest "top group" when adjacent ranks are within noise.
- **Minimum detectable difference.** The gap a paired comparison at this board's clips and seeds
  would detect with 80 % power at two-sided 5 %: ``(z_0.975 + z_0.8) x SE``, with SE from the
  clip bootstrap of the gaps and the seed variance of the accuracies. A gap smaller than it and
  not significant is no evidence of equality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ascbench.evaluation.bootstrap import DEFAULT_SEED, resample_indices, resampled_macro_accuracy
from ascbench.evaluation.predictions import ClipPredictions

ALPHA = 0.05
POWER_Z = 1.959964 + 0.841621
"""z_{1-alpha/2} + z_{power} for alpha 5 % (two-sided) and power 80 %."""


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down, made monotone, capped at 1)."""
    order = sorted(p_values, key=lambda name: p_values[name])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[name]))
        adjusted[name] = running
    return adjusted


def rank_intervals(
    predictions: Mapping[str, Mapping[int, ClipPredictions]], *, n_resamples: int = 1000, seed: int = DEFAULT_SEED
) -> dict[str, tuple[float, float]]:
    """Each system's 95 % rank interval (1 = best) over resampled clips and seeds.

    ``predictions``: system -> run seed -> predictions on the same test clips. Ties in a resample
    share the best (smallest) rank of the tie."""
    systems = list(predictions)
    reference = next(iter(next(iter(predictions.values())).values()))
    labels = reference.labels
    rng = np.random.default_rng(seed + 1)
    accuracy = np.empty((len(systems), n_resamples))
    correct = {
        name: [p.aligned_to(reference.filenames).predicted == labels for _, p in sorted(runs.items())] for name, runs in predictions.items()
    }
    start = 0
    for block in resample_indices(len(labels), n_resamples, seed):
        rows = slice(start, start + len(block))
        for s, name in enumerate(systems):
            per_seed = np.stack([resampled_macro_accuracy(labels, c, block) for c in correct[name]])  # [seeds, b]
            drawn = rng.integers(0, len(per_seed), size=per_seed.shape)  # each resample's seeds, with replacement
            accuracy[s, rows] = np.take_along_axis(per_seed, drawn, axis=0).mean(axis=0)
        start += len(block)
    # rank 1 for the highest accuracy; a tie takes the best rank of the tie
    ranks = 1 + (accuracy[None, :, :] > accuracy[:, None, :]).sum(axis=1)
    low, high = np.percentile(ranks, [2.5, 97.5], axis=1)
    return {name: (float(low[i]), float(high[i])) for i, name in enumerate(systems)}


def minimum_detectable_difference(gap_ci95: list[tuple[float, float]], accuracy_std: list[float], seeds: int) -> float | None:
    """The smallest gap (accuracy fraction) this board can detect; see the module docstring.

    ``gap_ci95``: the clip-bootstrap 95 % intervals of the gaps to the best; ``accuracy_std``: the
    rows' seed standard deviations (NaN without several seeds); ``seeds``: seeds per row."""
    if not gap_ci95:
        return None
    clip_se = float(np.median([(high - low) / (2 * 1.959964) for low, high in gap_ci95]))
    stds = [s for s in accuracy_std if s is not None and not math.isnan(s)]
    seed_var = 2 * float(np.median(np.square(stds))) / seeds if stds and seeds > 1 else 0.0
    return POWER_Z * math.sqrt(clip_se**2 + seed_var)
