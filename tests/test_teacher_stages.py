"""Teacher-stage cache: built once and reused, never used when partial or corrupt, atomic on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ascbench.paths import teachers_dir
from ascbench.distill.teachers.base import TeacherClassifier
from ascbench.distill.teachers.hubert import HubertTeacher, build_hubert, hubert_config, load_hubert, save_hubert
from ascbench.distill.teachers.stages import (
    MODEL_DIR,
    TeacherStageKey,
    TeacherStageWarning,
    get_or_build,
    load_outputs,
    load_state,
    read_manifest,
    save_outputs,
    save_state,
    stage_dir,
)

TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8,) * 7,
            num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
KEY = TeacherStageKey(kind="finetune", teacher="hubert-small", config_hash="c0ffee" * 4, data_fingerprint="f1" * 16, seed=1, fraction=0.25)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def outputs_builder(calls: list, value: float = 1.0):
    def build(directory):
        calls.append(directory)
        save_outputs({"logits": np.full((5, 10), value, np.float32), "layer_logits": np.zeros((5, 2, 10), np.float32)}, directory)
        return {"teacher_accuracy": 0.5}

    return build


def test_builds_once_then_reuses():
    calls: list = []
    path, reused = get_or_build(KEY, outputs_builder(calls))
    assert not reused and len(calls) == 1
    assert path == teachers_dir() / KEY.slug() and path.parent.name == "teachers"
    again, reused = get_or_build(KEY, outputs_builder(calls))
    assert reused and again == path and len(calls) == 1
    manifest = read_manifest(path)
    assert manifest["info"] == {"teacher_accuracy": 0.5}
    assert set(manifest["files"]) == {"outputs/logits.npy", "outputs/layer_logits.npy"}
    outputs = load_outputs(path)
    assert outputs["logits"].shape == (5, 10) and float(outputs["logits"][0, 0]) == 1.0


def test_other_key_builds_its_own_stage():
    calls: list = []
    get_or_build(KEY, outputs_builder(calls))
    other = TeacherStageKey(**{**KEY.__dict__, "seed": 2})
    path, reused = get_or_build(other, outputs_builder(calls))
    assert not reused and len(calls) == 2 and path != stage_dir(KEY)


def test_corrupt_stage_is_rebuilt():
    calls: list = []
    path, _ = get_or_build(KEY, outputs_builder(calls, value=1.0))
    data = path / "outputs" / "logits.npy"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF  # same size, one flipped byte
    data.write_bytes(bytes(raw))
    with pytest.warns(TeacherStageWarning, match="corrupt"):
        path2, reused = get_or_build(KEY, outputs_builder(calls, value=2.0))
    assert not reused and len(calls) == 2 and path2 == path
    assert float(load_outputs(path)["logits"][0, 0]) == 2.0


def test_partial_stage_without_manifest_is_not_used():
    directory = stage_dir(KEY)
    directory.mkdir(parents=True)
    (directory / "weights.pt").write_bytes(b"half written")
    calls: list = []
    with pytest.warns(TeacherStageWarning, match="no manifest"):
        path, reused = get_or_build(KEY, outputs_builder(calls))
    assert not reused and len(calls) == 1 and not (path / "weights.pt").exists()


def test_failed_build_publishes_nothing():
    def broken(directory):
        save_outputs({"logits": np.zeros((2, 10), np.float32)}, directory)
        raise RuntimeError("teacher diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        get_or_build(KEY, broken)
    assert not stage_dir(KEY).exists()
    assert not [p for p in teachers_dir().iterdir() if p.is_dir()]  # no temporary directory left


def test_manifest_of_another_key_is_rejected():
    calls: list = []
    path, _ = get_or_build(KEY, outputs_builder(calls))
    manifest = read_manifest(path)
    manifest["key"]["seed"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(TeacherStageWarning, match="manifest key"):
        _, reused = get_or_build(KEY, outputs_builder(calls))
    assert not reused and len(calls) == 2


def test_key_validation_and_slug():
    assert KEY.slug() == "hubert-small-finetune-f1f1f1f1f1f1-c0ffeec0ffee-s1-f025"
    with pytest.raises(ValueError, match="kind"):
        TeacherStageKey(kind="distill", teacher="x", config_hash="a", data_fingerprint="b", seed=0)
    with pytest.raises(ValueError, match="teacher name"):
        TeacherStageKey(kind="pretrain", teacher="../x", config_hash="a", data_fingerprint="b", seed=0)


def test_teacher_stages_round_trip_models():
    """A pretrain stage (HF directory) and a finetune stage (classifier state) reload exactly."""
    torch.manual_seed(0)
    model = build_hubert(hubert_config("small", **TINY), seed=0).eval()
    pretrain = TeacherStageKey(kind="pretrain", teacher="hubert-tiny", config_hash="ab" * 8, data_fingerprint="cd" * 8, seed=0)
    path, _ = get_or_build(pretrain, lambda d: save_hubert(model, d / MODEL_DIR) and None)
    reloaded = load_hubert(path / MODEL_DIR).eval()
    classifier = TeacherClassifier(HubertTeacher(reloaded)).eval()
    path, _ = get_or_build(KEY, lambda d: save_state(classifier, d) and None)
    fresh = TeacherClassifier(HubertTeacher(build_hubert(hubert_config("small", **TINY), seed=5))).eval()
    load_state(fresh, path)
    x = torch.randn(2, 16_000)
    with torch.no_grad():
        a, _, la = classifier(x)
        b, _, lb = fresh(x)
        ref = model(x).last_hidden_state
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert torch.equal(classifier.encoder(x).hidden_states[-1], ref)
