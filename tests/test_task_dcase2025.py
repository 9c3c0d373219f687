"""The ``dcase2025`` task end to end on the tiny synthetic set at the smoke profile: the general
model shared with the plain run, one fine-tuned model per training device, routing by device,
per-device complexity, the 2025 rules column and the errors for what the task does not allow."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.evaluation.predictions import ClipPredictions
from ascbench.leaderboard.build import build_leaderboards
from ascbench.leaderboard.render import display_frame
from ascbench.results.store import ResultsStore
from ascbench.runner.device_specific import route
from ascbench.runner.execute import execute_run
from ascbench.runner.request import RunRequest
from ascbench.tasks import DEFAULT_TASK, get_task
from fresh_env import NOTHING_BUT_TORCH, install_in_fresh_environment

runner = CliRunner()
DEVICE_MODELS = ("a", "b", "c", "s1", "s2", "s3")


def _invoke(*args: str):
    return runner.invoke(app, [*args, "--no-progress"] if args[0] == "run" else list(args))


@pytest.fixture(scope="module")
def dcase2025_home(tiny_synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dcase2025") / "home"
    result = _invoke("run", "--task", "dcase2025", "--models", "cp-mobile", "--data", str(tiny_synth_root), "--profile", "smoke",
                     "--home", str(home))  # fmt: skip
    assert result.exit_code == 0, result.output
    return home


def _records(home: Path, task: str | None) -> list:
    return list(ResultsStore(home).iter_records(task=task))


def test_a_dcase2025_run_fine_tunes_a_model_per_device_from_the_plain_run_it_shares(dcase2025_home: Path, tiny_synth_root: Path) -> None:
    [general] = _records(dcase2025_home, DEFAULT_TASK)
    [device] = _records(dcase2025_home, "dcase2025")
    assert device.key.task == "dcase2025" and "/task-dcase2025/" in ResultsStore(dcase2025_home).record_path(device.key).as_posix()
    # the plain run's file is written as before tasks existed; the new task's names its task
    general_json = json.loads(ResultsStore(dcase2025_home).record_path(general.key).read_text())
    assert "task" not in general_json["key"] and "device_specific" not in general_json
    assert json.loads(ResultsStore(dcase2025_home).record_path(device.key).read_text())["key"]["task"] == "dcase2025"

    specific = device.device_specific
    assert specific["general_run"] == general.key.slug() and specific["general_predictions_sha256"] == general.predictions_sha256
    assert specific["devices_with_models"] == list(DEVICE_MODELS)
    for name in DEVICE_MODELS:
        assert (dcase2025_home / device.artifacts[f"model@{name}"]).is_file()
        training = specific["models"][name]["training"]
        assert training["clips"] > 0 and training["steps"] >= 1
    assert specific["general"]["accuracy"] == general.metrics.accuracy
    assert set(specific["groups"]) == {"real", "seen", "unseen", "known", "unknown"}

    # the plain run is the general model: asking for it again trains nothing, nor does the same dcase2025 run
    again = _invoke("run", "--models", "cp-mobile", "--data", str(tiny_synth_root), "--profile", "smoke", "--home", str(dcase2025_home))
    assert again.exit_code == 0 and "cp-mobile split25 seed0: complete record found, skipped" in again.output
    same = _invoke("run", "--task", "dcase2025", "--models", "cp-mobile", "--data", str(tiny_synth_root), "--profile", "smoke",
                   "--home", str(dcase2025_home))  # fmt: skip
    assert same.exit_code == 0 and "cp-mobile split25 seed0 dcase2025: complete record found, skipped" in same.output


def test_clips_of_devices_without_a_model_go_through_the_general_model(dcase2025_home: Path) -> None:
    store = ResultsStore(dcase2025_home)
    [general] = _records(dcase2025_home, DEFAULT_TASK)
    [device] = _records(dcase2025_home, "dcase2025")
    routed, plain = store.load_predictions(device), store.load_predictions(general)
    devices = np.asarray(routed.devices)
    fallback = np.isin(devices, ["s4", "s5", "s6"])
    assert fallback.any() and np.array_equal(np.asarray(routed.scores)[fallback], np.asarray(plain.scores)[fallback])
    own = np.isin(devices, DEVICE_MODELS)
    assert not np.allclose(np.asarray(routed.scores)[own], np.asarray(plain.scores)[own])  # fine-tuned models answer there
    task = get_task("dcase2025")
    assert task.model_for("s4") is None and task.model_for("zz-unknown") is None and task.model_for("s2") == "s2"


def test_route_takes_each_device_models_scores_and_refuses_a_device_the_task_has_no_model_for() -> None:
    names = ("audio/park-lyon-1-0-0-a.wav", "audio/park-lyon-1-0-0-s4.wav", "audio/bus-lyon-2-0-0-b.wav")
    general = ClipPredictions(names, np.array([0, 0, 1]), np.zeros((3, 10)))
    model_a = ClipPredictions(names, np.array([0, 0, 1]), np.ones((3, 10)))
    routed = route(get_task("dcase2025"), general, {"a": model_a})
    assert np.asarray(routed.scores)[:, 0].tolist() == [1.0, 0.0, 0.0]  # a from its model; s4 and b (no model given) general
    with pytest.raises(ValueError, match="no model of its own for device 's4'"):
        route(get_task("dcase2025"), general, {"s4": model_a})


def test_each_device_model_is_measured_and_judged_by_the_largest(dcase2025_home: Path) -> None:
    [device] = _records(dcase2025_home, "dcase2025")
    models = device.device_specific["models"]
    assert set(models) == {"general", *DEVICE_MODELS}
    for name, figures in models.items():
        assert figures["params"] == 61_148 and figures["macs"] > 0, name
        assert figures["int8_artifact_bytes"] and figures["int8_artifact_bytes"] > 0, name
    assert device.complexity.int8_artifact_bytes == max(m["int8_artifact_bytes"] for m in models.values())
    assert all((dcase2025_home / device.artifacts[f"int8@{name}"]).is_file() for name in DEVICE_MODELS)


def test_the_dcase2025_board_shows_general_and_device_models_and_the_rules(dcase2025_home: Path) -> None:
    store = ResultsStore(dcase2025_home)
    [device] = _records(dcase2025_home, "dcase2025")
    [board] = build_leaderboards([device], store, n_resamples=200)
    assert board.title.endswith("task dcase2025")
    row = display_frame(board).iloc[0]
    assert row["DCASE limits"] == "pass" and row["Δ vs general, significant?"].endswith((" yes", " no"))
    assert "→" in row["Real (a–c) % general → device"]
    # a teacher pre-trained on the split's unlabeled pool uses TAU audio outside split25: it fails
    pooled = dataclasses.replace(device, notes={**device.notes, "teacher": "hubert", "teacher_pretraining_audio": "pool"})
    assert display_frame(build_leaderboards([pooled])[0]).iloc[0]["DCASE limits"].startswith("FAIL: audio outside the split")
    # an external teacher passes, marked to be declared
    external = dataclasses.replace(device, options={**device.options, "teacher": "checkpoint:hubert-base"})
    assert display_frame(build_leaderboards([external])[0]).iloc[0]["DCASE limits"] == "pass if declared: teacher checkpoint"

    shown = _invoke("leaderboard", "--task", "dcase2025", "--format", "md", "--home", str(dcase2025_home))
    assert shown.exit_code == 0 and "task dcase2025" in shown.output and "General %" in shown.output
    plain = _invoke("leaderboard", "--format", "md", "--home", str(dcase2025_home))
    assert plain.exit_code == 0 and "task dcase2024" in plain.output and "General %" not in plain.output


def test_a_general_run_redone_makes_its_device_models_a_stale_record(dcase2025_home: Path, tiny_synth_root: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    home = tmp_path / "home"
    shutil.copytree(dcase2025_home, home)
    # the general run redone where it trains to other weights (training is deterministic here, so
    # `--force` would give the same predictions and rightly keep the device models): its record
    # is written anew with the smallest change to its predictions that leaves every metric as it was
    store = ResultsStore(home)
    [general] = _records(home, DEFAULT_TASK)
    predictions = store.load_predictions(general)
    scores = np.array(predictions.scores)
    row = int(np.argmin(scores[0]))
    scores[0, row] -= 1e-3
    store.write(general, dataclasses.replace(predictions, scores=scores))

    def refuse(*args, **kwargs):
        raise RuntimeError("fine-tuning again")

    monkeypatch.setattr("ascbench.runner.device_specific._fine_tune_and_measure", refuse)
    said: list[str] = []
    request = RunRequest("cp-mobile", tiny_synth_root, 0.25, 0, profile="smoke", home=home, task="dcase2025")
    with pytest.raises(RuntimeError, match="fine-tuning again"):
        execute_run(request, progress=False, log=said.append)
    assert any("the general model that the device models were fine-tuned from" in line for line in said), said


def test_what_the_dcase2025_task_does_not_allow_is_refused_before_anything_runs(tiny_synth_root: Path, tmp_path: Path) -> None:
    common = ["--models", "cp-mobile", "--data", str(tiny_synth_root), "--profile", "smoke", "--home", str(tmp_path / "home")]
    fraction = _invoke("run", "--task", "dcase2025", "--fraction", "0.1", *common)
    assert fraction.exit_code == 2 and "--task dcase2025 allows training on split25 only" in fraction.output
    unknown = _invoke("run", "--task", "dcase2023", *common)
    assert unknown.exit_code == 2 and "unknown task 'dcase2023'; choose from dcase2024, dcase2025" in unknown.output
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"")
    checkpoint = _invoke("run", "--task", "dcase2025", "--checkpoint", str(weights), *common)
    assert checkpoint.exit_code == 2 and "fine-tunes a model per device" in checkpoint.output
    assert not (tmp_path / "home" / "records").exists()
    listed = _invoke("tasks")
    assert listed.exit_code == 0 and "dcase2024" in listed.output and "dcase2025" in listed.output and "splits: split25" in listed.output


PREDICT_SCRIPT = NOTHING_BUT_TORCH + """
import importlib, json, sys
request = json.load(open(sys.argv[1]))
api = importlib.import_module(request["module"])
logits, names = api.predict(request["files"], request["devices"], use_cuda=False, batch_size=64)
json.dump({"logits": [t.tolist() for t in logits], "names": list(names)}, open(sys.argv[2], "w"))
"""


@pytest.mark.slow
def test_the_exported_package_installs_and_predicts_what_the_run_recorded(dcase2025_home: Path, tiny_synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "packages"
    exported = _invoke("export", "dcase2025", "-s", "cp-mobile", "--author-lastname", "Doe", "--author-abbreviation", "ASCB", "--index", "2",
                       "--weights", "float32", "--out", str(out), "--home", str(dcase2025_home))  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert "Doe_ASCB_task1_2" in exported.output and "device models: a, b, c, s1, s2, s3" in exported.output
    submission = out / "Doe_ASCB_task1" / "Doe_ASCB_task1" / "submission_2"
    complexity = json.loads((submission / "complexity.json").read_text())
    assert set(complexity["models"]) == {"general", *DEVICE_MODELS}
    assert {m["params"] for m in complexity["models"].values()} == {61_148} and complexity["per_device"]["s5"]["model"] == "general"
    [record] = _records(dcase2025_home, "dcase2025")
    accuracy = json.loads((submission / "test_accuracy.json").read_text())
    assert accuracy["macro_accuracy"] == record.metrics.accuracy and accuracy["dataset"] == "synth-tau22-tiny"
    assert not accuracy["is_tau22_development_set"]
    assert str(dcase2025_home) not in (submission / "provenance.json").read_text()

    python, env = install_in_fresh_environment(out / "Doe_ASCB_task1", tmp_path)
    recorded = ResultsStore(dcase2025_home).load_predictions(record)
    devices = recorded.devices
    devices[0] = "s99"  # an id the task has never seen: the general model
    request = {"module": "Doe_ASCB_task1.Doe_ASCB_task1_2", "files": [str(tiny_synth_root / f) for f in recorded.filenames], "devices": devices}
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "predict.py").write_text(PREDICT_SCRIPT)
    run = subprocess.run([str(python), "-I", "predict.py", "request.json", "out.json"], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    logits = np.array(result["logits"])
    expected = np.asarray(recorded.scores)
    general = np.asarray(ResultsStore(dcase2025_home).load_predictions(next(iter(_records(dcase2025_home, DEFAULT_TASK)))).aligned_to(recorded.filenames).scores)
    assert recorded.devices[0] in DEVICE_MODELS  # so the unknown id changes which model answers
    np.testing.assert_allclose(logits[1:], expected[1:], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits[0], general[0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(expected[0], general[0], atol=1e-3)


def test_export_dcase2025_names_what_is_missing_or_malformed(dcase2025_home: Path, tmp_path: Path) -> None:
    empty = _invoke("export", "dcase2025", "-s", "cp-mobile", "--label", "Doe_ASCB_task1_1", "--out", str(tmp_path), "--home", str(tmp_path / "home"))
    assert empty.exit_code != 0 and "no dcase2025 record of system 'cp-mobile'" in empty.output
    assert "ascbench run --task dcase2025 --models cp-mobile" in empty.output
    common = ["-s", "cp-mobile", "--out", str(tmp_path / "out"), "--home", str(dcase2025_home)]
    lower = _invoke("export", "dcase2025", "--label", "doe_ASCB_task1_1", *common)
    assert lower.exit_code != 0 and "lastname 'doe'" in lower.output and "'Doe'" in lower.output
    seed = _invoke("export", "dcase2025", "--label", "Doe_ASCB_task1_1", "--seed", "7", *common)
    assert seed.exit_code != 0 and "no dcase2025 record of 'cp-mobile' with seed 7 (recorded seeds: [0])" in seed.output
    nameless = _invoke("export", "dcase2025", *common)
    assert nameless.exit_code != 0 and "--author-lastname" in nameless.output
    assert not (tmp_path / "out").exists()
