"""hubert-mobilenetv2 [H_M] and beats-mobilenetv2 [BASE_III] through `ascbench run`, end to end on
the tiny synthetic set at the smoke profile: teachers pre-trained and fine-tuned by the harness,
cached and reused by the next student, int8 students on the leaderboard; local teachers in both
real formats (an HF HuBERT folder, an official-format BEATs ``.pt``) recorded as runs of their own;
a teacher drawn per seed unless ``--teacher-seed`` pins one; students that also distil on the
unlabeled pool (``--pool-kd``); and the mistakes a user makes with
``--teacher-checkpoint``, ``--teacher-seed`` or ``--pool-kd`` refused before any training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.results.store import ResultsStore
from ascbench.runner.grid import build_requests
from ascbench.systems.registry import discover
from ascbench.teachers.beats import BEATs, BEATsConfig
from ascbench.teachers.hubert import build_hubert, hubert_config, save_hubert
from shared_fixtures import shared_fixture

runner = CliRunner()
STUDENT_PARAMS = 120_218


def _run(home: Path, data: Path, *args: str, expect: int = 0) -> str:
    result = runner.invoke(app, ["run", "--data", str(data), "--profile", "smoke", "--home", str(home), "--no-progress", *args])
    assert result.exit_code == expect, result.output
    return result.output


def _records(home: Path) -> dict[str, dict]:
    return {r.key.system: r.to_json_dict() for r in ResultsStore(home).iter_records()}


def _stage_outputs(home: Path, record: dict) -> Path:
    return home / "teachers" / record["notes"]["teacher_stage"] / "outputs"


@pytest.fixture(scope="module")
def home(tiny_synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both distilled systems trained once, from self-supervised teachers the harness pre-trains."""
    home = tmp_path_factory.mktemp("distill-home")
    _run(home, tiny_synth_root, "--models", "hubert-mobilenetv2,beats-mobilenetv2")
    return home


@pytest.fixture(scope="module")
def hubert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's local HuBERT: a tiny HF-format folder (config.json + safetensors)."""
    tiny = hubert_config("small", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)  # fmt: skip
    return save_hubert(build_hubert(tiny, seed=1), tmp_path_factory.mktemp("checkpoints") / "my-hubert")


def test_both_distilled_systems_train_and_record_teacher_and_int8_student(home: Path) -> None:
    records = _records(home)
    assert set(records) == {"hubert-mobilenetv2", "beats-mobilenetv2"}
    for name, teacher in (("hubert-mobilenetv2", "hubert-small"), ("beats-mobilenetv2", "beats-small")):
        record = records[name]
        notes, complexity = record["notes"], record["complexity"]
        assert notes["teacher"] == teacher and notes["teacher_reused"] == {"pretrain": False, "finetune": False}
        assert 0.0 <= notes["teacher_test_accuracy"] <= 1.0
        manifest = json.loads((home / "teachers" / notes["teacher_stage"] / "manifest.json").read_text())
        assert manifest["complete"] and manifest["info"]["source"].startswith(f"{teacher}-pretrain-")
        # the deployable student only: training-time heads and projections are not counted
        assert complexity["params"] == STUDENT_PARAMS and complexity["macs"] <= 30_000_000
        assert (home / record["artifacts"]["int8"]).stat().st_size == complexity["int8_artifact_bytes"]
        assert complexity["int8_agreement"] is not None
        assert {"teacher_pretrain_s", "teacher_finetune_s", "stage2_kd_s"} <= set(record["timings"])
    hubert = records["hubert-mobilenetv2"]
    assert "stage1_align_s" in hubert["timings"] and "stage1_align_s" not in records["beats-mobilenetv2"]["timings"]
    routing = hubert["notes"]["routing"]
    assert len(routing["taps"]) == len(routing["layers"]) >= 2
    assert all(len(set(layers)) == 3 for layers in routing["layers"])  # top-3 of HuBERT-small's 4 layers
    # the teacher outputs distillation read cover every clip of the data set
    logits = np.load(_stage_outputs(home, hubert) / "logits.npy", mmap_mode="r")
    assert logits.shape[1] == 10 and np.isfinite(logits).all()


def test_a_teacher_fine_tuned_after_a_cached_pretraining_is_the_same_teacher(home: Path, tiny_synth_root: Path, tmp_path: Path) -> None:
    """In ``home`` the pre-training ran in the process that fine-tuned; here it is read from disk.
    The fine-tuned teacher, and so the student, must not depend on which (no leftover RNG state)."""
    other = tmp_path / "home"
    for stage in (home / "teachers").glob("hubert-small-pretrain-*"):
        if stage.is_dir():
            shutil.copytree(stage, other / "teachers" / stage.name)
    _run(other, tiny_synth_root, "--models", "hubert-mobilenetv2")
    first, again = _records(home)["hubert-mobilenetv2"], _records(other)["hubert-mobilenetv2"]
    assert again["notes"]["teacher_reused"] == {"pretrain": True, "finetune": False}
    stage = first["notes"]["teacher_stage"]
    assert again["notes"]["teacher_stage"] == stage
    weights = [torch.load(h / "teachers" / stage / "weights.pt", weights_only=True) for h in (home, other)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert again["metrics"] == first["metrics"]


def test_another_student_run_reuses_both_teacher_stages(home: Path, tiny_synth_root: Path) -> None:
    output = _run(home, tiny_synth_root, "--models", "hubert-mobilenetv2", "--ablate", "qat")
    assert "reusing the cached pretrain stage" in output and "reusing the cached finetune stage" in output
    records = _records(home)
    ablated, full = records["hubert-mobilenetv2~no-qat"], records["hubert-mobilenetv2"]
    assert ablated["notes"]["teacher_reused"] == {"pretrain": True, "finetune": True}
    assert ablated["notes"]["teacher_stage"] == full["notes"]["teacher_stage"]
    assert ablated["notes"]["ablate"] == ["qat"] and full["notes"]["ablate"] == []


def test_each_seed_draws_its_own_teacher_unless_one_is_pinned(home: Path, tiny_synth_root: Path) -> None:
    """Seed 1 fine-tunes its own teacher from the one pre-training, so a mean over seeds covers the
    teacher's draw; ``--teacher-seed 0`` gives seed 1's student seed 0's teacher, recorded apart."""
    seed0 = _records(home)["beats-mobilenetv2"]
    _run(home, tiny_synth_root, "--models", "beats-mobilenetv2", "--seeds", "1")
    (drawn,) = [r for r in ResultsStore(home).iter_records() if r.key.system == "beats-mobilenetv2" and r.key.seed == 1]
    notes = drawn.to_json_dict()["notes"]
    assert notes["teacher_seed"] == 1 and notes["teacher_reused"] == {"pretrain": True, "finetune": False}
    assert notes["teacher_stage"] != seed0["notes"]["teacher_stage"] and notes["teacher_stage"].endswith("-s1-f025")
    assert drawn.to_json_dict()["provenance"]["config"]["teacher_seed"] == 1

    output = _run(home, tiny_synth_root, "--models", "beats-mobilenetv2", "--seeds", "1", "--teacher-seed", "0")
    assert "complete record found" not in output  # not the seed-1 record above: a run of its own
    pinned = _records(home)["beats-mobilenetv2@teacher-seed0"]
    assert pinned["notes"]["teacher_seed"] == 0 and pinned["notes"]["teacher_stage"] == seed0["notes"]["teacher_stage"]
    assert pinned["notes"]["teacher_reused"] == {"pretrain": True, "finetune": True}


def test_pool_kd_distils_on_the_unlabeled_pool_too_and_is_a_run_of_its_own(home: Path, tiny_synth_root: Path) -> None:
    """``--pool-kd 1``: each epoch adds as many unlabeled pool clips as the split has labelled ones,
    the teacher stages are reused (their outputs cover every clip), and the run never replaces
    the DCASE-legal record."""
    plain = _records(home)["hubert-mobilenetv2"]
    output = _run(home, tiny_synth_root, "--models", "hubert-mobilenetv2", "--pool-kd", "1")
    assert "complete record found" not in output
    pooled = _records(home)["hubert-mobilenetv2@pool-kd1"]
    notes = pooled["notes"]
    assert notes["teacher_stage"] == plain["notes"]["teacher_stage"] and notes["teacher_reused"] == {"pretrain": True, "finetune": True}
    assert notes["pool_kd"] == {"ratio": 1.0, "pool_clips": 370, "per_epoch": 130}  # tiny split25: 130 labelled, 370 pool
    assert pooled["provenance"]["config"]["pool_kd"] == 1.0 and plain["provenance"]["config"]["pool_kd"] == 0.0
    assert pooled["complexity"]["params"] == STUDENT_PARAMS
    assert _records(home)["hubert-mobilenetv2"] == plain


def test_a_local_hubert_folder_gives_runs_and_an_ablation_table_of_its_own(home: Path, tiny_synth_root: Path, hubert_folder: Path) -> None:
    before = _records(home)["hubert-mobilenetv2"]
    result = runner.invoke(app, ["ablation", "hubert-mobilenetv2", "--components", "qat", "--no-all-off", "--data", str(tiny_synth_root),
                                 "--profile", "smoke", "--home", str(home), "--no-progress", "--teacher-checkpoint", str(hubert_folder)])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = _records(home)
    assert records["hubert-mobilenetv2"] == before  # the self-supervised teacher's record is untouched
    (full,) = [n for n in records if n.startswith("hubert-mobilenetv2@teacher-my-hubert-")]
    assert full.replace("@", "~no-qat@") in records  # the ablated row is on the same teacher
    assert f"--systems 'hubert-mobilenetv2*@{full.partition('@')[2]}'" in result.output
    record = records[full]
    assert record["notes"]["teacher"] == "hubert-checkpoint" and "teacher_pretrain_s" not in record["timings"]
    assert record["provenance"]["config"]["teacher_checkpoint"] == str(hubert_folder)
    # the teacher that was fine-tuned is the checkpoint's: its conv features are 16 wide, not 64
    assert np.load(_stage_outputs(home, record) / "cnn_features.npy", mmap_mode="r").shape[-1] == 16
    assert record["complexity"]["params"] == STUDENT_PARAMS


def test_a_local_teacher_goes_only_to_the_systems_that_distil(tiny_synth_root: Path, hubert_folder: Path) -> None:
    registry = discover()
    specs = [registry.get(name) for name in ("cp-mobile", "hubert-mobilenetv2")]
    plain, distilled = build_requests(specs, tiny_synth_root, [0.25], [0], teacher_checkpoint=hubert_folder)
    assert plain.teacher_checkpoint is None and plain.recorded_system == "cp-mobile"
    assert distilled.teacher_checkpoint == hubert_folder and distilled.recorded_system.startswith("hubert-mobilenetv2@teacher-my-hubert-")
    plain, distilled = build_requests(specs, tiny_synth_root, [0.25], [3], teacher_seed=1)
    assert (plain.teacher_seed, plain.recorded_system, plain.shared_stage_key()) == (None, "cp-mobile", None)
    assert distilled.recorded_system == "hubert-mobilenetv2@teacher-seed1" and distilled.effective_teacher_seed == 1
    (default,) = build_requests(specs[1:], tiny_synth_root, [0.25], [3])
    assert default.recorded_system == "hubert-mobilenetv2" and default.effective_teacher_seed == 3
    assert default.shared_stage_key() != distilled.shared_stage_key()  # different teachers are never shared
    plain, pooled = build_requests(specs, tiny_synth_root, [0.25], [3], pool_kd=0.5)
    assert (plain.pool_kd, plain.recorded_system) == (0.0, "cp-mobile")
    assert pooled.recorded_system == "hubert-mobilenetv2@pool-kd0.5"
    assert pooled.shared_stage_key() == default.shared_stage_key()  # the same teacher serves both students


def _official_format_beats(path: Path) -> Path:
    """A BEATs checkpoint as the official code saves it: ``{'cfg': dict, 'model': state_dict}``."""
    torch.manual_seed(0)
    cfg = BEATsConfig.from_dict(dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2, embed_dim=24))
    torch.save(BEATs(cfg).checkpoint(), path)
    return path


def test_a_local_beats_checkpoint_is_a_run_of_its_own(home: Path, tiny_synth_root: Path, tmp_path: Path) -> None:
    """The official implementation's own file when ../shared/fixtures is there (as in CI), else
    one written here in the same format (one run either way: each costs ~20 s)."""
    try:
        checkpoint, width = shared_fixture("beats/tiny_pretrained.pt"), 32
    except pytest.skip.Exception:
        checkpoint, width = _official_format_beats(tmp_path / "beats-tiny.pt"), 24
    _run(home, tiny_synth_root, "--models", "beats-mobilenetv2", "--teacher-checkpoint", str(checkpoint))
    records = _records(home)
    (name,) = [n for n in records if n.startswith(f"beats-mobilenetv2@teacher-{checkpoint.stem}-")]
    record = records[name]
    assert record["notes"]["teacher"] == "beats-checkpoint" and "teacher_pretrain_s" not in record["timings"]
    assert np.load(_stage_outputs(home, record) / "cnn_features.npy", mmap_mode="r").shape[-1] == width


def test_teacher_checkpoint_mistakes_fail_before_training(home: Path, tiny_synth_root: Path, tmp_path: Path) -> None:
    beats = _official_format_beats(tmp_path / "beats.pt")
    (tmp_path / "not-a-model").mkdir()
    cases = [
        (["--models", "hubert-mobilenetv2", "--teacher-checkpoint", str(beats)], "holds a beats teacher; hubert-mobilenetv2 need(s) a hubert one"),
        (["--models", "all", "--teacher-checkpoint", str(beats)], "hubert-mobilenetv2 need(s) a hubert one"),
        (["--models", "cp-mobile", "--teacher-checkpoint", str(beats)], "none of the selected systems distils from a teacher"),
        (["--models", "hubert-mobilenetv2", "--teacher-checkpoint", str(tmp_path / "not-a-model")], "without config.json"),
        (["--models", "beats-mobilenetv2", "--teacher-checkpoint", str(tmp_path / "missing.pt")], "no such file or directory"),
        (["--models", "cp-mobile", "--teacher-seed", "1"], "--teacher-seed 1: none of the selected systems distils from a teacher"),
        (["--models", "beats-mobilenetv2", "--teacher-seed", "-1"], "expected a non-negative integer"),
        (["--models", "cp-mobile", "--pool-kd", "1"], "--pool-kd 1: none of the selected systems distils from a teacher"),
        (["--models", "beats-mobilenetv2", "--pool-kd", "-0.5"], "expected a non-negative number"),
        (["--models", "beats-mobilenetv2", "--pool-kd", "1", "--fraction", "1.0"], "the 100 % split leaves no unlabeled"),
        (["--models", "beats-mobilenetv2", "--pool-kd", "1", "--ablate", "front,hier,kd"], "the pool clips would teach nothing"),
    ]
    before = set(_records(home))
    for args, message in cases:
        output = _run(home, tiny_synth_root, *args, expect=2)
        assert message in " ".join(output.split()), output
    assert set(_records(home)) == before
