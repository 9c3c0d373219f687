"""Metrics against hand-worked examples; bootstrap intervals and paired comparisons on real resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ascbench.data.layout import DEVICES, SCENES
from ascbench.evaluation.bootstrap import (
    bootstrap_macro_accuracy,
    macro_accuracy_ci,
    paired_bootstrap,
    resample_indices,
    resampled_macro_accuracy,
)
from ascbench.evaluation.metrics import aggregate, compute_metrics, evaluate, macro_class_accuracy
from ascbench.evaluation.predictions import ClipPredictions, as_probabilities

# Worked example (8 clips, classes 0 airport, 1 bus, 2 metro; class 3 is predicted but never true):
#
#   clip  true  predicted  device
#    0     0       0        a
#    1     0       1        a
#    2     0       0        s4
#    3     1       1        a
#    4     1       1        b
#    5     1       0        s4
#    6     2       3        b
#    7     2       3        s4
#
# Per-class recall: airport 2/3, bus 2/3, metro 0/2 = 0 (present, never predicted), classes 3-9
# absent from the labels -> None and left out: macro = (2/3 + 2/3 + 0) / 3 = 4/9.
# (Plain accuracy would be 4/8 = 0.5; counting absent classes as 0 would give (4/3) / 10.)
# Device a (clips 0, 1, 3): airport 1/2, bus 1/1 -> 0.75.  Device b (4, 6): bus 1/1, metro 0/1 -> 0.5.
# Device s4 (2, 5, 7): airport 1/1, bus 0/1, metro 0/1 -> 1/3.  c, s1-s3, s5, s6: no clips -> None.
# Seen (a, b: clips 0, 1, 3, 4, 6): airport 1/2, bus 2/2, metro 0/1 -> 0.5.  Unseen (s4) -> 1/3.
# Attenuation: (0.5 - 1/3) / 0.5 x 100 = 33.33 %; (0.5 - 1/3) x 100 = 16.67 points.
# Scores: 0.55 on the predicted class, 0.05 on each of the 9 others (sums to 1). Log loss: 4
# correct clips pay -ln 0.55, 4 wrong ones -ln 0.05.
TRUE = [0, 0, 0, 1, 1, 1, 2, 2]
PRED = [0, 1, 0, 1, 1, 0, 3, 3]
DEV = ["a", "a", "s4", "a", "b", "s4", "b", "s4"]


def _worked_probabilities() -> np.ndarray:
    probs = np.full((8, 10), 0.05)
    probs[np.arange(8), PRED] = 0.55
    return probs


def test_worked_example_all_metrics() -> None:
    m = compute_metrics(_worked_probabilities(), TRUE, DEV, scores_are="probabilities")

    assert m.accuracy == pytest.approx(4 / 9)
    assert m.per_class["airport"] == pytest.approx(2 / 3)
    assert m.per_class["bus"] == pytest.approx(2 / 3)
    assert m.per_class["metro"] == 0.0  # present in the labels but never predicted
    assert all(m.per_class[s] is None for s in SCENES[3:])  # absent from the labels
    assert m.per_device["a"] == pytest.approx(0.75)
    assert m.per_device["b"] == pytest.approx(0.5)
    assert m.per_device["s4"] == pytest.approx(1 / 3)
    assert {d for d, v in m.per_device.items() if v is None} == {"c", "s1", "s2", "s3", "s5", "s6"}
    assert list(m.per_device) == list(DEVICES)
    assert m.seen_accuracy == pytest.approx(0.5)
    assert m.unseen_accuracy == pytest.approx(1 / 3)
    assert m.attenuation_pct == pytest.approx(100 / 3)
    assert m.attenuation_points == pytest.approx(50 / 3)
    assert m.log_loss == pytest.approx(0.5 * -math.log(0.55) + 0.5 * -math.log(0.05))
    expected_cm = np.zeros((10, 10), dtype=int)
    expected_cm[0, :2] = [2, 1]
    expected_cm[1, :2] = [1, 2]
    expected_cm[2, 3] = 2
    assert m.confusion_matrix == expected_cm.tolist()
    assert m.n_test == 8
    low, high = m.accuracy_ci95
    assert low <= m.accuracy <= high


def test_logits_are_softmaxed_to_the_same_probabilities() -> None:
    probs = _worked_probabilities()
    # log-probabilities plus an arbitrary per-row offset are valid logits of the same distribution
    logits = np.log(probs) + np.arange(8)[:, None] * 3.0
    from_logits = compute_metrics(logits, TRUE, DEV, scores_are="logits")
    assert from_logits.log_loss == pytest.approx(0.5 * -math.log(0.55) + 0.5 * -math.log(0.05))
    assert from_logits.accuracy == pytest.approx(4 / 9)
    np.testing.assert_allclose(as_probabilities(logits, "logits"), probs)


def test_logits_passed_as_probabilities_are_refused() -> None:
    logits = np.log(_worked_probabilities())
    with pytest.raises(ValueError, match="row 0 is not a probability vector"):
        compute_metrics(logits, TRUE, DEV, scores_are="probabilities")


def test_bad_inputs_name_the_problem() -> None:
    probs = _worked_probabilities()
    with pytest.raises(ValueError, match="device 'z'"):
        compute_metrics(probs, TRUE, [*DEV[:-1], "z"], scores_are="probabilities")
    with pytest.raises(ValueError, match="class index 10"):
        compute_metrics(probs, [*TRUE[:-1], 10], DEV, scores_are="probabilities")
    with pytest.raises(ValueError, match=r"shape \[8\]"):
        compute_metrics(probs, TRUE[:-1], DEV, scores_are="probabilities")
    with pytest.raises(ValueError, match=r"shape \[N, 10\]"):
        compute_metrics(probs[:, :9], TRUE, DEV, scores_are="probabilities")


def test_no_unseen_clips_leaves_attenuation_undefined() -> None:
    # two seen-device clips only: seen accuracy (1/1 + 0/1) / 2 = 0.5, unseen None
    probs = np.full((2, 10), 0.1)
    probs[0, 4], probs[0, 5] = 0.5, 0.1 - 0.4 / 9 * 0 - 0.0  # park predicted for a park clip
    probs[0] = np.where(np.arange(10) == 4, 0.55, 0.05)
    probs[1] = np.where(np.arange(10) == 0, 0.55, 0.05)  # airport predicted for a tram clip
    m = compute_metrics(probs, [4, 9], ["a", "s2"], scores_are="probabilities")
    assert m.seen_accuracy == pytest.approx(0.5)
    assert m.unseen_accuracy is None
    assert m.attenuation_pct is None and m.attenuation_points is None


def test_zero_seen_accuracy_has_points_but_no_percentage() -> None:
    # seen clip wrong (0.0), unseen clip right (1.0): gap is -100 points, % of 0 is undefined
    probs = np.stack([np.where(np.arange(10) == 1, 0.55, 0.05), np.where(np.arange(10) == 2, 0.55, 0.05)])
    m = compute_metrics(probs, [0, 2], ["b", "s6"], scores_are="probabilities")
    assert m.seen_accuracy == 0.0 and m.unseen_accuracy == 1.0
    assert m.attenuation_points == pytest.approx(-100.0)
    assert m.attenuation_pct is None


def _synthetic_system(n: int, p_correct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels; each clip predicted correctly with probability p_correct."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    correct = rng.random(n) < p_correct
    wrong = (labels + rng.integers(1, 10, n)) % 10
    return labels, np.where(correct, labels, wrong)


def test_vectorised_resamples_match_scikit_learn_on_the_same_indices() -> None:
    labels, predicted = _synthetic_system(300, 0.6, seed=1)
    # a skewed subset so some resamples miss classes entirely
    labels, predicted = labels[:37], predicted[:37]
    block = next(resample_indices(len(labels), 20, seed=5))
    fast = resampled_macro_accuracy(labels, predicted == labels, block)
    slow = [macro_class_accuracy(labels[idx], predicted[idx]) for idx in block]
    np.testing.assert_allclose(fast, slow)


def test_ci_reproducible_with_a_seed_and_changes_with_another() -> None:
    labels, predicted = _synthetic_system(2000, 0.7, seed=2)
    point = macro_class_accuracy(labels, predicted)
    ci = macro_accuracy_ci(labels, predicted, seed=11)
    assert ci[0] < point < ci[1]
    assert macro_accuracy_ci(labels, predicted, seed=11) == ci
    assert macro_accuracy_ci(labels, predicted, seed=12) != ci


def test_ci_width_matches_the_binomial_standard_error() -> None:
    # 2000 balanced clips, 70 % correct: the macro accuracy is a mean of 10 recalls over 200
    # clips each, standard error sqrt(0.7 * 0.3 / 2000) = 0.01025, so a 95 % interval spans
    # about 2 x 1.96 x 0.01025 = 0.040.
    labels, predicted = _synthetic_system(2000, 0.7, seed=3)
    low, high = macro_accuracy_ci(labels, predicted, n_resamples=1000, seed=0)
    assert 0.034 < high - low < 0.047
    samples = bootstrap_macro_accuracy(labels, predicted, n_resamples=1000, seed=0)
    assert samples.shape == (1000,)
    assert samples.std() == pytest.approx(math.sqrt(0.21 / 2000), rel=0.15)


def _predictions(labels: np.ndarray, predicted: np.ndarray, devices: list[str] | None = None) -> ClipPredictions:
    n = len(labels)
    devices = devices or [DEVICES[i % len(DEVICES)] for i in range(n)]
    filenames = tuple(f"audio/{SCENES[labels[i]]}-lyon-{i}-{i}-0-{devices[i]}.wav" for i in range(n))
    scores = np.full((n, 10), -1.0, dtype=np.float32)
    scores[np.arange(n), predicted] = 2.0
    return ClipPredictions(filenames, labels, scores, "logits")


def test_evaluate_reads_devices_from_file_names() -> None:
    preds = _predictions(np.array(TRUE), np.array(PRED), DEV)
    m = evaluate(preds)
    assert m.per_device["a"] == pytest.approx(0.75)
    assert m.unseen_accuracy == pytest.approx(1 / 3)


def test_paired_bootstrap_detects_a_real_difference() -> None:
    labels, better = _synthetic_system(2000, 0.8, seed=4)
    _, worse = _synthetic_system(2000, 0.6, seed=5)
    result = paired_bootstrap(_predictions(labels, better), _predictions(labels, worse), seed=0)
    assert result.difference == pytest.approx(
        macro_class_accuracy(labels, better) - macro_class_accuracy(labels, worse)
    )
    assert 0.15 < result.difference < 0.25
    assert result.ci95[0] > 0
    assert result.p_value < 0.01
    assert result.n_clips == 2000 and result.n_resamples == 1000


def test_paired_bootstrap_finds_no_difference_where_there_is_none() -> None:
    labels, a = _synthetic_system(2000, 0.7, seed=6)
    # B is right on as many clips of every class as A, but on other clips: equal recall per class
    rng = np.random.default_rng(7)
    b = a.copy()
    for c in range(10):
        members = np.flatnonzero(labels == c)
        b[members] = a[rng.permutation(members)]
        b[members] = np.where(b[members] == c, c, (c + 1) % 10)
    assert macro_class_accuracy(labels, a) == pytest.approx(macro_class_accuracy(labels, b))
    result = paired_bootstrap(_predictions(labels, a), _predictions(labels, b), seed=0)
    assert result.difference == pytest.approx(0.0, abs=1e-12)
    assert result.ci95[0] < 0 < result.ci95[1]
    assert result.p_value > 0.5

    identical = paired_bootstrap(_predictions(labels, a), _predictions(labels, a), seed=0)
    assert identical.difference == 0 and identical.ci95 == (0.0, 0.0) and identical.p_value == 1.0


def test_paired_bootstrap_aligns_order_and_refuses_different_clips() -> None:
    labels, a = _synthetic_system(200, 0.8, seed=8)
    _, b = _synthetic_system(200, 0.5, seed=9)
    pa, pb = _predictions(labels, a), _predictions(labels, b)
    order = np.random.default_rng(0).permutation(200)
    shuffled = ClipPredictions(tuple(pb.filenames[i] for i in order), pb.labels[order], pb.scores[order], "logits")
    assert paired_bootstrap(pa, shuffled, seed=1) == paired_bootstrap(pa, pb, seed=1)

    fewer = ClipPredictions(pb.filenames[:-1], pb.labels[:-1], pb.scores[:-1], "logits")
    with pytest.raises(ValueError, match="clip lists differ"):
        paired_bootstrap(pa, fewer)
    relabelled = ClipPredictions(pb.filenames, (pb.labels + 1) % 10, pb.scores, "logits")
    with pytest.raises(ValueError, match="true label"):
        paired_bootstrap(pa, relabelled)


def test_aggregate_across_seeds() -> None:
    mean, std, n = aggregate([0.7, 0.8, 0.9])
    # deviations -0.1, 0, 0.1: sample variance 0.02 / (3 - 1) = 0.01
    assert mean == pytest.approx(0.8) and std == pytest.approx(0.1) and n == 3
    assert aggregate([0.6, None, 0.8]) == pytest.approx((0.7, math.sqrt(0.02), 2))
    assert aggregate([0.75]) == (0.75, None, 1)
    assert aggregate([None]) == (None, None, 0)
    with pytest.raises(ValueError, match="NaN"):
        aggregate([0.5, float("nan")])
