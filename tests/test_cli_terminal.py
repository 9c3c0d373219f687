"""What a user sees in an 80-column terminal: help without value types on flags, options in
panels, examples, shell completion."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from ascbench.cli.main import app

runner = CliRunner()
WIDTH = 80


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
