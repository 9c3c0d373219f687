"""hubert-mobilenetv2 [H_M] through `ascbench run`, end to end on the tiny synthetic set at the smoke
profile: a HuBERT teacher pre-trained and fine-tuned by the harness, cached and reused by the next
student, the int8 student on the leaderboard; the same teacher whether its pre-training ran in the
process or came from disk; students that also distil on the unlabeled pool (``--pool-kd``); and a
local HF-format HuBERT folder recorded as runs of its own.

(The BEATs side, with the refused ``--teacher-*`` mistakes, is ``test_distill_run_beats.py``.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ascbench.cli.main import app
from ascbench.runner.grid import build_requests
from ascbench.systems.registry import discover
from ascbench.distill.teachers.hubert import build_hubert, hubert_config, save_hubert
from distill_cli import STUDENT_PARAMS, check_first_distilled_record, flat, records, run_cli, runner, stage_outputs


@pytest.fixture(scope="module")
def home(tiny_synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hubert-mobilenetv2 trained once, from a self-supervised teacher the harness pre-trains."""
    home = tmp_path_factory.mktemp("hubert-home")
    run_cli(home, tiny_synth_root, "--models", "hubert-mobilenetv2")
    return home


@pytest.fixture(scope="module")
def hubert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's local HuBERT: a tiny HF-format folder (config.json + safetensors)."""
    tiny = hubert_config("small", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)  # fmt: skip
    return save_hubert(build_hubert(tiny, seed=1), tmp_path_factory.mktemp("checkpoints") / "my-hubert")


def test_hubert_student_records_its_teacher_routing_and_int8_model(home: Path) -> None:
    record = records(home)["hubert-mobilenetv2"]
    check_first_distilled_record(home, record, "hubert-small")
    assert "stage1_align_s" in record["timings"]  # the paper's first stage: front-end alignment
    routing = record["notes"]["routing"]
    assert len(routing["taps"]) == len(routing["layers"]) >= 2
    assert all(len(set(layers)) == 3 for layers in routing["layers"])  # top-3 of HuBERT-small's 4 layers
    # the teacher pre-trained on tiny split25's 370 unlabeled pool clips: not a DCASE-legal system
    assert record["notes"]["teacher_pretraining_audio"] == "pool"
    result = runner.invoke(app, ["leaderboard", "--home", str(home), "--format", "md"])
    assert "| FAIL: audio outside the split (teacher pre-training) |" in result.output, result.output


def test_a_teacher_fine_tuned_after_a_cached_pretraining_is_the_same_teacher(home: Path, tiny_synth_root: Path, tmp_path: Path) -> None:
    """In ``home`` the pre-training ran in the process that fine-tuned; here it is read from disk.
    The fine-tuned teacher, and so the student, must not depend on which (no leftover RNG state)."""
    other = tmp_path / "home"
    for stage in (home / "teachers").glob("hubert-small-pretrain-*"):
        if stage.is_dir():
            shutil.copytree(stage, other / "teachers" / stage.name)
    run_cli(other, tiny_synth_root, "--models", "hubert-mobilenetv2")
    first, again = records(home)["hubert-mobilenetv2"], records(other)["hubert-mobilenetv2"]
    assert again["notes"]["teacher_reused"] == {"pretrain": True, "finetune": False}
    stage = first["notes"]["teacher_stage"]
    assert again["notes"]["teacher_stage"] == stage
    weights = [torch.load(h / "teachers" / stage / "weights.pt", weights_only=True) for h in (home, other)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert again["metrics"] == first["metrics"]


def test_a_student_of_a_cached_teacher_is_the_student_of_a_teacher_built_in_the_process(home: Path, tiny_synth_root: Path,
                                                                                         tmp_path: Path) -> None:  # fmt: skip
    """In ``home`` both teacher stages were built before the student; here both come from disk.
    Building them draws random numbers: the student's training-only modules (W_p, the stage
    heads) must start from the same weights either way, or a result depends on the cache."""
    other = tmp_path / "home"
    shutil.copytree(home / "teachers", other / "teachers", ignore=shutil.ignore_patterns("work"))
    run_cli(other, tiny_synth_root, "--models", "hubert-mobilenetv2")
    first, again = records(home)["hubert-mobilenetv2"], records(other)["hubert-mobilenetv2"]
    assert first["notes"]["teacher_reused"] == {"pretrain": False, "finetune": False}
    assert again["notes"]["teacher_reused"] == {"pretrain": True, "finetune": True}
    assert again["metrics"] == first["metrics"]


def test_a_teacher_in_the_other_precision_is_cached_apart(home: Path, tiny_synth_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """HuBERT's "auto" precision is bf16 on a CPU with native bf16 and fp32 on others: a home carried to
    the other kind of CPU builds that precision's stages of its own, never reads the first ones."""
    from ascbench.training import precision

    first = records(home)["hubert-mobilenetv2"]
    had_bf16 = precision.cpu_has_native_bf16()
    assert first["notes"]["teacher_precision"] == ("bf16" if had_bf16 else "fp32")
    other = tmp_path / "home"
    shutil.copytree(home / "teachers", other / "teachers", ignore=shutil.ignore_patterns("work"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: not had_bf16)
    run_cli(other, tiny_synth_root, "--models", "hubert-mobilenetv2")
    notes = records(other)["hubert-mobilenetv2"]["notes"]
    assert notes["teacher_precision"] == ("fp32" if had_bf16 else "bf16")
    assert notes["teacher_reused"] == {"pretrain": False, "finetune": False}
    sources = [json.loads((h / "teachers" / n["teacher_stage"] / "manifest.json").read_text())["info"]["source"]
               for h, n in ((home, first["notes"]), (other, notes))]  # fmt: skip
    assert sources[0] != sources[1] and (other / "teachers" / sources[0]).is_dir()  # both pre-trainings side by side
    assert np.isfinite(np.load(stage_outputs(other, records(other)["hubert-mobilenetv2"]) / "logits.npy")).all()


def test_another_student_run_reuses_both_teacher_stages(home: Path, tiny_synth_root: Path) -> None:
    output = run_cli(home, tiny_synth_root, "--models", "hubert-mobilenetv2", "--ablate", "qat")
    assert "reusing the cached pretrain stage" in output and "reusing the cached finetune stage" in output
    ablated, full = records(home)["hubert-mobilenetv2~no-qat"], records(home)["hubert-mobilenetv2"]
    assert ablated["notes"]["teacher_reused"] == {"pretrain": True, "finetune": True}
    assert ablated["notes"]["teacher_stage"] == full["notes"]["teacher_stage"]
    assert ablated["notes"]["ablate"] == ["qat"] and full["notes"]["ablate"] == []
    # smoke's stage 2 is one epoch, too short for the epoch-end hook: QAT must still be on, or
    # ~no-qat would be the full system again
    assert "qat" in full["notes"] and "qat" not in ablated["notes"]


def test_its_weights_evaluated_again_keep_the_audio_they_learnt_from(home: Path, tiny_synth_root: Path) -> None:
    """``--checkpoint`` on H_M's own model.pt: the new record names the training run, and fails the
    DCASE column as that run's record does (its teacher pre-trained on the pool)."""
    trained = records(home)["hubert-mobilenetv2"]
    run_cli(home, tiny_synth_root, "--models", "hubert-mobilenetv2", "--checkpoint", str(home / trained["artifacts"]["model"]))
    loaded = next(r for name, r in records(home).items() if name.startswith("hubert-mobilenetv2@weights-model-"))
    assert loaded["notes"]["trained_by"].endswith("/hubert-mobilenetv2/split25/smoke/seed0")
    assert loaded["notes"]["weights_audio_outside_split"] == ["teacher pre-training"]
    assert loaded["metrics"]["accuracy"] == trained["metrics"]["accuracy"]
    result = runner.invoke(app, ["leaderboard", "--home", str(home), "--format", "md"])
    row = next(line for line in result.output.splitlines() if "@weights-model-" in line)
    assert "| FAIL: audio outside the split (teacher pre-training) |" in row, result.output


def test_without_any_teacher_term_no_teacher_is_built_and_the_run_keeps_to_its_split(tiny_synth_root: Path, tmp_path: Path) -> None:
    """``--ablate front,hier,kd`` (the teacher control) reads nothing from a teacher: none is
    pre-trained or fine-tuned, and the run has not learnt from the unlabeled pool."""
    home = tmp_path / "home"
    output = run_cli(home, tiny_synth_root, "--models", "hubert-mobilenetv2", "--ablate", "front,hier,kd")
    assert "noteacherisprepared" in flat(output)  # rich wraps at the test console's width
    assert not list((home / "teachers").glob("*"))
    record = records(home)["hubert-mobilenetv2~no-front+hier+kd"]
    assert "teacher" not in record["notes"] and "qat" in record["notes"]
    result = runner.invoke(app, ["leaderboard", "--home", str(home), "--format", "md"])
    row = next(line for line in result.output.splitlines() if "no-front+hier+kd" in line)
    assert "| pass |" in row, result.output


def test_pool_kd_distils_on_the_unlabeled_pool_too_and_is_a_run_of_its_own(home: Path, tiny_synth_root: Path) -> None:
    """``--pool-kd 1``: each epoch adds as many unlabeled pool clips as the split has labelled ones,
    the teacher stages are reused (their outputs cover every clip), and the run never replaces
    the DCASE-legal record."""
    plain = records(home)["hubert-mobilenetv2"]
    output = run_cli(home, tiny_synth_root, "--models", "hubert-mobilenetv2", "--pool-kd", "1")
    assert "complete record found" not in output
    pooled = records(home)["hubert-mobilenetv2@pool-kd1"]
    notes = pooled["notes"]
    assert notes["teacher_stage"] == plain["notes"]["teacher_stage"] and notes["teacher_reused"] == {"pretrain": True, "finetune": True}
    assert notes["pool_kd"] == {"ratio": 1.0, "pool_clips": 370, "per_epoch": 130}  # tiny split25: 130 labelled, 370 pool
    assert pooled["options"]["pool_kd"] == 1.0 and plain["options"]["pool_kd"] == 0.0
    assert pooled["complexity"]["params"] == STUDENT_PARAMS
    assert records(home)["hubert-mobilenetv2"] == plain


def test_a_local_hubert_folder_gives_runs_and_an_ablation_table_of_its_own(home: Path, tiny_synth_root: Path, hubert_folder: Path) -> None:
    before = records(home)["hubert-mobilenetv2"]
    result = runner.invoke(app, ["ablation", "hubert-mobilenetv2", "--components", "qat", "--no-all-off", "--data", str(tiny_synth_root),
                                 "--profile", "smoke", "--home", str(home), "--no-progress", "--teacher-checkpoint", str(hubert_folder)])  # fmt: skip
    assert result.exit_code == 0, result.output
    after = records(home)
    assert after["hubert-mobilenetv2"] == before  # the self-supervised teacher's record is untouched
    (full,) = [n for n in after if n.startswith("hubert-mobilenetv2@teacher-my-hubert-")]
    assert full.replace("@", "~no-qat@") in after  # the ablated row is on the same teacher
    assert flat(f"--systems 'hubert-mobilenetv2*@{full.partition('@')[2]}'") in flat(result.output)
    record = after[full]
    assert record["notes"]["teacher"] == "hubert-checkpoint" and "teacher_pretrain_s" not in record["timings"]
    assert record["notes"]["teacher_pretraining_audio"] == "checkpoint"
    recorded_teacher = record["provenance"]["config"]["recipe_config"]["teacher"]  # not the harness's HuBERT-small
    assert recorded_teacher["size"] == "checkpoint" and recorded_teacher["pretrain"] is None
    assert before["provenance"]["config"]["recipe_config"]["teacher"]["size"] == "small"
    assert record["options"]["teacher"] == f"checkpoint:{hubert_folder}"
    # the teacher that was fine-tuned is the checkpoint's: its conv features are 16 wide, not 64
    assert np.load(stage_outputs(home, record) / "cnn_features.npy", mmap_mode="r").shape[-1] == 16
    assert record["complexity"]["params"] == STUDENT_PARAMS


def test_teacher_options_go_only_to_the_systems_whose_recipe_takes_them(tiny_synth_root: Path, hubert_folder: Path) -> None:
    """``--teacher-seed`` and ``--pool-kd`` are options of the distilled recipes only: the supervised
    system beside them trains as usual; a run's name is derived from its options."""
    from ascbench.cli.run import resolve_options
    from ascbench.recipes.options import RunOptions

    registry = discover()
    specs = [registry.get(name) for name in ("cp-mobile", "hubert-mobilenetv2")]

    def requests(chosen: list, settings: dict[str, str], seed: int):
        options = resolve_options(chosen, settings, "smoke", [0.25], registry)
        return build_requests(chosen, tiny_synth_root, [0.25], [seed], options=options, registry=registry)

    (distilled,) = requests(specs[1:], {"teacher": f"checkpoint:{hubert_folder}"}, 0)
    assert distilled.options.teacher == f"checkpoint:{hubert_folder}" and distilled.recorded_system.startswith("hubert-mobilenetv2@teacher-my-hubert-")
    plain, distilled = requests(specs, {"teacher_seed": "1"}, 3)
    assert (plain.recorded_system, plain.shared_stage_key()) == ("cp-mobile", None)
    assert distilled.recorded_system == "hubert-mobilenetv2@teacher-seed1" and distilled.effective_teacher_seed == 1
    (default,) = build_requests(specs[1:], tiny_synth_root, [0.25], [3])
    assert default.recorded_system == "hubert-mobilenetv2" and default.effective_teacher_seed == 3
    assert default.shared_stage_key() != distilled.shared_stage_key()  # different teachers are never shared
    plain, pooled = requests(specs, {"pool_kd": "0.5"}, 3)
    assert plain.recorded_system == "cp-mobile" and plain.options == RunOptions()
    assert pooled.recorded_system == "hubert-mobilenetv2@pool-kd0.5"
    assert pooled.shared_stage_key() == default.shared_stage_key()  # the same teacher serves both students
