"""What a user sees in an 80-column terminal: leaderboard and systems tables that fit without a
number broken across lines, a legend for their short forms, ``--wide`` and the files for every
column; help without value types on flags, options in panels, examples, shell completion."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from ascbench.cli import common
from ascbench.cli.main import app
from ascbench.cli.systems import public_reference
from ascbench.leaderboard.build import build_leaderboards
from ascbench.leaderboard.render import fold_name, rich_table, terminal_frame
from ascbench.results.store import ResultsStore
from records_factory import make_record

runner = CliRunner()
WIDTH = 80
FINGERPRINT = "f621571fd8b0d6a9"
"""Starts with a letter: as rich markup, ``[f621571fd8b0d6a9]`` in a title was taken for a style and vanished."""
ROWS = {  # name: skill, params, MACs, paper label, where the teacher was pre-trained
    "mobilenetv2@epochs40": (0.74, 120_218, 26_896_410, "", None),
    "cp-mobile": (0.72, 61_148, 29_419_156, "BASE_I", None),
    "hubert-mobilenetv2": (0.70, 120_218, 26_896_410, "H_M", "pool"),
    "hubert-mobilenetv2~no-adir+fms+front+hier+qat": (0.66, 120_218, 26_896_410, "H_M", "pool"),
    "hubert-mobilenetv2@weights-model-1a2b3c4d5e6f": (0.64, 120_218, 26_896_410, "H_M", "checkpoint"),
    "efficientnet-b0": (0.40, 4_019_782, 158_103_718, "BASE_II", None),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds of a board like the committed one: long ablation and weights names, a teacher
    pre-trained outside the split, a system over both limits."""
    home = tmp_path_factory.mktemp("terminal") / "home"
    store = ResultsStore(home)
    for name, (skill, params, macs, label, pretraining) in ROWS.items():
        for seed in (0, 1):
            record, predictions = make_record(name, seed=seed, skill=skill, params=params, macs=macs, paper_label=label,
                                              fingerprint=FINGERPRINT)  # fmt: skip
            if pretraining:
                config = {**record.provenance["config"], "teacher_checkpoint": "/models/h" if pretraining == "checkpoint" else None}
                record = dataclasses.replace(record, notes={"teacher": "hubert-small", "teacher_pretraining_audio": pretraining},
                                             provenance={**record.provenance, "config": config})  # fmt: skip
            store.write(record, predictions)
    return home


@pytest.fixture(scope="module")
def board(home: Path):
    store = ResultsStore(home)
    [board] = build_leaderboards(list(store.iter_records()), store, n_resamples=200)
    return board


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's console as in an 80-column terminal (its width is fixed when it is created)."""
    monkeypatch.setattr(common.console, "_width", WIDTH)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_leaderboard_fits_80_columns_without_breaking_a_number(board) -> None:
    """Every cell was folded into 3-character pieces (``120`` / ``,21`` / ``8``) and the verdict
    ran down 14 rows."""
    console = Console(width=WIDTH, record=True)
    console.print(rich_table(board, WIDTH))
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= WIDTH, text
    assert f"[{FINGERPRINT}]" in text
    short, legend = terminal_frame(board)
    for column in ("Accuracy %", "Unseen % (S4–S6)", "MACs (M)", "DCASE limits", "Δ vs best, significant?"):
        for value in short[column]:
            assert value.strip() in text, (column, value, text)
    assert "FAIL out" in text and "FAIL mem,MACs" in text and "pass*" in text
    flat = _flat(text)
    assert "out: the split's audio only (used here: teacher pre-training)" in flat and "pass* passes once" in flat
    assert "* significant" in flat and "ascbench leaderboard --wide shows every column" in flat
    ranked = [line for line in text.splitlines() if re.match(r"\s*\d+\s+\S", line)]  # a row's first line: rank, name
    for name in ROWS:  # a long name folds before its variant marks, never inside a word
        assert any(re.split(r"[~@]", name)[0] in line for line in ranked)
    assert fold_name("hubert-mobilenetv2~no-adir+fms+front+hier+qat", 24).split("\n") == ["hubert-mobilenetv2", "~no-adir+fms+front+hier", "+qat"]
    assert fold_name("beats-mobilenetv2@pool-kd1", 23).split("\n") == ["beats-mobilenetv2", "@pool-kd1"]
    assert fold_name("cp-mobile@pool-kd1", 23) == "cp-mobile@pool-kd1"


def test_wide_and_the_files_keep_every_column_and_the_full_texts(home: Path, terminal: None) -> None:
    wide = runner.invoke(app, ["leaderboard", "--home", str(home), "--resamples", "100", "--wide"])
    assert wide.exit_code == 0, wide.output
    assert max(map(len, wide.output.splitlines())) > WIDTH  # past the edge, not folded
    assert "Int8 file (kB)" in wide.output and "FAIL: audio outside the split (teacher pre-training)" in wide.output
    assert "hubert-mobilenetv2~no-adir+fms+front+hier+qat" in wide.output
    md = runner.invoke(app, ["leaderboard", "--home", str(home), "--resamples", "100", "--format", "md"])
    assert "| Int8 file (kB) |" in md.output and "| FAIL: memory, MACs |" in md.output
    refused = runner.invoke(app, ["leaderboard", "--home", str(home), "--wide", "--format", "md"])
    assert refused.exit_code == 2 and "--wide widens the terminal table" in refused.output


def test_systems_fit_15_lines_of_80_columns_without_internal_paths(terminal: None) -> None:
    result = runner.invoke(app, ["systems"])
    assert result.exit_code == 0, result.output
    lines = result.output.rstrip("\n").splitlines()
    assert len(lines) <= 15 and max(map(len, lines)) <= WIDTH, result.output
    names = ["beats-mobilenetv2", "cp-mobile", "efficientnet-b0", "hubert-mobilenetv2", "mobilenetv2"]
    for name in names:
        assert any(line.startswith(f"{name} ") for line in lines), name
    assert "61,148" in result.output and "29.42" in result.output  # cp-mobile's params and M MACs, whole
    assert "origin" not in result.output and "entry point" not in result.output and "../" not in result.output


def test_systems_as_json_carry_every_field_for_scripts() -> None:
    result = runner.invoke(app, ["systems", "--format", "json", "--no-complexity"])
    assert result.exit_code == 0, result.output
    listed = {row["name"]: row for row in json.loads(result.output)["systems"]}
    assert {"cp-mobile", "hubert-mobilenetv2", "mobilenetv2"} <= set(listed)
    assert set(listed["cp-mobile"]) >= {"family", "paper_label", "frontend", "params", "macs", "reference", "description"}
    assert "../" not in result.output and listed["hubert-mobilenetv2"]["reference"].startswith("seed paper, §3;")


def test_a_reference_loses_paths_beside_the_checkout_only() -> None:
    assert public_reference("seed paper (this benchmark's ../shared/seed-paper.txt), §3; Hsu et al.") == "seed paper, §3; Hsu et al."
    kept = "DCASE 2024 Task 1 baseline (cpjku/dcase2024_task1_baseline)"
    assert public_reference(kept) == kept


def _commands(group: typer.Typer) -> list:
    """Every command of the app's click tree, groups included."""
    found, stack = [], [typer.main.get_command(group)]
    while stack:
        command = stack.pop()
        found.append(command)
        stack.extend(getattr(command, "commands", {}).values())
    return found


def test_help_paragraphs_are_not_broken_by_the_source_s_line_breaks() -> None:
    """A docstring's line breaks came out as ragged lines, in the command list and in --help."""
    for command in _commands(app):
        for paragraph in (command.help or "").split("\n\n"):
            assert "\n" not in paragraph, (command.name, paragraph)


@pytest.mark.parametrize("command", [[], ["run"], ["ablation"], ["leaderboard"], ["check"], ["systems"], ["export", "dcase"]])
def test_flags_show_no_value_type(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0 and "<bool>" not in result.output, result.output


def test_run_help_groups_its_options_and_ends_with_examples() -> None:
    text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": str(WIDTH)}).output
    panels = re.findall(r"╭─ (\w+) ─", text)
    assert panels == ["Options", "Training", "Data", "Execution", "Teachers", "Output"], panels
    assert "Examples" in text and "ascbench run --models cp-mobile --profile smoke" in text
    for command in (["leaderboard"], ["export"]):
        assert "Examples" in runner.invoke(app, [*command, "--help"], env={"COLUMNS": str(WIDTH)}).output


def test_shell_completion_is_on() -> None:
    assert "--install-completion" in runner.invoke(app, ["--help"], env={"COLUMNS": str(WIDTH)}).output
    script = runner.invoke(app, ["--show-completion", "bash"])
    assert script.exit_code == 0 and "_ASCBENCH_COMPLETE" in script.output
    env = {"_ASCBENCH_COMPLETE": "complete_bash", "COMP_WORDS": "ascbench leaderboard --expo", "COMP_CWORD": "2"}
    assert runner.invoke(app, [], env=env, prog_name="ascbench").output.split() == ["--export"]
