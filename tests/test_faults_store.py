"""Faults of the results store and the run loop: no wrong number shown, nothing finished lost.

Each test reproduces one way a number could be wrong without a word, or finished work lost, and
asserts the harness gives the correct number, a rerun, or one line naming the file.
"""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.leaderboard.build import build_leaderboards
from ascbench.results.store import ResultsStore
from ascbench.runner import execute
from records_factory import make_record

runner = CliRunner()

PLUGIN = """
    from torch import nn
    from ascbench import register_system

    @register_system("mine")
    def mine() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, {channels}, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear({channels}, 10))
"""


def _plugin(folder: Path, channels: int) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "mine.py").write_text(textwrap.dedent(PLUGIN.format(channels=channels)))
    return folder


def _run(home: Path, data: Path, *args: str, code: int = 0):
    result = runner.invoke(app, ["run", "--data", str(data), "--profile", "smoke", "--fraction", "0.25", "--home", str(home),
                                 "--no-progress", "--device", "cpu", *args])  # fmt: skip
    assert result.exit_code == code, result.output
    return result


def test_an_edited_plugin_is_rerun_and_never_averaged_with_its_old_records(tiny_synth_root: Path, tmp_path: Path) -> None:
    home, subs = tmp_path / "home", _plugin(tmp_path / "subs", 4)
    _run(home, tiny_synth_root, "--models", "mine", "--submissions", str(subs), "--seeds", "0")
    old = ResultsStore(home).iter_records().__next__()
    _plugin(subs, 16)  # a different architecture under the same name
    result = _run(home, tiny_synth_root, "--models", "mine", "--submissions", str(subs), "--seeds", "0,1")
    assert "rerun, since the model's architecture or parameter shapes" in " ".join(result.output.split())
    records = list(ResultsStore(home).iter_records())
    assert {r.key.seed for r in records} == {0, 1}
    assert {r.complexity.params for r in records} == {16 * 25 + 16 + 16 * 10 + 10} != {old.complexity.params}
    assert len({r.identity["model"] for r in records}) == 1

    # seeds of two identities (the old record put back beside a new one) are two rows, not one mean
    mixed = [old, *(r for r in records if r.key.seed == 1)]
    [board] = build_leaderboards(mixed)
    assert len(board.table) == 2 and all(name.startswith("mine#") for name in board.table.index)
    assert board.notes and "not averaged" in board.notes[0]


def test_a_record_edited_by_hand_is_reported_and_left_out(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    for system, skill in (("cp-mobile", 0.4), ("mobilenetv2", 0.6)):
        record, predictions = make_record(system, seed=0, skill=skill)
        store.write(record, predictions)
    path = store.record_path(make_record("cp-mobile", seed=0, skill=0.4)[0].key)
    data = json.loads(path.read_text())
    data["metrics"]["accuracy"] = 0.9
    path.write_text(json.dumps(data))
    assert [r.key.system for r in store.iter_records()] == ["mobilenetv2"]
    [invalid] = store.invalid_records()
    assert invalid.path == path and "checksum" in invalid.reason
    # a record from before checksums, edited: its predictions give it away
    data.pop("checksum")
    path.write_text(json.dumps(data))
    [invalid] = store.invalid_records()
    assert "is not what its predictions give" in invalid.reason
    result = runner.invoke(app, ["leaderboard", "--home", str(tmp_path), "--format", "md"])
    assert result.exit_code == 0, result.output
    assert "| cp-mobile" not in result.stdout and "| mobilenetv2" in result.stdout


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_predictions_are_a_warning_and_the_board_is_built_from_the_rest(tmp_path: Path, damage: str) -> None:
    store = ResultsStore(tmp_path)
    for system, skill in (("cp-mobile", 0.4), ("mobilenetv2", 0.6)):
        record, predictions = make_record(system, seed=0, skill=skill)
        store.write(record, predictions)
    victim = next(r for r in store.iter_records() if r.key.system == "cp-mobile")
    npz = store.predictions_path(victim)
    data = bytearray(npz.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    npz.write_bytes(bytes(data))
    fresh = ResultsStore(tmp_path)
    assert not fresh.exists(victim.key)  # `run` repeats it
    assert [r.key.system for r in fresh.iter_records()] == ["mobilenetv2"]
    result = runner.invoke(app, ["leaderboard", "--home", str(tmp_path), "--format", "md"])
    assert result.exit_code == 0, result.output
    assert "| mobilenetv2" in result.stdout and "| cp-mobile" not in result.stdout
    assert npz.name in "".join(result.output.split())


def test_check_fails_when_a_seed_is_lost(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "home")
    for seed in range(3):
        record, predictions = make_record("cp-mobile", seed=seed, skill=0.5)
        store.write(record, predictions)
    reference = tmp_path / "ref"
    assert runner.invoke(app, ["leaderboard", "--home", str(tmp_path / "home"), "--export", "--out", str(reference)]).exit_code == 0
    [ref_json] = reference.glob("*.json")
    assert runner.invoke(app, ["check", "--reference", str(ref_json), "--home", str(tmp_path / "home")]).exit_code == 0
    lost = store.record_path(make_record("cp-mobile", seed=2, skill=0.5)[0].key)
    lost.write_text(lost.read_text()[:100])  # truncated
    result = runner.invoke(app, ["check", "--reference", str(ref_json), "--home", str(tmp_path / "home")])
    flat = "".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "fewer" in flat and "unusable" in flat  # the table's narrow columns wrap the sentences


def test_a_killed_force_run_keeps_the_finished_run(tiny_synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    _run(home, tiny_synth_root, "--models", "cp-mobile", "--seeds", "0")
    store = ResultsStore(home)
    [before] = store.iter_records()
    model, int8 = home / before.artifacts["model"], home / before.artifacts["int8"]
    assert model.is_file() and int8.exists()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "predict_test", killed)
    _run(home, tiny_synth_root, "--models", "cp-mobile", "--seeds", "0", "--force", code=130)
    [after] = ResultsStore(home).iter_records()
    assert after == before and model.is_file() and int8.exists()
    assert sorted(p.name for p in model.parent.parent.iterdir() if p.name.startswith("artifacts-")) == [model.parent.name]


def test_two_identical_runs_at_once_train_once(tiny_synth_root: Path, tmp_path: Path) -> None:
    from ascbench.runner.request import RunRequest

    home = tmp_path / "home"
    request = RunRequest(system="cp-mobile", data_root=tiny_synth_root, fraction=0.25, seed=0, profile="smoke", device="cpu", home=home)
    outcomes: list = []
    lines: list[str] = []

    def one() -> None:
        outcomes.append(execute.execute_run(request, progress=False, log=lines.append))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.skipped for o in outcomes) == [False, True]  # one trained, the other waited and found its record
    assert outcomes[0].record.metrics == outcomes[1].record.metrics
    assert any("waiting" in line for line in lines)
    record = outcomes[0].record
    assert (home / record.artifacts["int8"]).is_file()


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    import os
    import time

    store = ResultsStore(tmp_path)
    record, predictions = make_record("cp-mobile", seed=0, skill=0.5)
    path = store.write(record, predictions)
    leftover = path.parent / f".{path.name}.abc123.tmp"
    leftover.write_text("half a record")
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    store.write(record, predictions)
    assert not leftover.exists()
    assert np.isfinite(store.read(record.key).metrics.accuracy)
