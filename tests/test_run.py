"""`ascbench run` end to end on the tiny synthetic set: records, skipping, determinism, plugins."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.results.store import ResultsStore
from records_factory import make_record

runner = CliRunner()

PLUGIN = """
    from torch import nn
    from ascbench import register_system

    @register_system("tiny-cnn", description="a dropped-in test submission")
    def tiny_cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 5, stride=4), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
        )
"""


def _run(home: Path, data: Path, *args: str) -> list[dict]:
    result = runner.invoke(
        app,
        ["run", "--data", str(data), "--profile", "smoke", "--fraction", "0.25", "--home", str(home), "--no-progress", *args],
    )
    assert result.exit_code == 0, result.output
    return [r.to_json_dict() for r in ResultsStore(home).iter_records()]


@pytest.fixture()
def submissions(tmp_path: Path) -> Path:
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "tiny_cnn.py").write_text(textwrap.dedent(PLUGIN))
    return folder


def test_dropped_in_submission_runs_end_to_end(tiny_synth_root: Path, tmp_path: Path, submissions: Path) -> None:
    home = tmp_path / "home"
    records = _run(home, tiny_synth_root, "--models", "tiny-cnn,cp-mobile", "--submissions", str(submissions))
    by_system = {r["key"]["system"]: r for r in records}
    assert set(by_system) == {"tiny-cnn", "cp-mobile"}
    cp = by_system["cp-mobile"]
    assert cp["complexity"]["params"] == 61_148 and cp["complexity"]["macs"] == 29_419_156
    assert cp["key"]["dataset"].startswith("synth-tau22")
    assert 0.0 <= cp["metrics"]["accuracy"] <= 1.0
    assert cp["provenance"]["config_hash"] and cp["provenance"]["finished_utc"]
    assert (home / cp["artifacts"]["model"]).is_file()
    # the trained weights reload through --checkpoint and give the same test predictions
    store = ResultsStore(home)
    record = next(r for r in store.iter_records() if r.key.system == "cp-mobile")
    before = store.load_predictions(record)
    loaded_home = tmp_path / "home2"
    _run(loaded_home, tiny_synth_root, "--models", "cp-mobile", "--checkpoint", str(home / cp["artifacts"]["model"]))
    reloaded = ResultsStore(loaded_home)
    (loaded,) = reloaded.iter_records()
    assert loaded.key.system.startswith("cp-mobile@weights-model-")  # a run of its own, never the trained one's record
    again = reloaded.load_predictions(loaded)
    np.testing.assert_allclose(again.scores, before.scores, rtol=1e-5, atol=1e-5)


def test_rerun_skips_and_force_reproduces_bit_identical_metrics(tiny_synth_root: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _run(home, tiny_synth_root, "--models", "cp-mobile")
    path = next((home / "records").rglob("*.json"))
    stamp = path.stat().st_mtime_ns
    result = runner.invoke(app, ["run", "--data", str(tiny_synth_root), "--profile", "smoke", "--home", str(home), "--models", "cp-mobile", "--no-progress"])
    assert result.exit_code == 0 and "skipped" in result.output
    assert path.stat().st_mtime_ns == stamp
    forced = _run(home, tiny_synth_root, "--models", "cp-mobile", "--force")
    assert forced[0]["notes"]["resumed_from_epoch"] == 0  # retrained, not resumed from the finished run's checkpoint
    assert json.dumps(forced[0]["metrics"], sort_keys=True) == json.dumps(first[0]["metrics"], sort_keys=True)


def test_the_leaderboard_finds_a_run_by_the_directory_run_was_given(tiny_synth_root: Path, tmp_path: Path) -> None:
    """`leaderboard --data DIR` with the DIR `run --data` was given shows that run: records carry
    the data set's name (synth-tau22-tiny), which the user never typed, and `--data DIR` found
    nothing. The directory stands for its content: a record of other data under the same name is
    left out, which `--data NAME` keeps."""
    home = tmp_path / "home"
    (real,) = _run(home, tiny_synth_root, "--models", "cp-mobile")
    ResultsStore(home).write(*make_record("other-copy", dataset=real["key"]["dataset"], fingerprint="0123456789abcdef"))
    ResultsStore(home).write(*make_record("on-the-default-set", dataset="synth-tau22-small"))

    def board(data: str) -> str:
        result = runner.invoke(app, ["leaderboard", "--data", data, "--format", "csv", "--home", str(home), "--resamples", "100"])
        assert result.exit_code == 0, result.output
        return result.output

    by_directory = board(str(tiny_synth_root))
    assert "cp-mobile" in by_directory and "other-copy" not in by_directory
    by_name = board(real["key"]["dataset"])
    assert "cp-mobile" in by_name and "other-copy" in by_name
    assert "on-the-default-set" in board("synth-tau22")  # the name `run --data` takes for the default set
    unknown = runner.invoke(app, ["leaderboard", "--data", "tau22", "--home", str(home)])
    assert unknown.exit_code == 1
    said = " ".join(unknown.output.split())
    assert "it has records of" in said
    assert f"{real['key']['dataset']} [0123456789abcdef]" in said and f"{real['key']['dataset']} [{real['key']['dataset_fingerprint']}]" in said


def test_bad_fraction_and_unknown_system_are_clear_errors(tiny_synth_root: Path, tmp_path: Path) -> None:
    bad = runner.invoke(app, ["run", "--data", str(tiny_synth_root), "--fraction", "0.3", "--home", str(tmp_path)])
    assert bad.exit_code != 0 and "0.05, 0.1, 0.25, 0.5, 1.0" in bad.output
    unknown = runner.invoke(app, ["run", "--data", str(tiny_synth_root), "--models", "nope", "--home", str(tmp_path)])
    assert unknown.exit_code != 0 and "unknown system 'nope'" in unknown.output
    # the user's text is printed as typed: brackets are not rich markup (a closing tag used to crash)
    bracketed = runner.invoke(app, ["run", "--data", str(tiny_synth_root), "--models", "lab[/x],a[bold]", "--home", str(tmp_path)])
    assert bracketed.exit_code == 2 and "unknown system 'lab[/x]'" in bracketed.output, bracketed.output
    assert "'ascbench[ray]'" in "".join(runner.invoke(app, ["run", "--help"]).output.replace("│", "").split())


def test_ablation_rows_are_runs_of_their_own_beside_the_full_system(tiny_synth_root: Path, tmp_path: Path, submissions: Path) -> None:
    home = tmp_path / "home"
    _run(home, tiny_synth_root, "--models", "tiny-cnn", "--submissions", str(submissions))
    result = runner.invoke(
        app,
        ["ablation", "tiny-cnn", "--components", "fms", "--data", str(tiny_synth_root), "--profile", "smoke",
         "--home", str(home), "--submissions", str(submissions), "--no-progress"],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert "tiny-cnn split25 seed0: complete record found, skipped" in result.output  # the full row is reused
    records = {r.key.system: r for r in ResultsStore(home).iter_records()}
    assert set(records) == {"tiny-cnn", "tiny-cnn~no-fms"}
    # the ablated row really trained without Freq-MixStyle: its recorded config says so
    configs = {name: r.provenance["config"] for name, r in records.items()}
    assert records["tiny-cnn~no-fms"].options["ablate"] == ["fms"] and records["tiny-cnn"].options["ablate"] == []
    assert configs["tiny-cnn~no-fms"]["recipe_config"]["fms_p"] == 0.0 < configs["tiny-cnn"]["recipe_config"]["fms_p"]
    table = runner.invoke(app, ["leaderboard", "--systems", "tiny-cnn*", "--format", "md", "--home", str(home)])
    assert table.exit_code == 0 and "tiny-cnn~no-fms" in table.output and "cp-mobile" not in table.output


def test_an_ablation_the_recipe_does_not_use_is_refused_before_anything_runs(tiny_synth_root: Path, tmp_path: Path, submissions: Path) -> None:
    """The supervised recipe has no teacher terms and keeps ADIR off: "tiny-cnn~no-hier" would be
    tiny-cnn trained again under an ablation's name."""
    home = tmp_path / "home"
    common = ["--data", str(tiny_synth_root), "--profile", "smoke", "--home", str(home), "--submissions", str(submissions), "--no-progress"]
    run = runner.invoke(app, ["run", "--models", "tiny-cnn", "--ablate", "fms,hier,adir", *common])
    assert run.exit_code != 0
    assert "tiny-cnn: ablate=adir,fms,hier at profile 'smoke': the recipe does not use adir, hier" in run.output
    ablation = runner.invoke(app, ["ablation", "tiny-cnn", "--components", "qat,fms,adir", *common])
    assert ablation.exit_code != 0 and "the recipe does not use adir, qat (" in ablation.output  # every one, in one line
    assert list(ResultsStore(home).iter_records()) == []


def test_inert_ablations_are_the_components_a_recipe_ignores() -> None:
    from ascbench.ablation import ABLATABLE
    from ascbench.recipes.base import inert_ablations
    from ascbench.runner.execute import system_recipe
    from ascbench.systems.registry import discover

    registry = discover(None)
    everything = frozenset(ABLATABLE)
    assert inert_ablations(system_recipe(registry.get("hubert-mobilenetv2")), "smoke", everything) == []
    assert inert_ablations(system_recipe(registry.get("beats-mobilenetv2")), "smoke", everything) == ["adir", "front", "hier", "qat"]
    assert inert_ablations(system_recipe(registry.get("mobilenetv2")), "quick", everything) == ["adir", "front", "hier", "kd", "qat"]


BUDGETED_PLUGIN = """
    from torch import nn
    from ascbench import SupervisedRecipe, register_system

    @register_system("tiny-cnn-short", recipe=SupervisedRecipe({"smoke": {"epochs": 1, "max_steps": 1}}))
    def tiny_cnn_short() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
"""


def test_a_per_system_budget_trains_shorter_and_the_record_says_so(tiny_synth_root: Path, tmp_path: Path, submissions: Path) -> None:
    (submissions / "short.py").write_text(textwrap.dedent(BUDGETED_PLUGIN))
    records = _run(tmp_path / "home", tiny_synth_root, "--models", "tiny-cnn,tiny-cnn-short", "--submissions", str(submissions))
    by_system = {r["key"]["system"]: r for r in records}
    short, full = by_system["tiny-cnn-short"], by_system["tiny-cnn"]
    assert short["notes"]["steps"] == 1 and full["notes"]["steps"] == 4
    assert short["provenance"]["config"]["recipe_config"]["epochs"] == 1
    assert full["provenance"]["config"]["recipe_config"]["epochs"] == 2
    assert short["provenance"]["config_hash"] != full["provenance"]["config_hash"]


def test_the_epochs_option_trains_exactly_that_many_epochs_as_a_row_of_its_own(tiny_synth_root: Path, tmp_path: Path,
                                                                              submissions: Path) -> None:  # fmt: skip
    """``--set epochs=N`` (equal-step controls): the profile's step cap and floor are off, the
    record keeps the option and the run is a row of its own beside the plain one."""
    import math

    from ascbench.data.reader import load_dataset, load_split

    records = _run(tmp_path / "home", tiny_synth_root, "--models", "tiny-cnn", "--set", "epochs=3", "--submissions", str(submissions))
    (record,) = records
    train = len(load_split(load_dataset(tiny_synth_root), 0.25).train)
    assert record["key"]["system"] == "tiny-cnn@epochs3" and record["options"]["epochs"] == 3
    assert record["notes"]["steps"] == 3 * math.ceil(train / 16) > 4  # smoke's cap is 4 steps
    bad = runner.invoke(app, ["run", "--models", "tiny-cnn", "--set", "epochs=0", "--data", str(tiny_synth_root), "--profile", "smoke",
                              "--home", str(tmp_path / "home"), "--submissions", str(submissions), "--no-progress"])  # fmt: skip
    assert bad.exit_code == 2 and "epochs=0: expected a positive number of epochs" in bad.output
    same = runner.invoke(app, ["run", "--models", "tiny-cnn", "--epochs", "3", "--data", str(tiny_synth_root), "--profile", "smoke",
                               "--home", str(tmp_path / "home"), "--submissions", str(submissions), "--dry-run"])  # fmt: skip
    assert same.exit_code == 0 and "recorded: skipped" in same.output  # --epochs N is --set epochs=N: the same run


def test_a_budget_naming_no_train_config_field_fails_at_registration() -> None:
    from ascbench import SupervisedRecipe

    with pytest.raises(ValueError, match="epoch"):
        SupervisedRecipe({"quick": {"epoch": 6}})
    with pytest.raises(ValueError, match="unknown training profile"):
        SupervisedRecipe({"fast": {"epochs": 6}})
    assert SupervisedRecipe({"quick": {"epochs": 6}}).config("quick").epochs == 6
    assert SupervisedRecipe({"quick": {"epochs": 6}}).config("dcase").epochs == 150


def test_later_run_options_leave_older_records_current_until_set() -> None:
    """warmup_steps and amp came after records existed: unset, a run's identity is what it was
    before they existed; set, they change the identity, the trained config and the run's name."""
    import dataclasses as dc

    from ascbench.recipes.options import RunOptions
    from ascbench.recipes.supervised import SupervisedRecipe
    from ascbench.runner.execute import RunConfig
    from ascbench.runner.identity import config_digest

    @dc.dataclass(frozen=True)
    class RunOptionsBefore:  # the options as records made before the two fields hold them
        teacher: str | None = None
        ablate: tuple[str, ...] = ()
        epochs: int | None = None

    recipe = SupervisedRecipe()

    def config(options) -> RunConfig:
        return RunConfig("cp-mobile", "synth", "f" * 16, 0.25, 0, "dcase", "supervised",
                         recipe.config_for("dcase", RunOptions()), options, None, None)  # fmt: skip

    assert config_digest(config(RunOptions())) == config_digest(config(RunOptionsBefore()))
    shorter = RunOptions(warmup_steps=60)
    assert config_digest(config(shorter)) != config_digest(config(RunOptions()))
    assert recipe.config_for("dcase", shorter).warmup_steps == 60 and recipe.config_for("dcase", RunOptions()).warmup_steps == 2000
    assert recipe.config_for("dcase", RunOptions(amp="bf16")).amp == "bf16" and recipe.config_for("dcase", RunOptions()).amp == "off"
    assert RunOptions(warmup_steps=60, amp="bf16").label() == "@warmup60@amp-bf16"
    assert set(RunOptions().to_dict()) == {"teacher", "ablate", "epochs"}  # a record reads as before
    assert RunOptions(amp="bf16").to_dict()["amp"] == "bf16"
    with pytest.raises(ValueError, match="amp=fp8: expected one of auto, off, bf16, fp16"):
        RunOptions(amp="fp8")
