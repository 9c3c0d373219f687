"""What the end-to-end distillation tests share: ``ascbench run`` at the smoke profile, and reading
its records and teacher stages back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def check_first_distilled_record(home: Path, record: dict, teacher: str) -> None:
    """What every distilled student's first run records: a teacher built here from its own
    pre-training, the deployable int8 student, the stage timings, teacher outputs for every clip."""
    notes, complexity = record["notes"], record["complexity"]
    assert notes["teacher"] == teacher and notes["teacher_reused"] == {"pretrain": False, "finetune": False}
    assert 0.0 <= notes["teacher_test_accuracy"] <= 1.0
    manifest = json.loads((home / "teachers" / notes["teacher_stage"] / "manifest.json").read_text())
    assert manifest["complete"] and manifest["info"]["source"].startswith(f"{teacher}-pretrain-")
    work = home / "teachers" / "work" / manifest["info"]["source"]
    assert not work.exists()  # the finished pre-training's resume checkpoints are not kept beside the stage
    # the deployable student only: training-time heads and projections are not counted
    assert complexity["params"] == STUDENT_PARAMS and complexity["macs"] <= 30_000_000
    assert (home / record["artifacts"]["int8"]).stat().st_size == complexity["int8_artifact_bytes"]
    assert complexity["int8_agreement"] is not None
    assert {"teacher_pretrain_s", "teacher_finetune_s", "stage2_kd_s"} <= set(record["timings"])
    logits = np.load(stage_outputs(home, record) / "logits.npy", mmap_mode="r")
    assert logits.shape[1] == 10 and np.isfinite(logits).all()
