"""The board's statistics on real bootstrap computations: Holm's correction, rank intervals over
clips and seeds, the group tied with the best, and the minimum detectable difference."""

from __future__ import annotations

from pathlib import Path

import pytest

from ascbench.leaderboard.build import build_leaderboards
from ascbench.leaderboard.statistics import holm, minimum_detectable_difference, rank_intervals
from ascbench.results.store import ResultsStore
from records_factory import make_record, make_wrong, rekey, simulate_predictions, with_predictions


def test_holm_adjusts_step_down_and_keeps_the_order() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    # sorted: a 0.01*4, c 0.03*3, b 0.04*2 (raised to c's 0.09 to stay monotone), d 0.5*1 -> 0.5
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm({"x": 0.7, "y": 0.6}) == pytest.approx({"y": 1.0, "x": 1.0})


def _runs(skill: float, seeds=(0, 1, 2)):
    return {seed: simulate_predictions(skill, seed) for seed in seeds}


def test_rank_intervals_separate_clear_gaps_and_overlap_for_twins() -> None:
    strong = _runs(0.9)
    twin = {seed: make_wrong(p, 1) for seed, p in strong.items()}
    weak = _runs(0.4)
    intervals = rank_intervals({"strong": strong, "twin": twin, "weak": weak}, n_resamples=400)
    assert intervals["weak"] == (3.0, 3.0)  # always last
    assert intervals["strong"][0] == 1.0 and intervals["twin"][0] == 1.0  # either may lead
    assert intervals["strong"][1] <= 2.0 and intervals["twin"][1] == 2.0


def test_the_minimum_detectable_difference_grows_with_seed_noise_and_shrinks_with_seeds() -> None:
    clips_only = minimum_detectable_difference([(-0.04, 0.0), (-0.05, -0.01)], [float("nan")], 1)
    assert clips_only == pytest.approx(2.801585 * 0.04 / (2 * 1.959964))
    noisy = minimum_detectable_difference([(-0.04, 0.0)], [0.013, 0.013], 3)
    assert noisy > clips_only
    assert minimum_detectable_difference([(-0.04, 0.0)], [0.013], 10) < noisy


def test_the_board_corrects_for_its_comparisons_and_names_the_top_group(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "home")
    for seed in (0, 1, 2):
        record, predictions = make_record("best", seed=seed, skill=0.85)
        store.write(record, predictions)
        # near-copies, each a little worse: modest uncorrected p-values, some corrected away
        for k in range(1, 7):
            near = make_wrong(predictions, 2 + k)
            store.write(with_predictions(rekey(record, system=f"near{k}"), near), near)
        store.write(*make_record("weak", seed=seed, skill=0.3))
    [board] = build_leaderboards(store.iter_records(task=None), store, n_resamples=400)
    table = board.table
    assert table.index[0] == "best" and table.loc["best", "tied_with_best"] is True
    assert table.loc["weak", "delta_significant"] is True and table.loc["weak", "tied_with_best"] is False
    compared = table.dropna(subset=["delta_p_value"])
    assert (compared["delta_p_holm"] >= compared["delta_p_value"] - 1e-12).all()
    assert all(compared["delta_significant"] == (compared["delta_p_holm"] < 0.05))
    assert table.loc["weak", "rank_ci_low"] == table.loc["weak", "rank_ci_high"] == len(table)
    assert table.loc["best", "rank_ci_low"] == 1.0
    assert board.minimum_detectable_difference is not None and 0 < board.minimum_detectable_difference < 0.5
    from ascbench.leaderboard.render import display_frame

    shown = display_frame(board).set_index("System")["Rank 95 %"]
    assert shown["weak"] == str(len(table)) and shown["best"].startswith("1")
    assert any(note.startswith("Tied with the best") and "best" in note and "points" in note for note in board.notes)
