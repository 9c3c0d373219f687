"""``run --dry-run``'s plan on the tiny synthetic set: recorded runs skipped, the others with why
they run, their stages, the caches and their size, and a time estimate that says how it was made."""

from __future__ import annotations

from pathlib import Path

import pytest

from ascbench.runner.execute import execute_run
from ascbench.runner.plan import plan_runs
from ascbench.runner.request import RunRequest
from ascbench.systems import discover


@pytest.fixture(scope="module")
def recorded_home(tiny_synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("plan") / "home"
    execute_run(RunRequest("cp-mobile", tiny_synth_root, 0.25, 0, profile="smoke", home=home), progress=False, log=lambda _: None)
    return home


def test_the_plan_skips_what_is_recorded_and_estimates_the_rest(recorded_home: Path, tiny_synth_root: Path) -> None:
    registry = discover()
    requests = [RunRequest(system, tiny_synth_root, 0.25, seed, profile="smoke", home=recorded_home)
                for system, seed in (("cp-mobile", 0), ("cp-mobile", 1), ("mobilenetv2", 0))]  # fmt: skip
    records_before = sorted((recorded_home / "records").rglob("*.json"))
    plan = plan_runs(requests, registry)
    recorded, again, other = plan.runs
    assert recorded.skipped and recorded.seconds is None and recorded.reason == "recorded: skipped"
    assert not again.skipped and again.reason == "no record yet" and again.estimated_by == "records (1 on this machine)"
    assert again.seconds and again.seconds > 0 and again.stages == ("train", "evaluate", "int8")
    assert not other.skipped and other.estimated_by == "probe (the student's training only)" and other.seconds and other.seconds > 0
    assert plan.seconds == pytest.approx(again.seconds + other.seconds)
    [cache] = plan.caches  # one frontend for both systems, built by the recorded run
    clips = len(list((tiny_synth_root / "audio").glob("*.wav")))
    assert cache.exists and cache.bytes == clips * 256 * 65 * 4 and plan.new_bytes == 0
    assert sorted((recorded_home / "records").rglob("*.json")) == records_before  # nothing written


def test_a_forced_run_is_planned_to_run(recorded_home: Path, tiny_synth_root: Path) -> None:
    [run] = plan_runs([RunRequest("cp-mobile", tiny_synth_root, 0.25, 0, profile="smoke", home=recorded_home, force=True)]).runs
    assert not run.skipped and run.reason == "--force"


def test_dry_run_prints_the_plan_and_writes_nothing(recorded_home: Path, tiny_synth_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ascbench.cli.main import app

    before = sorted(p for p in recorded_home.rglob("*") if p.is_file())
    shown = CliRunner().invoke(app, ["run", "--models", "cp-mobile", "--seeds", "0,1", "--data", str(tiny_synth_root), "--profile", "smoke",
                                     "--home", str(recorded_home), "--dry-run"])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "recorded: skipped" in text and "no record yet" in text and "1 of 2 run(s) compute, about" in text
    assert "cache features baseline-mel" in text and "present" in text
    assert sorted(p for p in recorded_home.rglob("*") if p.is_file()) == before
    fresh = tmp_path / "fresh"
    new = CliRunner().invoke(app, ["run", "--models", "cp-mobile", "--data", "synth-tau22-tiny", "--profile", "smoke", "--home", str(fresh),
                                   "--dry-run"])  # fmt: skip
    assert new.exit_code == 0, new.output
    assert "to be generated" in " ".join(new.output.split())
    assert not list(fresh.rglob("*.wav")) and not list(fresh.rglob("*.csv"))  # nothing generated


def test_the_runs_bar_estimates_each_run_as_the_plan_does(recorded_home: Path, tiny_synth_root: Path) -> None:
    from ascbench.runner.plan import estimate_seconds

    registry = discover()
    requests = [RunRequest(system, tiny_synth_root, 0.25, 1, profile="smoke", home=recorded_home) for system in ("cp-mobile", "mobilenetv2")]
    from_records, probed = estimate_seconds(requests, registry)
    planned = plan_runs(requests, registry).runs
    assert from_records == pytest.approx(planned[0].seconds)  # the same records, the same estimate
    assert probed is not None and probed > 0  # no record of mobilenetv2: a probe


def test_a_probed_run_adds_evaluation_and_int8_from_a_record_of_another_profile(
    recorded_home: Path, tiny_synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe times the student's training only; evaluation and int8 score the same network on
    the same test clips at every profile, so the smoke record's times complete a quick estimate
    (a smoke run estimated at 1 s took 15-30 s before)."""
    from ascbench.results.store import ResultsStore
    from ascbench.runner import plan

    monkeypatch.setattr(plan, "probe_step_seconds", lambda spec, batch: 0.0)  # training costs nothing: what is left is scoring
    [record] = ResultsStore(recorded_home).iter_records(system="cp-mobile")
    scoring = record.timings["eval_s"] + record.timings["complexity_s"]
    [planned] = plan_runs([RunRequest("cp-mobile", tiny_synth_root, 0.25, 0, profile="quick", home=recorded_home)], discover()).runs
    assert planned.estimated_by == "probe (the student's training) + records (evaluation, int8)"
    assert scoring > 0 and planned.seconds == pytest.approx(scoring)
    [other] = plan_runs([RunRequest("mobilenetv2", tiny_synth_root, 0.25, 0, profile="quick", home=recorded_home)], discover()).runs
    assert other.estimated_by == "probe (the student's training only)" and other.seconds == 0.0  # no record of it: training only
