"""Teachers from anywhere (``--teacher logits:FILE`` and ``--teacher runs:SYS``), end to end through
``ascbench run`` at the smoke profile on the tiny synthetic data: the teacher's logits reach the
student, bad teachers are one error line before anything trains, the run's identity follows the
teacher's content, the leaderboard's DCASE column judges each source, and records written before
run options existed still load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ascbench.data.reader import load_dataset, load_split
from ascbench.distill.logits_file import read_teacher_logits, write_teacher_logits
from ascbench.results.store import ResultsStore
from ascbench.runner.execute import prepare_run
from ascbench.runner.request import RunRequest
from distill_cli import STUDENT_PARAMS, records, run_cli, runner
from records_factory import make_record

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ensemble_home(tmp_path_factory: pytest.TempPathFactory, tiny_synth_root: Path) -> tuple[Path, str]:
    """One ``run --models mobilenetv2 --teacher runs:cp-mobile``: the member is trained first."""
    home = tmp_path_factory.mktemp("ensemble-home")
    output = run_cli(home, tiny_synth_root, "--models", "mobilenetv2", "--teacher", "runs:cp-mobile")
    return home, output


def test_an_ensemble_of_runs_is_trained_first_then_distilled_from(ensemble_home: tuple[Path, str], tiny_synth_root: Path) -> None:
    home, output = ensemble_home
    found = records(home)
    assert set(found) == {"cp-mobile", "mobilenetv2@teacher-runs-cp-mobile"}, output
    student, member = found["mobilenetv2@teacher-runs-cp-mobile"], found["cp-mobile"]
    assert student["options"] == {"teacher": "runs:cp-mobile", "ablate": [], "epochs": None}
    assert student["system"]["name"] == "mobilenetv2" and student["complexity"]["params"] == STUDENT_PARAMS
    (noted,) = student["notes"]["teacher_members"]
    assert noted["system"] == "cp-mobile" and noted["record_checksum"] == member["checksum"]
    assert student["identity"]["teacher"] and "stage2_kd_s" in student["timings"]  # the distillation loop trained it
    # the cached ensemble stage holds cp-mobile's logits on the split's training clips, recomputed here
    dataset = load_dataset(tiny_synth_root)
    train = [c.filename for c in load_split(dataset, 0.25).train]
    (stage,) = (p for p in (home / "teachers").glob("runs-cp-mobile-ensemble-*") if p.is_dir())
    from ascbench.features.cache import load_features
    from ascbench.systems.checkpoint import load_trained_model
    from ascbench.systems.registry import discover
    from ascbench.training import predict

    spec = discover().get("cp-mobile")
    features = load_features(dataset, spec.frontend, home=home, progress=False)
    expected = predict(load_trained_model(spec, home / member["artifacts"]["model"]), features, features.rows(train), device="cpu")
    np.testing.assert_allclose(np.load(stage / "logits.npy"), expected, rtol=1e-5, atol=1e-5)


def test_the_same_command_skips_and_a_retrained_member_reruns_the_student(ensemble_home: tuple[Path, str], tiny_synth_root: Path,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    import shutil

    home = tmp_path / "home"
    shutil.copytree(ensemble_home[0], home)
    again = run_cli(home, tiny_synth_root, "--models", "mobilenetv2", "--teacher", "runs:cp-mobile")
    assert "rerun, since" not in again and records(home) == records(ensemble_home[0])
    run_cli(home, tiny_synth_root, "--models", "cp-mobile", "--force", "--seeds", "0")
    output = run_cli(home, tiny_synth_root, "--models", "mobilenetv2", "--teacher", "runs:cp-mobile")
    assert "rerun, since the teacher" in " ".join(output.split())
    student = records(home)["mobilenetv2@teacher-runs-cp-mobile"]
    assert student["notes"]["teacher_members"][0]["record_checksum"] == records(home)["cp-mobile"]["checksum"]


def test_the_seeds_of_one_student_are_one_board_row_though_each_seed_has_its_own_members(
        ensemble_home: tuple[Path, str], tiny_synth_root: Path, tmp_path: Path) -> None:  # fmt: skip
    """A ``runs:`` teacher is the member runs of the student's seed, so its content differs per
    seed; the board must still average the seeds (it split them into one row per seed)."""
    import shutil

    from ascbench.leaderboard.build import build_leaderboards

    home = tmp_path / "home"
    shutil.copytree(ensemble_home[0], home)
    run_cli(home, tiny_synth_root, "--models", "mobilenetv2", "--teacher", "runs:cp-mobile", "--seeds", "0,1")
    students = [r for r in ResultsStore(home).iter_records() if r.key.system == "mobilenetv2@teacher-runs-cp-mobile"]
    assert len(students) == 2 and students[0].identity["teacher"] != students[1].identity["teacher"]
    (board,) = build_leaderboards(list(ResultsStore(home).iter_records()))
    assert board.table.loc["mobilenetv2@teacher-runs-cp-mobile", "seeds"] == 2


def test_a_missing_member_run_is_named_with_the_command_that_trains_it(tiny_synth_root: Path, tmp_path: Path) -> None:
    from ascbench.recipes.options import RunOptions

    request = RunRequest("mobilenetv2", tiny_synth_root, 0.25, 0, profile="smoke", device="cpu", home=tmp_path,
                         options=RunOptions(teacher="runs:cp-mobile"))  # fmt: skip
    with pytest.raises(ValueError, match=r"no current record of cp-mobile \(train it: ascbench run --models cp-mobile --fraction 0.25 --seeds 0"):
        prepare_run(request)


def test_a_logits_file_teacher_end_to_end_and_its_dcase_verdict(ensemble_home: tuple[Path, str], tiny_synth_root: Path, tmp_path: Path) -> None:
    """The file written from recorded runs (``ascbench export teacher-logits``) is read back as the
    teacher; the board says it must be declared, while the ensemble of runs passes as it is."""
    from ascbench.cli.main import app

    home = ensemble_home[0]
    path = tmp_path / "teacher.tsv"
    result = runner.invoke(app, ["export", "teacher-logits", "--teacher", "runs:cp-mobile", "--data", str(tiny_synth_root),
                                 "--fraction", "0.25", "--seed", "0", "--profile", "smoke", "--home", str(home), "--out", str(path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    dataset = load_dataset(tiny_synth_root)
    train = [c.filename for c in load_split(dataset, 0.25).train]
    stage = np.load(next(p for p in (home / "teachers").glob("runs-cp-mobile-ensemble-*") if p.is_dir()) / "logits.npy")
    np.testing.assert_array_equal(read_teacher_logits(path).for_clips(train), stage)

    run_home = tmp_path / "home"
    run_cli(run_home, tiny_synth_root, "--models", "mobilenetv2", "--teacher", f"logits:{path}")
    (name,) = records(run_home)
    student = records(run_home)[name]
    assert name.startswith("mobilenetv2@teacher-logits-teacher-") and student["options"]["teacher"] == f"logits:{path}"
    assert student["notes"]["teacher_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    board = runner.invoke(app, ["leaderboard", "--home", str(run_home), "--format", "md"])
    assert "pass if declared: teacher logits file" in board.output
    board = runner.invoke(app, ["leaderboard", "--home", str(home), "--format", "md"])
    row = next(line for line in board.output.splitlines() if "mobilenetv2@teacher-runs-cp-mobile" in line)
    assert "| pass |" in row


def test_the_teacher_s_test_accuracy_is_its_members_mean_logits_scored(ensemble_home: tuple[Path, str], tiny_synth_root: Path,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    """``--clips test`` scores the ensemble as the student would see it; for one member that is
    exactly the member's recorded accuracy (same weights, same features, same test clips)."""
    from ascbench.cli.main import app

    home = ensemble_home[0]
    result = runner.invoke(app, ["export", "teacher-logits", "--teacher", "runs:cp-mobile", "--clips", "test", "--data", str(tiny_synth_root),
                                 "--profile", "smoke", "--home", str(home), "--out", str(tmp_path / "test.tsv"), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    dataset = load_dataset(tiny_synth_root)
    test = [c.filename for c in load_split(dataset, 0.25).test]
    assert sorted(read_teacher_logits(tmp_path / "test.tsv").filenames) == sorted(test)
    recorded = records(home)["cp-mobile"]["metrics"]["accuracy"]
    assert f"accuracy on the {len(test)} test clips: {recorded:.1%}" in " ".join(result.output.split())


@pytest.mark.parametrize("problem", ["missing clip", "unknown clip", "9 columns", "NaN", "text value", "empty"])
def test_every_bad_logits_file_is_one_line_naming_it_before_training(problem: str, tiny_synth_root: Path, tmp_path: Path) -> None:
    dataset = load_dataset(tiny_synth_root)
    names = [c.filename for c in dataset.clips]
    logits = np.random.default_rng(0).normal(size=(len(names), 10)).astype(np.float32)
    path = tmp_path / "bad.tsv"
    train = [c.filename for c in load_split(dataset, 0.25).train]
    if problem == "missing clip":
        keep = [i for i, n in enumerate(names) if n != train[3]]
        write_teacher_logits(path, [names[i] for i in keep], logits[keep])
    elif problem == "unknown clip":
        write_teacher_logits(path, [*names, "audio/not-a-clip-a.wav"], np.vstack([logits, logits[:1]]))
    else:
        write_teacher_logits(path, names, logits)
        lines = path.read_text().splitlines()
        if problem == "9 columns":
            lines = ["\t".join(line.split("\t")[:10]) for line in lines]
        elif problem == "NaN":
            cells = lines[5].split("\t")
            lines[5] = "\t".join([cells[0], "nan", *cells[2:]])
        elif problem == "text value":
            cells = lines[5].split("\t")
            lines[5] = "\t".join([cells[0], "high", *cells[2:]])
        elif problem == "empty":
            lines = []
        path.write_text("\n".join(lines) + ("\n" if lines else ""))
    home = tmp_path / "home"
    output = run_cli(home, tiny_synth_root, "--models", "mobilenetv2", "--teacher", f"logits:{path}", expect=2)
    error = [line for line in output.splitlines() if line.strip()]
    assert str(path.name) in "".join(output.split()) and len(error) <= 3, output
    assert not list(ResultsStore(home).iter_records()) and not (home / "checkpoints").exists()  # nothing trained


def test_layered_terms_are_refused_for_a_logits_only_teacher_and_h_m_distils_its_logits(ensemble_home: tuple[Path, str],
                                                                                        tiny_synth_root: Path, tmp_path: Path) -> None:  # fmt: skip
    """H_M's front-end and hierarchical terms read the teacher's layers: asked of an ensemble of runs
    they are refused with the remedy; with them off H_M distils the ensemble's logits (and QATs)."""
    home = ensemble_home[0]
    refused = run_cli(home, tiny_synth_root, "--models", "hubert-mobilenetv2", "--teacher", "runs:cp-mobile", expect=2)
    assert "read the teacher's layers" in " ".join(refused.split()) and "--ablate front,hier" in refused
    copy = tmp_path / "home"
    import shutil

    shutil.copytree(home, copy)
    run_cli(copy, tiny_synth_root, "--models", "hubert-mobilenetv2", "--teacher", "runs:cp-mobile", "--ablate", "front,hier")
    record = records(copy)["hubert-mobilenetv2~no-front+hier@teacher-runs-cp-mobile"]
    assert record["notes"]["qat"] and "teacher_pretrain_s" not in record["timings"] and record["notes"]["teacher_members"]


def test_a_record_written_before_run_options_still_loads_and_is_shown(tmp_path: Path) -> None:
    """A record of the previous format (no ``options``; its teacher checkpoint and pool KD in its
    run config; checksummed without options) is intact, shown, and judged from its config."""
    from typer.testing import CliRunner

    from ascbench.cli.main import app

    record, predictions = make_record("hubert-mobilenetv2@teacher-t-1a2b3c4d", profile="quick")
    record.provenance["config"] = {"teacher_checkpoint": "/models/t.pt", "ablate": [], "pool_kd": 0.0}
    store = ResultsStore(tmp_path)
    path = store.write(record, predictions)
    data = json.loads(path.read_text())
    data.pop("options")  # as the previous code wrote it, and checksummed it
    data.pop("checksum")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    data["checksum"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    path.write_text(json.dumps(data))
    (loaded,) = store.iter_records()
    assert loaded.options == {} and not store.invalid_records()
    board = CliRunner().invoke(app, ["leaderboard", "--home", str(tmp_path), "--profile", "quick", "--format", "md"])
    assert board.exit_code == 0 and "hubert-mobilenetv2@teacher-t-1a2b3c4d" in board.output
    assert "pass if declared: teacher checkpoint" in board.output
