"""``ascbench check``: current records against an exported leaderboard JSON."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.leaderboard.build import build_leaderboards
from ascbench.leaderboard.export import leaderboard_json
from ascbench.leaderboard.regression import check_entry
from ascbench.results.store import ResultsStore
from records_factory import make_record, make_wrong, rekey, with_predictions

DATASET = "synth-tau22-tiny"
SYSTEMS = {"cp-mobile": (0.72, 61_148, 29_419_156), "tiny-cnn": (0.55, 20_000, 3_000_000)}
REFERENCE = f"{DATASET}-split25-smoke.json"


@pytest.fixture(scope="module")
def runs() -> dict[str, list]:
    return {name: [make_record(name, seed=s, skill=skill, params=p, macs=m, dataset=DATASET) for s in (0, 1)]
            for name, (skill, p, m) in SYSTEMS.items()}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs) -> ResultsStore:
    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    store = ResultsStore()
    for pairs in runs.values():
        for record, predictions in pairs:
            store.write(record, predictions)
    return store


@pytest.fixture
def reference(store: ResultsStore, tmp_path: Path) -> Path:
    """The leaderboard JSON of the records as they are now (what --export writes, without the
    slow HTML; the export itself is checked in test_exported_reference_of_unchanged_records_passes)."""
    out = tmp_path / REFERENCE
    result = CliRunner().invoke(app, ["leaderboard", "--format", "json", "--out", str(out), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    return out


def _check(reference: Path, *extra: str):
    return CliRunner().invoke(app, ["check", "--reference", str(reference), *extra])


def _rewrite(store: ResultsStore, runs, system: str, change) -> None:
    """Re-store ``system``'s runs after ``change(record, predictions) -> (record, predictions)``."""
    for record, predictions in runs[system]:
        store.write(*change(record, predictions))


def _unlink(store: ResultsStore, runs, system: str, seeds: tuple[int, ...] = (0, 1)) -> None:
    """Remove the records of ``system``'s ``seeds``: runs that never happened here."""
    for record, _ in runs[system]:
        if record.key.seed in seeds:
            store.record_path(record.key).unlink()


def _worse(record, predictions):  # a retrained model that lost accuracy
    degraded = make_wrong(predictions, 40)
    return with_predictions(record, degraded), degraded


def _flat(output: str) -> str:
    return " ".join(output.split())


def test_exported_reference_of_unchanged_records_passes(store: ResultsStore, tmp_path: Path) -> None:
    out = tmp_path / "leaderboards"
    assert CliRunner().invoke(app, ["leaderboard", "--export", "--out", str(out), "--resamples", "100"]).exit_code == 0
    result = _check(out / REFERENCE)
    assert result.exit_code == 0, result.output
    assert "no regressions" in result.output and "2 systems compared" in result.output


def test_accuracy_drop_and_mac_growth_fail(store: ResultsStore, runs, reference: Path) -> None:
    def heavier(record, predictions):  # a widened model: more MACs, now over the DCASE limit
        grown = dataclasses.replace(record.complexity, macs=31_000_000, params=70_000, param_memory_kb_int8=70.0)
        return dataclasses.replace(record, complexity=grown), predictions

    _rewrite(store, runs, "tiny-cnn", _worse)
    _rewrite(store, runs, "cp-mobile", heavier)
    result = _check(reference)

    assert result.exit_code == 1, result.output
    out = result.output
    assert "Regressions" in out and DATASET in out
    assert "tiny-cnn" in out and "accuracy dropped" in out
    assert "MACs grew" in out and "29,419,156" in out and "31,000,000" in out
    assert "parameters grew" in out
    assert "DCASE limit newly broken: MACs > 30 M" in out
    assert "no regressions" not in out


def test_a_mac_count_that_became_a_lower_bound_is_reported(store: ResultsStore, runs, reference: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A model change that brings in an operator fvcore cannot count leaves the MACs a lower bound:
    the DCASE verdict the reference had can no longer be vouched for."""
    def recurrent(record, predictions):
        partial = dataclasses.replace(record.complexity, uncounted_ops=["aten::gru"])
        return dataclasses.replace(record, complexity=partial), predictions

    _rewrite(store, runs, "cp-mobile", recurrent)
    from ascbench.cli import common

    monkeypatch.setattr(common.console, "_width", 250)  # the finding in one table cell, unwrapped (fixed when imported)
    result = _check(reference)
    assert result.exit_code == 1, result.output
    assert "DCASE limit no longer verifiable: MACs > 30 M? (uncounted operators)" in " ".join(result.output.split())


def test_drop_within_tolerance_passes_unless_tolerance_is_zero(store: ResultsStore, runs, reference: Path) -> None:
    def slightly_worse(record, predictions):
        degraded = make_wrong(predictions, 2)
        return with_predictions(record, degraded), degraded

    _rewrite(store, runs, "cp-mobile", slightly_worse)
    assert _check(reference).exit_code == 0
    strict = _check(reference, "--tolerance-acc", "0")
    assert strict.exit_code == 1 and "accuracy dropped" in strict.output and "cp-mobile" in strict.output


def test_check_compares_what_ran(store: ResultsStore, runs, reference: Path) -> None:
    """After a Quickstart (one seed of some of the reference's systems) check compares those, over
    the seed they have, and notes the rest; it failed on every row that had not run, so the
    README's check line never passed on a fresh clone."""
    _unlink(store, runs, "tiny-cnn")
    _unlink(store, runs, "cp-mobile", seeds=(0,))  # seed 1 alone is within the tolerance of the mean (seed 0 is not, on 360 clips)
    result = _check(reference)
    assert result.exit_code == 0, result.output
    out = _flat(result.output)
    assert "no regressions" in out and "1 systems compared" in out
    assert "not compared, no current records: tiny-cnn" in out
    assert "compared over fewer seeds than the reference: cp-mobile (1 of 2)" in out
    store.write(*_worse(*runs["cp-mobile"][1]))  # what ran is still held to the reference
    result = _check(reference)
    assert result.exit_code == 1 and "accuracy dropped" in result.output, result.output
    assert "missing" not in result.output


def test_named_systems_must_be_there_with_every_seed(store: ResultsStore, runs, reference: Path) -> None:
    one = _check(reference, "--systems", "cp-mobile")
    assert one.exit_code == 0 and "1 systems compared" in one.output, one.output
    assert "other fingerprints" not in one.output  # tiny-cnn's records are of the reference's data, only not named
    _unlink(store, runs, "tiny-cnn")
    _unlink(store, runs, "cp-mobile", seeds=(1,))
    named = _check(reference, "--systems", "cp-*")
    assert named.exit_code == 1 and "fewer seeds than the reference" in named.output, named.output
    assert "tiny-cnn" not in named.output  # not named: neither compared nor noted
    whole = _check(reference, "--systems", "*")
    assert whole.exit_code == 1 and "missing: no current record" in whole.output and "tiny-cnn" in whole.output
    assert _check(reference, "--systems", "tiny-cnn,cp-mobile").exit_code == 1
    typo = _check(reference, "--systems", "cp-mobil")
    assert typo.exit_code == 1 and "matches no system of the reference" in _flat(typo.output), typo.output


def test_a_check_with_nothing_to_compare_fails(store: ResultsStore, runs, reference: Path) -> None:
    for system in runs:
        _unlink(store, runs, system)
    result = _check(reference)
    assert result.exit_code == 1 and "missing: no current record" in result.output and "tiny-cnn" in result.output


def test_records_of_other_data_are_not_compared(store: ResultsStore, runs, reference: Path) -> None:
    """Regenerated data (new fingerprint) cannot vouch for the reference's numbers."""
    shutil.rmtree(store.root)
    for pairs in runs.values():
        for record, predictions in pairs:
            store.write(rekey(record, dataset_fingerprint="feedbeef"), predictions)
    result = _check(reference)
    assert result.exit_code == 1
    assert "missing" in result.output and "other fingerprints (feedbeef)" in result.output


def test_new_systems_are_listed_not_failed(store: ResultsStore, runs, reference: Path) -> None:
    record, predictions = runs["cp-mobile"][0]
    store.write(rekey(record, system="newcomer"), predictions)
    result = _check(reference)
    assert result.exit_code == 0 and "new systems (not in the reference): newcomer" in result.output


def test_check_entry_compares_with_every_rule(runs) -> None:
    records = [r for pairs in runs.values() for r, _ in pairs]
    [entry] = leaderboard_json(build_leaderboards(records), "test")["leaderboards"]
    assert check_entry(entry, records).ok
    cp = [r for r in records if r.key.system == "cp-mobile"]
    lower = [dataclasses.replace(r, metrics=dataclasses.replace(r.metrics, accuracy=r.metrics.accuracy - 0.03)) for r in cp]
    report = check_entry(entry, lower)  # what ran: tiny-cnn did not
    assert [(f.system, f.what) for f in report.regressions] == [("cp-mobile", "accuracy dropped by 3.00 pts (tolerance 2)")]
    assert report.notes == ["not compared, no current records: tiny-cnn (name them with --systems to require them)"]
    report = check_entry(entry, lower, systems=["*"])
    assert [(f.system, f.what) for f in report.regressions] == [
        ("cp-mobile", "accuracy dropped by 3.00 pts (tolerance 2)"), ("tiny-cnn", "missing: no current record")]  # fmt: skip
    assert check_entry(entry, lower, tolerance_acc=0.05, systems=["*"]).regressions[0].system == "tiny-cnn"
    assert check_entry(entry, lower, tolerance_acc=0.05).ok
    with pytest.raises(ValueError, match="tolerance_acc"):
        check_entry(entry, records, tolerance_acc=-0.01)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON (line 1"),
        (json.dumps({"schema": "something-else"}), "schema 'something-else'"),
        (json.dumps({"schema": "ascbench.leaderboard/1", "leaderboards": []}), "holds no leaderboard"),
        (json.dumps({"schema": "ascbench.leaderboard/1", "leaderboards": [{"rows": []}]}), "lacks dataset"),
    ],
    ids=["not-json", "foreign", "empty", "no-group"],
)
def test_bad_reference_is_an_input_error(store: ResultsStore, tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = _check(bad)
    assert result.exit_code == 2 and str(bad) in result.output and message in result.output
    missing = _check(tmp_path / "nope.json")
    assert missing.exit_code == 2 and "cannot read" in missing.output
