"""User-facing failures of the CLI, the registry, the data reader and the runners: each one a clear
message and exit status (or a reported per-run failure), never a traceback or a silent no-op."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.data.check import check_dataset
from ascbench.data.layout import SPLIT_DIR, SPLIT_HEADER, TEST_FILE, parse_fraction
from ascbench.data.reader import DataError, load_dataset
from ascbench.paths import features_dir
from ascbench.results.store import ResultsStore
from ascbench.runner.request import RunOutcome, RunRequest
from ascbench.systems import discover
from tau_fixture import TauFixture, build_tau_fixture, clone_fixture

runner = CliRunner()

TINY = """
    from torch import nn
    from ascbench import register_system

    @register_system("{name}")
    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, {classes}))
"""


def _flat(text: str) -> str:
    """Output with rich's box characters and line wrapping removed, for substring checks."""
    return " ".join(text.replace("│", " ").split())


def _folder(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for filename, body in files.items():
        (folder / filename).write_text(textwrap.dedent(body))
    return folder


def _no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


@pytest.fixture(scope="module")
def tau(tmp_path_factory: pytest.TempPathFactory) -> TauFixture:
    return build_tau_fixture(tmp_path_factory.mktemp("tau") / "dev")


# --- 1. plugin problems are printed, not crashed on -------------------------------------------------


def test_run_prints_a_broken_submission_as_a_plugin_problem(tiny_synth_root: Path, tmp_path: Path) -> None:
    subs = _folder(tmp_path, "subs", {"broken.py": "import this_module_does_not_exist\n"})
    # a missing --checkpoint stops the command right after the plugin problems are printed: nothing trains
    result = runner.invoke(app, ["run", "--submissions", str(subs), "--models", "cp-mobile", "--checkpoint", str(tmp_path / "none.pt"),
                                 "--data", str(tiny_synth_root), "--home", str(tmp_path / "home"), "--no-progress"])  # fmt: skip
    _no_traceback(result)
    output = _flat(result.output)
    assert result.exit_code == 2, result.output
    assert "plugin problem:" in output and "broken.py: failed to import: ModuleNotFoundError" in output


# --- 2. a system that fails validation is one failed run, not a dead grid ---------------------------


def test_a_system_with_the_wrong_output_shape_fails_alone_and_before_its_features(tiny_synth_root: Path, tmp_path: Path) -> None:
    subs = _folder(tmp_path, "subs", {"shape7.py": TINY.format(name="shape7", classes=7), "tiny.py": TINY.format(name="tiny", classes=10)})
    home = tmp_path / "home"
    common = ["--data", str(tiny_synth_root), "--profile", "smoke", "--device", "cpu", "--home", str(home), "--submissions", str(subs), "--no-progress"]
    alone = runner.invoke(app, ["run", "--models", "shape7", *common])
    _no_traceback(alone)
    assert alone.exit_code == 1
    assert "model output has shape (1, 7) for one clip; expected (1, 10)" in _flat(alone.output)
    assert not features_dir(home).exists() or not any(features_dir(home).iterdir())  # validated before its features

    both = runner.invoke(app, ["run", "--models", "shape7,tiny", *common])
    _no_traceback(both)
    assert both.exit_code == 1, both.output
    assert "failed: shape7 split25 seed0: SystemLoadError" in _flat(both.output)
    assert [r.key.system for r in ResultsStore(home).iter_records()] == ["tiny"]  # the later system still ran


# --- 3. a header-only split or test file is a problem --------------------------------------------


@pytest.mark.parametrize("name", [TEST_FILE, "split5.csv"])
def test_a_header_only_listing_is_reported_by_check_and_refused_by_the_reader(tau: TauFixture, tmp_path: Path, name: str) -> None:
    copy = clone_fixture(tau, tmp_path / "copy")
    (copy.root / SPLIT_DIR / name).write_text("\t".join(SPLIT_HEADER) + "\n")
    expected = f"{SPLIT_DIR}/{name}: no clips listed (header only)"
    assert [str(p) for p in check_dataset(copy.root, progress=False, audio=False).problems] == [expected]
    result = runner.invoke(app, ["data", "check", str(copy.root), "--no-audio"])
    assert result.exit_code == 1 and expected in result.output, result.output
    with pytest.raises(DataError, match=r"no clips listed \(header only\)"):
        load_dataset(copy.root)


# --- 4. data probe --------------------------------------------------------------------------------


def test_data_probe_reports_a_broken_data_set_without_a_traceback(tau: TauFixture, tmp_path: Path) -> None:
    copy = clone_fixture(tau, tmp_path / "copy")
    with (copy.root / "meta.csv").open("a") as file:
        file.write("just-one-field\n")
    result = runner.invoke(app, ["data", "probe", str(copy.root)])
    _no_traceback(result)
    assert result.exit_code == 2 and "error: meta.csv:" in result.output and "expected 4 tab-separated fields" in _flat(result.output)

    gone = clone_fixture(tau, tmp_path / "gone")
    (gone.root / gone.test[0]).unlink()
    result = runner.invoke(app, ["data", "probe", str(gone.root)])
    _no_traceback(result)
    assert result.exit_code == 2 and gone.test[0].split("/")[-1] in _flat(result.output), result.output


# --- 5, 6. the registry -------------------------------------------------------------------------


def test_a_frontend_that_is_not_a_frontend_is_a_plugin_problem(tmp_path: Path) -> None:
    body = TINY.format(name="stringy", classes=10).replace('@register_system("stringy")', '@register_system("stringy", frontend="kaldi-fbank")')
    subs = _folder(tmp_path, "subs", {"stringy.py": body, "tiny.py": TINY.format(name="tiny", classes=10)})
    registry = discover(subs, entry_points=False)
    assert registry.names() == ["tiny"]
    (problem,) = registry.problems
    assert "failed to import: TypeError: register_system('stringy'): frontend must be a Frontend instance" in str(problem)
    result = runner.invoke(app, ["systems", "--submissions", str(subs), "--no-complexity"])
    _no_traceback(result)
    assert result.exit_code == 0 and "frontend must be a Frontend instance" in _flat(result.output)


def test_a_submissions_folder_that_is_not_there_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    for args in (["systems", "--no-complexity"], ["run", "--models", "cp-mobile", "--home", str(tmp_path / "home")], ["export", "dcase", "--system", "cp-mobile", "--out", str(tmp_path / "pkg")],
                 ["profile", "cp-mobile"]):  # fmt: skip
        result = runner.invoke(app, [*args, "--submissions", str(missing)])
        _no_traceback(result)
        assert result.exit_code == 2 and f"--submissions {missing}: no such directory" in _flat(result.output), (args, result.output)
    a_file = tmp_path / "file.py"
    a_file.write_text("")
    monkeypatch.setenv("ASCBENCH_SUBMISSIONS", str(a_file))
    result = runner.invoke(app, ["systems", "--no-complexity"])
    assert result.exit_code == 2 and f"$ASCBENCH_SUBMISSIONS {a_file}: is not a directory" in _flat(result.output), result.output


def test_a_submission_that_registers_nothing_is_a_plugin_problem(tmp_path: Path) -> None:
    subs = _folder(tmp_path, "subs", {"helper.py": "X = 1\n", "tiny.py": TINY.format(name="tiny", classes=10)})
    registry = discover(subs, entry_points=False)
    assert registry.names() == ["tiny"]
    assert [p.message.split(" (")[0] for p in registry.problems] == ["registers no system"]
    assert registry.problems[0].origin.endswith("helper.py")


# --- 7. --submissions help ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["systems"], ["ablation"], ["predict"], ["export", "dcase"], ["profile"]])
def test_submissions_help_says_it_replaces_the_defaults(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    text = _flat(result.output)
    assert "Extra folder" not in text
    assert "instead of the default folders" in text and "always loaded" in text


# --- 8, 9. option checks before any data is touched -----------------------------------------------


@pytest.mark.parametrize(
    "option, message",
    [
        (["--fraction", ""], "--fraction '': give at least one of"),
        (["--fraction", ","], "--fraction ',': give at least one of"),
        (["--fraction", "1%"], "invalid fraction '1%'"),
        (["--profile", "fast"], "--profile 'fast': unknown training profile; choose from smoke, quick, dcase"),
        (["--device", "gpu"], "--device 'gpu': choose from auto, cpu, cuda"),
        (["--seeds=0,-1"], "--seeds '0,-1': expected comma-separated non-negative integers"),
    ],
)
def test_bad_run_options_are_refused_before_the_data(tmp_path: Path, option: list[str], message: str) -> None:
    # --models nope and a missing --data would be the errors if the option slipped through
    result = runner.invoke(app, ["run", *option, "--models", "nope", "--data", str(tmp_path / "no-data"), "--home", str(tmp_path)])
    _no_traceback(result)
    assert result.exit_code == 2 and message in _flat(result.output), result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_device_cuda_without_cuda_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--device", "cuda", "--models", "cp-mobile", "--data", str(tmp_path / "no-data"), "--home", str(tmp_path)])
    assert result.exit_code == 2 and "--device cuda: no CUDA device is available" in _flat(result.output), result.output
    ablation = runner.invoke(app, ["ablation", "cp-mobile", "--profile", "fast", "--data", str(tmp_path / "no-data"), "--home", str(tmp_path)])
    assert ablation.exit_code == 2 and "--profile 'fast': unknown training profile" in _flat(ablation.output), ablation.output


def test_ctrl_c_while_the_data_set_is_generated_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ascbench.data import resolve

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(resolve, "resolve_data", interrupted)
    for command in (["run", "--models", "cp-mobile"], ["ablation", "hubert-mobilenetv2"]):
        result = runner.invoke(app, [*command, "--profile", "smoke", "--home", str(tmp_path)])
        assert result.exit_code == 130 and "interrupted: the data set was not written" in _flat(result.output), result.output


def test_repeated_seeds_fractions_and_models_run_once() -> None:
    # each repeat would train into the same record, and the summary's board refused a second
    # record of one seed with a traceback
    from ascbench.cli.run import parse_fractions, parse_seeds

    assert parse_seeds("1,0,1,0") == [1, 0]
    assert parse_fractions("25,0.25,5%,0.05") == [0.25, 0.05]
    registry = discover()
    assert [s.name for s in registry.select("mobilenetv2, cp-mobile,mobilenetv2")] == ["mobilenetv2", "cp-mobile"]


def test_percent_fractions_are_always_percent() -> None:
    assert [parse_fraction(v) for v in ("5%", "25%", "100%", "25", "0.25")] == [0.05, 0.25, 1.0, 0.25, 0.25]
    for bad in ("1%", "0.5%", "%"):
        with pytest.raises(ValueError, match="invalid fraction"):
            parse_fraction(bad)


# --- 10. the Ray executor -------------------------------------------------------------------------


def test_ray_executor_gets_progress_and_console_and_skips_ray_when_all_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from ascbench.runner import grid, ray_executor

    seen: dict = {}
    monkeypatch.setattr(ray_executor, "run_with_ray", lambda requests, **kwargs: seen.update(kwargs) or [])
    console = Console()
    grid.run_grid([], executor="ray", progress=False, console=console)
    assert seen["progress"] is False and seen["console"] is console
    monkeypatch.undo()

    class NoRay:
        def is_initialized(self) -> bool:
            return False

        def init(self, **kwargs) -> None:
            raise AssertionError("Ray was started although every run is recorded")

    request = RunRequest(system="cp-mobile", data_root=tmp_path, fraction=0.25, seed=0, home=tmp_path)
    monkeypatch.setattr(ray_executor, "import_ray", lambda: NoRay())
    monkeypatch.setattr(ray_executor, "already_recorded", lambda requests: {0: RunOutcome(requests[0], None, None, skipped=True)})
    (outcome,) = ray_executor.run_with_ray([request], progress=False, console=Console(file=open(tmp_path / "log", "w")))
    assert outcome.skipped


# --- 11. predict --out ----------------------------------------------------------------------------


def test_predict_to_an_unwritable_path_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ascbench.systems.checkpoint import save_trained_model

    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))
    spec = discover(tmp_path).get("cp-mobile")
    model_file = save_trained_model(spec.build_model(), spec, tmp_path / "model.pt", meta={})
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(2):
        sf.write(audio / f"{i}.wav", np.zeros(44_100, dtype=np.float32), 44_100)
    common = ["predict", "--system", "cp-mobile", "--checkpoint", str(model_file), "--audio", str(audio), "--no-progress", "--device", "cpu"]
    result = runner.invoke(app, [*common, "--out", str(tmp_path)])
    _no_traceback(result)
    assert result.exit_code == 2 and f"--out {tmp_path}: is a directory" in _flat(result.output), result.output
    under_a_file = model_file / "output.csv"
    result = runner.invoke(app, [*common, "--out", str(under_a_file)])
    _no_traceback(result)
    assert result.exit_code == 2 and f"--out {under_a_file}: cannot write the output file" in _flat(result.output), result.output
