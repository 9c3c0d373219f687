"""What the end-to-end distillation tests share: ``ascbench run`` at the smoke profile, and reading
its records and teacher stages back."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.results.store import ResultsStore

runner = CliRunner()
STUDENT_PARAMS = 120_218
"""The deployable MobileNetV2 student; training-time heads and projections are not counted."""


def run_cli(home: Path, data: Path, *args: str, expect: int = 0) -> str:
    result = runner.invoke(app, ["run", "--data", str(data), "--profile", "smoke", "--home", str(home), "--no-progress", *args])
    assert result.exit_code == expect, result.output
    return result.output


def records(home: Path) -> dict[str, dict]:
    return {r.key.system: r.to_json_dict() for r in ResultsStore(home).iter_records()}


def stage_outputs(home: Path, record: dict) -> Path:
    return home / "teachers" / record["notes"]["teacher_stage"] / "outputs"


def flat(text: str) -> str:
    """``text`` without whitespace: rich wraps long lines wherever a temporary path happens to end."""
    return "".join(text.split())
