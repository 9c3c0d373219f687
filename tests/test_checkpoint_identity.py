"""A user's checkpoint: its identity names runs and keys cached teachers, so two different sets of
weights must never share one, and the same weights must keep theirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ascbench.checkpoints import checkpoint_identity, checkpoint_label, teacher_checkpoint_format
from ascbench.distill.teacher_recipe import load_teacher_checkpoint
from ascbench.distill.teachers.hubert import HubertTeacher, build_hubert, hubert_config, save_hubert

TINY_HUBERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                   num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)  # fmt: skip


def _write(path: Path, data: bytes, mtime_ns: int = 1_700_000_000 * 10**9) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_same_name_size_and_time_but_other_weights_is_another_checkpoint(tmp_path: Path) -> None:
    a = _write(tmp_path / "a" / "model.pt", b"\x01" * 3_000_000)
    b = _write(tmp_path / "b" / "model.pt", b"\x01" * 2_999_999 + b"\x02")  # differs in the last byte only
    c = _write(tmp_path / "c" / "model.pt", b"\x01" * 3_000_000)
    assert checkpoint_label(a) != checkpoint_label(b)
    assert checkpoint_identity(a) == checkpoint_identity(c)  # the same bytes, name and time: the same run


def test_hidden_files_of_a_model_folder_do_not_change_its_identity(tmp_path: Path) -> None:
    folder = tmp_path / "hubert-base"
    _write(folder / "config.json", b"{}")
    _write(folder / "model.safetensors", b"weights")
    before = checkpoint_identity(folder)
    _write(folder / ".git" / "objects" / "pack" / "p.pack", b"after git gc")
    _write(folder / ".cache" / "huggingface" / "download" / "model.safetensors.metadata", b"etag")
    assert checkpoint_identity(folder) == before
    _write(folder / "model.safetensors", b"other weights")
    assert checkpoint_identity(folder) != before


def test_a_file_of_an_hf_folder_is_pointed_at_its_folder(tmp_path: Path) -> None:
    weights = _write(tmp_path / "hubert" / "model.safetensors", b"w")
    _write(tmp_path / "hubert" / "config.json", b"{}")
    with pytest.raises(ValueError, match=r"the folder that holds config.json \(.*hubert\)"):
        teacher_checkpoint_format(weights)
    assert teacher_checkpoint_format(tmp_path / "hubert") == "hubert"


def test_a_local_hubert_teacher_takes_the_input_normalisation_of_its_folder(tmp_path: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    save_hubert(build_hubert(hubert_config("small", **TINY_HUBERT), seed=0), tmp_path / "hubert")
    assert not load_teacher_checkpoint("hubert", tmp_path / "hubert").normalize_input
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(tmp_path / "hubert")
    teacher = load_teacher_checkpoint("hubert", tmp_path / "hubert")
    assert isinstance(teacher, HubertTeacher) and teacher.normalize_input
    assert teacher(torch.randn(1, 16_000)).hidden_states[-1].isfinite().all()
