"""Leaderboards from stored records: aggregation over seeds, groups, paired comparisons, rank
score, and every output format (terminal, Markdown, CSV, JSON, self-contained HTML, export)."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.evaluation.bootstrap import paired_bootstrap
from ascbench.leaderboard.build import (
    DCASE_MAX_MACS,
    build_leaderboard,
    build_leaderboards,
    rank_table,
    rank_tables,
)
from ascbench.leaderboard.compare import paired_over_seeds
from ascbench.leaderboard.export import leaderboard_json, load_leaderboard_json
from ascbench.leaderboard.html import html_page
from ascbench.leaderboard.plots import pareto_front
from ascbench.leaderboard.render import display_frame, markdown
from ascbench.results.store import ResultsStore
from records_factory import FINGERPRINT, make_record, make_wrong, rekey, with_predictions

SYSTEMS = {  # name: (skill, params, MACs, paper label)
    "hubert-mobilenetv2": (0.82, 90_000, 26_000_000, "H_M"),
    "cp-mobile": (0.70, 61_148, 29_419_156, "BASE_I"),
    "efficientnet-b0": (0.66, 4_010_000, 401_000_000, "BASE_II"),
}
SEEDS = (0, 1, 2)
DATASET = "synth-tau22-small"


@pytest.fixture(scope="module")
def runs() -> dict[str, list]:
    """(record, predictions) per system and seed, as ``ascbench run`` would have stored them."""
    return {
        name: [make_record(name, seed=s, skill=skill, params=p, macs=m, paper_label=label, dataset=DATASET)
               for s in SEEDS]
        for name, (skill, p, m, label) in SYSTEMS.items()
    }  # fmt: skip


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ASCBENCH_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "220")
    store = ResultsStore(home)
    for pairs in runs.values():
        for record, predictions in pairs:
            store.write(record, predictions)
    return home


def _records(runs) -> list:
    return [record for pairs in runs.values() for record, _ in pairs]


def test_rows_aggregate_seeds_and_sort_by_accuracy(runs) -> None:
    table = build_leaderboard(_records(runs))

    assert list(table.index) == ["hubert-mobilenetv2", "cp-mobile", "efficientnet-b0"]
    assert table["accuracy"].is_monotonic_decreasing
    for name, pairs in runs.items():
        accuracies = [r.metrics.accuracy for r, _ in pairs]
        unseen = [r.metrics.unseen_accuracy for r, _ in pairs]
        row = table.loc[name]
        assert row["seeds"] == len(SEEDS)
        assert row["accuracy"] == pytest.approx(np.mean(accuracies))
        assert row["accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
        assert row["unseen_accuracy"] == pytest.approx(np.mean(unseen))
        assert row["ci95_low"] < row["accuracy"] < row["ci95_high"]
        assert row["attenuation_pct"] == pytest.approx(np.mean([r.metrics.attenuation_pct for r, _ in pairs]))
        assert row["params"] == SYSTEMS[name][1] and row["macs"] == SYSTEMS[name][2]
        assert row["paper_label"] == SYSTEMS[name][3]
    # the simulated unseen-device penalty shows up as a positive attenuation
    assert (table["attenuation_pct"] > 0).all()
    assert table["dcase_pass"].tolist() == [True, True, False]
    assert table.loc["efficientnet-b0", ["memory_ok", "macs_ok"]].tolist() == [False, False]


def test_dcase_limits_are_inclusive_and_checked_separately(runs) -> None:
    record, _ = runs["cp-mobile"][0]
    at_limit = dataclasses.replace(record, complexity=dataclasses.replace(
        record.complexity, params=128_000, param_memory_kb_int8=128.0, macs=DCASE_MAX_MACS))
    over_macs = rekey(dataclasses.replace(record, complexity=dataclasses.replace(
        record.complexity, macs=DCASE_MAX_MACS + 1)), system="wide")
    over_memory = rekey(dataclasses.replace(record, complexity=dataclasses.replace(
        record.complexity, params=128_001, param_memory_kb_int8=128.001)), system="big")
    # a --pool-kd student trained on development audio outside the split: within the size limits,
    # yet not a legal DCASE system
    pooled = rekey(dataclasses.replace(record, provenance={**record.provenance, "config": {**record.provenance["config"], "pool_kd": 1.0}}),
                   system="cp-mobile@pool-kd1")  # fmt: skip
    # operators fvcore could not count: the MACs are a lower bound, under the limit that proves nothing
    partial = rekey(dataclasses.replace(record, complexity=dataclasses.replace(
        record.complexity, macs=1_000_000, uncounted_ops=["aten::gru"])), system="recurrent")
    partial_over = rekey(dataclasses.replace(record, complexity=dataclasses.replace(
        record.complexity, macs=DCASE_MAX_MACS + 1, uncounted_ops=["aten::gru"])), system="recurrent-wide")
    records = [at_limit, over_macs, over_memory, pooled, partial, partial_over]
    table = build_leaderboard(records)
    assert table.loc["cp-mobile", ["memory_ok", "macs_ok", "dcase_pass"]].tolist() == [True, True, True]
    assert table.loc["wide", ["memory_ok", "macs_ok", "dcase_pass"]].tolist() == [True, False, False]
    assert table.loc["big", ["memory_ok", "macs_ok", "dcase_pass"]].tolist() == [False, True, False]
    assert table.loc["cp-mobile@pool-kd1", ["memory_ok", "macs_ok", "split_audio_only", "dcase_pass"]].tolist() == [True, True, False, False]
    assert table.loc["cp-mobile", "split_audio_only"]
    assert table.loc["recurrent", ["memory_ok", "macs_ok", "dcase_pass"]].tolist() == [True, None, None]
    assert table.loc["recurrent-wide", ["macs_ok", "dcase_pass"]].tolist() == [False, False]  # a lower bound over it is enough
    shown = display_frame(build_leaderboards(records)[0]).set_index("System")
    assert shown.loc["recurrent", "DCASE limits"] == "unknown: MACs (uncounted operators)"
    assert shown.loc["recurrent-wide", "DCASE limits"] == "FAIL: MACs"
    assert shown.loc["wide", "DCASE limits"] == "FAIL: MACs"
    assert shown.loc["big", "DCASE limits"] == "FAIL: memory"
    assert shown.loc["cp-mobile@pool-kd1", "DCASE limits"] == "FAIL: audio outside the split (pool KD)"
    # one seed: no spread is claimed
    assert shown.loc["cp-mobile", "Accuracy %"] == f"{record.metrics.accuracy * 100:.1f}"
    assert shown.loc["cp-mobile", "Seeds"] == "1"


def test_a_teacher_pre_trained_on_the_unlabeled_pool_is_audio_outside_the_split(runs) -> None:
    """DCASE 2024 allows the split and listed external resources: a teacher the harness
    pre-trained on the split's unlabeled pool fails, a local checkpoint or a teacher pre-trained
    on the split's own audio (split100) does not."""
    record, _ = runs["hubert-mobilenetv2"][0]

    def taught(system: str, fraction: float = 0.25, checkpoint: str | None = None, terms: bool = True, **notes: str) -> object:
        distill = {"front": terms, "hier": terms, "final_kd": terms, "fms": True}
        config = {**record.provenance["config"], "teacher_checkpoint": checkpoint, "pool_kd": 0.0, "recipe_config": {"distill": distill}}
        return rekey(dataclasses.replace(record, notes={"teacher": "hubert-small", **notes},
                                         provenance={**record.provenance, "config": config}), system=system, fraction=fraction)  # fmt: skip

    rows = {
        "on-pool": taught("on-pool", teacher_pretraining_audio="pool"),
        "on-checkpoint": taught("on-checkpoint", checkpoint="/models/hubert", teacher_pretraining_audio="checkpoint"),
        "on-split": taught("on-split", teacher_pretraining_audio="split"),
        # records made before the note: a self-supervised teacher below split100 read the pool
        "older": taught("older"),
        "older-checkpoint": taught("older-checkpoint", checkpoint="/models/hubert"),
        # --ablate front,hier,kd made before such runs skipped the teacher: it loaded one, read nothing
        "older-no-signal": taught("older-no-signal", terms=False),
    }
    tables = {name: build_leaderboard([r]) for name, r in rows.items()}
    assert {name: bool(t.loc[name, "split_audio_only"]) for name, t in tables.items()} == {
        "on-pool": False, "on-checkpoint": True, "on-split": True, "older": False, "older-checkpoint": True, "older-no-signal": True}
    assert build_leaderboard([rekey(rows["older"], fraction=1.0)]).loc["older", "dcase_pass"]  # split100: the pool is the split
    pooled = dataclasses.replace(rows["on-pool"], provenance={**rows["on-pool"].provenance,
                                 "config": {**rows["on-pool"].provenance["config"], "pool_kd": 2.0}})  # fmt: skip
    shown = display_frame(build_leaderboards([rows["on-pool"], rows["on-checkpoint"], rekey(pooled, system="both")])[0]).set_index("System")
    assert shown.loc["on-pool", "DCASE limits"] == "FAIL: audio outside the split (teacher pre-training)"
    assert shown.loc["both", "DCASE limits"] == "FAIL: audio outside the split (teacher pre-training, pool KD)"
    assert shown.loc["on-checkpoint", "DCASE limits"] == "pass if declared: teacher checkpoint"  # an external resource


def test_one_leaderboard_per_dataset_fingerprint_fraction_profile(runs) -> None:
    base = [r for r, _ in runs["cp-mobile"]]
    variants = {
        "tau": [rekey(r, dataset="tau22", dataset_fingerprint="77aa") for r in base],
        "regenerated": [rekey(r, dataset_fingerprint="0000ffff") for r in base],
        "split5": [rekey(r, fraction=0.05) for r in base],
        "quick": [rekey(r, profile="quick") for r in base],
    }
    boards = build_leaderboards(base + [r for rs in variants.values() for r in rs])

    assert len(boards) == 5
    assert all(len(b.table) == 1 and b.table["seeds"].iloc[0] == 3 for b in boards)
    for board in boards:
        assert board.group.dataset in board.title and board.group.fingerprint in board.title
        assert ("not a TAU result" in board.title) == board.group.dataset.startswith("synth")
    titles = {b.title for b in boards}
    assert any("tau22 [77aa]" in t and "synthetic" not in t for t in titles)
    assert any("split5" in t for t in titles) and any("profile quick" in t for t in titles)
    with pytest.raises(ValueError, match="records from 2 groups"):
        build_leaderboard(base + variants["regenerated"])


def test_two_records_for_one_seed_are_refused(runs) -> None:
    record, _ = runs["cp-mobile"][0]
    with pytest.raises(ValueError, match="several records for one seed"):
        build_leaderboard([record, dataclasses.replace(record)])


def test_paired_comparison_marks_real_gaps_only(home: Path, runs) -> None:
    store = ResultsStore(home)
    # a near-copy of the best system: 2 of its correct clips wrong on each seed
    for record, predictions in runs["hubert-mobilenetv2"]:
        twin = make_wrong(predictions, 2)
        store.write(with_predictions(rekey(record, system="hubert-twin"), twin), twin)

    [board] = build_leaderboards(store.iter_records(), store, n_resamples=500)
    table = board.table
    assert table.index[0] == "hubert-mobilenetv2"
    assert table.loc["hubert-mobilenetv2", "delta_vs_best"] == 0.0
    twin = table.loc["hubert-twin"]
    assert twin["delta_vs_best"] == pytest.approx(twin["accuracy"] - table["accuracy"].iloc[0])
    assert -0.02 < twin["delta_vs_best"] < 0
    assert twin["delta_significant"] is False and twin["delta_p_value"] > 0.05
    weak = table.loc["efficientnet-b0"]
    assert weak["delta_significant"] is True and weak["delta_ci95_high"] < 0 and weak["delta_p_value"] < 0.01
    assert weak["delta_seeds"] == "0,1,2"
    shown = display_frame(board).set_index("System")["Δ vs best, significant?"]
    assert shown["hubert-mobilenetv2"] == "best"
    assert shown["hubert-twin"].endswith(" no") and shown["efficientnet-b0"].endswith(" yes")
    assert shown["efficientnet-b0"].startswith("−")


def test_a_gap_paired_over_fewer_seeds_than_shown_says_which(home: Path, runs) -> None:
    """One seed of a system against the best's three: its Δ is the gap on seed 0, not the gap of
    the two means the row shows, and the column says so."""
    store = ResultsStore(home)
    record, predictions = runs["cp-mobile"][0]
    store.write(rekey(record, system="one-seed"), predictions)
    [board] = build_leaderboards(store.iter_records(), store, n_resamples=200)
    shown = display_frame(board).set_index("System")["Δ vs best, significant?"]
    assert shown["one-seed"].endswith(", seed 0 only")
    assert not shown["cp-mobile"].endswith("only")  # all three seeds paired


def test_systems_without_predictions_are_noted_not_compared(home: Path, runs) -> None:
    store = ResultsStore(home)
    record, _ = runs["cp-mobile"][0]
    store.write(rekey(record, system="no-preds"))  # a record kept without per-clip predictions
    [board] = build_leaderboards(store.iter_records(), store, n_resamples=200)
    assert np.isnan(board.table.loc["no-preds", "delta_vs_best"])
    assert any("no-preds" in note and "without per-clip predictions" in note for note in board.notes)
    assert not np.isnan(board.table.loc["cp-mobile", "delta_vs_best"])


def test_paired_over_seeds_generalises_paired_bootstrap(runs) -> None:
    (_, best), (_, other) = runs["hubert-mobilenetv2"][0], runs["cp-mobile"][0]
    single = paired_bootstrap(other, best, n_resamples=300, seed=4)
    assert paired_over_seeds({0: other}, {0: best}, n_resamples=300, seed=4) == single
    # the same run twice is no more evidence than once: identical statistic and interval
    doubled = paired_over_seeds({0: other, 1: other}, {0: best, 1: best}, n_resamples=300, seed=4)
    assert doubled.difference == pytest.approx(single.difference)
    assert doubled.ci95 == pytest.approx(single.ci95)
    # seed-averaged gap over three real seeds equals the gap of the mean accuracies
    three = paired_over_seeds({s: p for s, (_, p) in enumerate(runs["cp-mobile"])},
                              {s: p for s, (_, p) in enumerate(runs["hubert-mobilenetv2"])}, n_resamples=300)  # fmt: skip
    means = [np.mean([r.metrics.accuracy for r, _ in runs[n]]) for n in ("cp-mobile", "hubert-mobilenetv2")]
    assert three.difference == pytest.approx(means[0] - means[1])
    with pytest.raises(ValueError, match="no run seed in common"):
        paired_over_seeds({0: other}, {1: best})
    shuffled = dataclasses.replace(best, filenames=best.filenames[:-1] + ("audio/park-lyon-1-1-0-a.wav",))
    with pytest.raises(ValueError, match="clip lists differ"):
        paired_over_seeds({0: other, 1: other}, {0: shuffled, 1: shuffled})


def test_rank_score_is_the_mean_of_five_split_accuracies(runs) -> None:
    full = [rekey(r, fraction=f) for r, _ in runs["cp-mobile"][:2] for f in (0.05, 0.1, 0.25, 0.5, 1.0)]
    partial = [rekey(r, fraction=f) for r, _ in runs["hubert-mobilenetv2"][:1] for f in (0.1, 0.25, 0.5, 1.0)]
    table = rank_table(full + partial)

    assert list(table.index) == ["cp-mobile", "hubert-mobilenetv2"]
    split_means = np.mean([r.metrics.accuracy for r, _ in runs["cp-mobile"][:2]])
    assert table.loc["cp-mobile", ["split5", "split100"]].tolist() == pytest.approx([split_means] * 2)
    assert table.loc["cp-mobile", "rank_score"] == pytest.approx(split_means)
    assert table.loc["cp-mobile", "splits"] == 5
    assert np.isnan(table.loc["hubert-mobilenetv2", "rank_score"])  # a missing split, no partial mean
    assert np.isnan(table.loc["hubert-mobilenetv2", "split5"])
    assert [key.profile for key, _ in rank_tables(full + partial)] == ["smoke"]
    assert rank_tables(partial) == []  # split5 never ran
    with pytest.raises(ValueError, match="2 data set/profile groups"):
        rank_table(full + [rekey(r, profile="quick") for r in full])


def test_pareto_front() -> None:
    macs = np.array([3e6, 26e6, 29e6, 400e6, 26e6])
    acc = np.array([48.0, 75.0, 68.0, 69.0, 70.0])
    assert pareto_front(macs, acc).tolist() == [True, True, False, False, False]


def test_markdown_and_json_name_the_data_and_trace_provenance(runs) -> None:
    [board] = build_leaderboards(_records(runs))
    text = markdown([board], "ascbench leaderboard --export")
    assert text.startswith("<!-- Generated by `ascbench leaderboard --export`")
    assert f"## {DATASET} [{FINGERPRINT}]" in text and "not TAU22 results" in text
    body = [line for line in text.splitlines() if line.startswith("| ") and "System" not in line]
    assert [line.split(" | ")[1] for line in body] == list(SYSTEMS)

    document = json.loads(json.dumps(leaderboard_json([board], "cmd"), allow_nan=False))
    [entry] = document["leaderboards"]
    assert (entry["dataset"], entry["dataset_fingerprint"], entry["fraction"]) == (DATASET, FINGERPRINT, 0.25)
    assert [row["system"] for row in entry["rows"]] == list(SYSTEMS)
    prov = entry["provenance"]["cp-mobile"]
    records = [r for r, _ in runs["cp-mobile"]]
    assert prov["seeds"] == list(SEEDS)
    assert [rec["key"] for rec in prov["records"]] == [dataclasses.asdict(r.key) for r in records]
    assert prov["config_hashes"] == [records[0].provenance["config_hash"]]
    assert prov["git_commits"] == [records[0].provenance["git_commit"]]
    assert prov["packages"]["torch"] == [records[0].provenance["packages"]["torch"]]
    assert entry["per_device"]["cp-mobile"]["s4"] == pytest.approx(
        np.mean([r.metrics.per_device["s4"] for r in records]))


def test_html_is_self_contained_with_three_plots(home: Path, runs) -> None:
    store = ResultsStore(home)
    page = html_page(build_leaderboards(store.iter_records(), store, n_resamples=200), "ascbench leaderboard --export")

    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # accuracy vs MACs, per-device heatmap, confusion matrices
    for image in images:
        assert base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n")
    assert f"{DATASET} [{FINGERPRINT}]" in page and "not TAU22 results" in page
    assert "FAIL: memory, MACs" in page and "ascbench leaderboard --export" in page


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_formats(home: Path, tmp_path: Path) -> None:
    table = _cli("leaderboard", "--resamples", "200")
    assert table.exit_code == 0, table.output
    assert all(name in table.output for name in SYSTEMS) and FINGERPRINT in table.output

    md = _cli("leaderboard", "--format", "md", "--data", DATASET, "--fraction", "25", "--profile", "smoke", "--resamples", "200")
    assert md.exit_code == 0 and "| 1 | hubert-mobilenetv2 |" in md.output

    out = tmp_path / "lb.json"
    result = _cli("leaderboard", "--format", "json", "--out", str(out), "--resamples", "200")
    assert result.exit_code == 0, result.output
    assert [e["dataset"] for e in load_leaderboard_json(out)] == [DATASET]

    csv = _cli("leaderboard", "--format", "csv", "--resamples", "200")
    assert csv.output.startswith("# Generated by") and csv.output.count(f"{DATASET},{FINGERPRINT},0.25,smoke,") == 3

    two = _cli("leaderboard", "--format", "csv", "--seeds", "2,0", "--resamples", "200").output.splitlines()
    assert two[0] == "# Generated by `ascbench leaderboard --seeds 2,0 --format csv` from run records. Do not edit by hand."
    header = two[1].split(",")
    assert [row.split(",")[header.index("seeds")] for row in two[2:]] == ["2"] * len(SYSTEMS)
    bad = _cli("leaderboard", "--seeds", "x")
    assert bad.exit_code == 2 and "--seeds 'x': expected comma-separated non-negative integers" in bad.output

    ranks = _cli("leaderboard", "--fraction", "all")
    assert ranks.exit_code == 0 and "DCASE rank score" in ranks.output and "split100" in ranks.output
    rank_csv = _cli("leaderboard", "--fraction", "all", "--format", "csv").output.splitlines()
    assert rank_csv[0].startswith("# Generated by") and rank_csv[1].startswith("dataset,dataset_fingerprint,profile,")
    assert len(rank_csv) == 2 + len(SYSTEMS) and all(line.startswith(f"{DATASET},{FINGERPRINT},smoke,") for line in rank_csv[2:])


def test_cli_reports_unusable_records_and_ranks_the_rest(home: Path, runs) -> None:
    store = ResultsStore(home)
    path = store.record_path(runs["cp-mobile"][0][0].key)
    path.write_text(path.read_text()[:100])  # an interrupted write from an older, non-atomic tool
    result = _cli("leaderboard", "--format", "csv", "--resamples", "200")
    assert result.exit_code == 0
    # without whitespace: rich wraps the line wherever the (temporary, any-length) path ends up
    assert f"skippedunusablerecord{path}" in "".join(result.output.split())
    [cp_row] = [line for line in result.output.splitlines() if ",cp-mobile," in line]
    assert ",cp-mobile,BASE_I,baseline,2," in cp_row  # two seeds left


def test_cli_without_matching_records_or_with_bad_input(home: Path) -> None:
    none = _cli("leaderboard", "--data", "tau22")
    assert none.exit_code == 1 and "no run records with data=tau22" in none.output
    bad = _cli("leaderboard", "--fraction", "0.3")
    assert bad.exit_code == 2 and "invalid fraction" in bad.output


def test_export_writes_every_format_and_is_reproducible(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "leaderboards"
    first = _cli("leaderboard", "--export", "--out", str(out), "--resamples", "200")
    assert first.exit_code == 0, first.output
    stem = f"{DATASET}-split25-smoke"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}.{ext}" for ext in ("csv", "html", "json", "md"))
    for path in out.iterdir():
        assert "ascbench leaderboard --export" in path.read_text()[:300] or path.suffix == ".html"
    assert "Generated by `ascbench leaderboard --export`" in (out / f"{stem}.html").read_text()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _cli("leaderboard", "--export", "--out", str(out), "--resamples", "200").exit_code == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # same records, same bytes

    # a filtered export would overwrite the whole boards' files with part of one
    filtered = _cli("leaderboard", "--export", "--out", str(out), "--systems", "cp-mobile")
    assert filtered.exit_code == 2 and "--export writes whole boards" in filtered.output, filtered.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    a_file = out / f"{stem}.md"
    for args in (["--export", "--out", str(a_file)], ["--format", "md", "--out", str(out)]):
        result = _cli("leaderboard", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output and f"--out {a_file if '--export' in args else out}" in result.output, result.output


def test_export_keeps_apart_data_of_one_name_and_two_fingerprints(home: Path, runs, tmp_path: Path) -> None:
    """synth-tau22-small of another seed (or generator version) has the same name: its board must
    get files of its own, not overwrite the first one's."""
    store = ResultsStore(home)
    for record, predictions in runs["cp-mobile"]:
        store.write(rekey(record, dataset_fingerprint="feedbeef00000000"), predictions)
    out = tmp_path / "leaderboards"
    result = _cli("leaderboard", "--export", "--out", str(out), "--resamples", "100")
    assert result.exit_code == 0, result.output
    stems = {p.stem for p in out.glob("*.json")}
    assert stems == {f"{DATASET}-split25-smoke-{FINGERPRINT[:8]}", f"{DATASET}-split25-smoke-feedbeef"}
    boards = {stem: json.loads((out / f"{stem}.json").read_text())["leaderboards"][0] for stem in stems}
    assert boards[f"{DATASET}-split25-smoke-feedbeef"]["dataset_fingerprint"] == "feedbeef00000000"
    assert [row["system"] for row in boards[f"{DATASET}-split25-smoke-feedbeef"]["rows"]] == ["cp-mobile"]
