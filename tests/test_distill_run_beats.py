"""beats-mobilenetv2 [BASE_III] through `ascbench run`, end to end on the tiny synthetic set at the
smoke profile: a BEATs teacher pre-trained and fine-tuned by the harness and its int8 student on the
leaderboard; a teacher drawn per seed unless ``--teacher-seed`` pins one; a local checkpoint in the
official format recorded as a run of its own; and the mistakes a user makes with
``--teacher-checkpoint``, ``--teacher-seed`` or ``--pool-kd`` refused before any training.

(The HuBERT side is ``test_distill_run.py``: apart, the two homes build on different pytest-xdist
workers.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ascbench.results.store import ResultsStore
from ascbench.distill.teachers.beats import BEATs, BEATsConfig
from distill_cli import check_first_distilled_record, flat, records, run_cli, stage_outputs
from shared_fixtures import shared_fixture


@pytest.fixture(scope="module")
def home(tiny_synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """beats-mobilenetv2 trained once, from a self-supervised teacher the harness pre-trains."""
    home = tmp_path_factory.mktemp("beats-home")
    run_cli(home, tiny_synth_root, "--models", "beats-mobilenetv2")
    return home


def test_beats_student_records_its_teacher_and_int8_model(home: Path) -> None:
    record = records(home)["beats-mobilenetv2"]
    check_first_distilled_record(home, record, "beats-small")
    assert "stage1_align_s" not in record["timings"]  # logit KD only: no front-end alignment stage


def test_each_seed_draws_its_own_teacher_unless_one_is_pinned(home: Path, tiny_synth_root: Path) -> None:
    """Seed 1 fine-tunes its own teacher from the one pre-training, so a mean over seeds covers the
    teacher's draw; ``--teacher-seed 0`` gives seed 1's student seed 0's teacher, recorded apart."""
    seed0 = records(home)["beats-mobilenetv2"]
    output = run_cli(home, tiny_synth_root, "--models", "beats-mobilenetv2", "--seeds", "1")
    assert output.index("reusing the cached pretrain stage") < output.index("fine-tuning on")  # in the order they happen
    (drawn,) = [r for r in ResultsStore(home).iter_records() if r.key.system == "beats-mobilenetv2" and r.key.seed == 1]
    notes = drawn.to_json_dict()["notes"]
    assert notes["teacher_seed"] == 1 and notes["teacher_reused"] == {"pretrain": True, "finetune": False}
    assert notes["teacher_stage"] != seed0["notes"]["teacher_stage"] and notes["teacher_stage"].endswith("-s1-f025")
    assert drawn.to_json_dict()["provenance"]["config"]["teacher_seed"] == 1

    output = run_cli(home, tiny_synth_root, "--models", "beats-mobilenetv2", "--seeds", "1", "--teacher-seed", "0")
    assert "complete record found" not in output  # not the seed-1 record above: a run of its own
    pinned = records(home)["beats-mobilenetv2@teacher-seed0"]
    assert pinned["notes"]["teacher_seed"] == 0 and pinned["notes"]["teacher_stage"] == seed0["notes"]["teacher_stage"]
    assert pinned["notes"]["teacher_reused"] == {"pretrain": True, "finetune": True}


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
    run_cli(home, tiny_synth_root, "--models", "beats-mobilenetv2", "--teacher-checkpoint", str(checkpoint))
    (name,) = [n for n in records(home) if n.startswith(f"beats-mobilenetv2@teacher-{checkpoint.stem}-")]
    record = records(home)[name]
    assert record["notes"]["teacher"] == "beats-checkpoint" and "teacher_pretrain_s" not in record["timings"]
    assert np.load(stage_outputs(home, record) / "cnn_features.npy", mmap_mode="r").shape[-1] == width


def test_teacher_checkpoint_mistakes_fail_before_training(home: Path, tiny_synth_root: Path, tmp_path: Path) -> None:
    beats = _official_format_beats(tmp_path / "beats.pt")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "corrupt.pt").write_bytes(bytes(range(256)) * 8)
    torch.save({"model": torch.load(beats, weights_only=True)["model"]}, tmp_path / "no-cfg.pt")
    (tmp_path / "model.pt").write_bytes(b"trained weights")
    (tmp_path / "notes.pt").write_text("hello\n")
    cases = [
        (["--models", "beats-mobilenetv2", "--teacher-checkpoint", str(tmp_path / "notes.pt")],
         "notes.pt: not a loadable torch checkpoint (not a file torch.save wrote: neither its zip format nor a pickle)"),
        (["--models", "beats-mobilenetv2", "--teacher-checkpoint", str(tmp_path / "corrupt.pt")],
         "corrupt.pt: not a loadable torch checkpoint (not a file of tensors and plain containers only"),
        (["--models", "beats-mobilenetv2", "--teacher-checkpoint", str(tmp_path / "no-cfg.pt")], "expected an official BEATs checkpoint, a dict with 'cfg' and 'model'; found a dict with keys model"),
        (["--models", "beats-mobilenetv2", "--teacher-checkpoint", str(beats), "--checkpoint", str(tmp_path / "model.pt")], "no teacher changes: drop --teacher-checkpoint"),
        (["--models", "hubert-mobilenetv2", "--teacher-checkpoint", str(beats)], "holds a beats teacher, not the hubert teacher of hubert-mobilenetv2"),
        (["--models", "all", "--teacher-checkpoint", str(beats)], "cp-mobile: --teacher checkpoint:"),  # the first system it does not fit
        (["--models", "all", "--teacher-checkpoint", str(beats)], "its recipe has no teacher network to pre-train or load"),
        (["--models", "cp-mobile", "--teacher-checkpoint", str(beats)], "give it a teacher that gives logits (logits:FILE or runs:SYS[,SYS...])"),
        (["--models", "hubert-mobilenetv2", "--teacher-checkpoint", str(tmp_path / "not-a-model")], "without config.json"),
        (["--models", "beats-mobilenetv2", "--teacher-checkpoint", str(tmp_path / "missing.pt")], "no such file or directory"),
        (["--models", "cp-mobile", "--teacher-seed", "1"], "--teacher-seed 1: none of the selected systems' recipes takes the option 'teacher_seed'; it is an option of beats-mobilenetv2, hubert-mobilenetv2"),
        (["--models", "beats-mobilenetv2", "--teacher-seed", "-1"], "expected a non-negative integer"),
        (["--models", "cp-mobile", "--pool-kd", "1"], "none of the selected systems' recipes takes the option 'pool_kd'"),
        (["--models", "beats-mobilenetv2", "--pool-kd", "-0.5"], "expected a non-negative number"),
        (["--models", "beats-mobilenetv2", "--pool-kd", "1", "--fraction", "1.0"], "the 100 % split leaves no unlabeled"),
        (["--models", "beats-mobilenetv2", "--pool-kd", "1", "--ablate", "front,hier,kd"], "the pool clips would teach nothing"),
        (["--models", "beats-mobilenetv2", "--pool-kd", "1", "--ablate", "kd"], "beats-mobilenetv2 without kd keeps no teacher term"),
    ]
    before = set(records(home))
    for args, message in cases:
        output = run_cli(home, tiny_synth_root, *args, expect=2)
        assert flat(message) in flat(output), output
    assert set(records(home)) == before

