"""BEATs: parity with the official implementation (fixtures saved by it), checkpoint loading,
the teacher interface, complexity counts, and first-iteration self-supervised pre-training."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

from ascbench.features.frontends import KaldiFbank
from ascbench.teachers.beats import (
    BEATS_BASE,
    BEATS_BASE_RELPOS,
    BEATs,
    BEATsConfig,
    BEATsTeacher,
    beats_macs,
    count_parameters,
    load_beats_checkpoint,
)

ATOL = 1e-5


def _fixture(name: str) -> Path:
    env = os.environ.get("ASCBENCH_FIXTURES")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    path = root / "beats" / name
    if not path.is_file():
        pytest.skip(f"BEATs reference fixture {path} not found (set ASCBENCH_FIXTURES to the fixtures folder)")
    return path


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    with np.load(_fixture("tiny_io.npz")) as data:
        return {key: torch.from_numpy(data[key]) for key in data.files}


def _max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape
    return (actual - expected).abs().max().item()


def test_fbank_matches_official_preprocessing(io):
    assert _max_error(KaldiFbank().compute(io["wav"], 16_000), io["fbank"]) < ATOL


@torch.no_grad()
def test_pretrained_checkpoint_reproduces_official_features(io):
    model, cfg = load_beats_checkpoint(_fixture("tiny_pretrained.pt"))
    assert not cfg.finetuned_model and model.predictor is None
    out = model(io["fbank"])
    assert out.features.shape == (2, 48, 64) and out.logits is None
    assert _max_error(out.features, io["pretrained_features"]) < ATOL
    assert _max_error(model.extract_features(io["wav"]).features, io["pretrained_features"]) < ATOL


@torch.no_grad()
def test_finetuned_checkpoint_reproduces_official_probs(io):
    model, cfg = load_beats_checkpoint(_fixture("tiny_finetuned.pt"))
    assert cfg.predictor_class == 10
    out = model(io["fbank"])
    assert _max_error(out.probs, io["finetuned_probs"]) < ATOL
    assert _max_error(out.features, io["pretrained_features"]) < ATOL  # same backbone weights


@torch.no_grad()
def test_gated_relative_position_bias_reproduces_official_outputs(io):
    model, cfg = load_beats_checkpoint(_fixture("tiny_relpos_finetuned.pt"))
    assert cfg.relative_position_embedding and cfg.gru_rel_pos and cfg.deep_norm
    out = model(io["fbank"])
    assert _max_error(out.features, io["relpos_features"]) < ATOL
    assert _max_error(out.probs, io["relpos_finetuned_probs"]) < ATOL
    long = model.extract_features(io["wav_long"])  # 96 tokens: distances reach the log buckets
    assert _max_error(long.features, io["relpos_features_long"]) < ATOL
    assert _max_error(long.probs, io["relpos_finetuned_probs_long"]) < ATOL


@pytest.mark.parametrize("name", ["base_state_dict_shapes.json", "base_relpos_state_dict_shapes.json"])
def test_base_config_builds_the_official_state_dict(name):
    reference = json.loads(_fixture(name).read_text())
    cfg = BEATsConfig.from_dict(reference["cfg"])
    assert cfg == (BEATS_BASE_RELPOS if "relpos" in name else BEATS_BASE)
    with torch.device("meta"):
        model = BEATs(cfg)
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert shapes == reference["state_dict_shapes"]
    assert count_parameters(model) == reference["num_parameters"]


def test_checkpoint_errors_name_the_file_and_keys(tmp_path):
    checkpoint = torch.load(_fixture("tiny_finetuned.pt"), weights_only=True)
    checkpoint["model"]["encoder.extra.weight"] = torch.zeros(3)
    del checkpoint["model"]["predictor.bias"]
    path = tmp_path / "broken.pt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"broken\.pt") as error:
        load_beats_checkpoint(path)
    assert "missing keys (1): ['predictor.bias']" in str(error.value)
    assert "unexpected keys (1): ['encoder.extra.weight']" in str(error.value)
    torch.save({"model": checkpoint["model"]}, path)
    with pytest.raises(ValueError, match="'cfg' and 'model'"):
        load_beats_checkpoint(path)


@torch.no_grad()
def test_saved_checkpoint_round_trips(tmp_path, io):
    model, _ = load_beats_checkpoint(_fixture("tiny_relpos_finetuned.pt"))
    fresh = BEATs(model.cfg).eval()
    assert _max_error(fresh(io["fbank"]).probs, io["relpos_finetuned_probs"]) > 1e-3  # really reloaded below
    torch.save(model.checkpoint(), tmp_path / "copy.pt")
    reloaded, _ = load_beats_checkpoint(tmp_path / "copy.pt")
    assert _max_error(reloaded(io["fbank"]).probs, io["relpos_finetuned_probs"]) < ATOL


@torch.no_grad()
def test_teacher_exposes_patch_embeddings_layers_and_pooled(io):
    teacher = BEATsTeacher.from_checkpoint(_fixture("tiny_finetuned.pt")).eval()
    assert teacher.frontend == KaldiFbank() and teacher.model.predictor is None
    assert (teacher.num_layers, teacher.hidden_size, teacher.cnn_dim) == (2, 64, 32)
    out = teacher(io["fbank"])
    assert out.cnn_features.shape == (2, 48, 32)
    assert [h.shape for h in out.hidden_states] == [(2, 48, 64)] * 2
    assert _max_error(out.hidden_states[-1], io["pretrained_features"]) < ATOL
    assert _max_error(out.pooled, io["pretrained_features"].mean(dim=1)) < ATOL
    torch.testing.assert_close(out.cnn_features.mean(-1), torch.zeros(2, 48), atol=1e-5, rtol=0)  # after LayerNorm (weights 1, bias 0)


def test_teacher_trains_end_to_end():
    teacher = BEATsTeacher.from_config(replace(BEATS_BASE_RELPOS, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                                               encoder_attention_heads=4, embed_dim=16, conv_pos=16, conv_pos_groups=4))
    out = teacher(torch.randn(2, 98, 128))
    out.pooled.pow(2).sum().backward()
    grads = {name: p.grad for name, p in teacher.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["model.encoder.layers.0.self_attn.relative_attention_bias.weight"].abs().sum() > 0


def _sdpa_macs(inputs, outputs) -> int:
    q, k = inputs[0].type().sizes(), inputs[1].type().sizes()
    return 2 * int(np.prod(q)) * k[-2]  # scores (T x T x d) and weighted sum, per batch and head


@pytest.mark.parametrize("cfg", [BEATS_BASE_RELPOS, replace(BEATS_BASE, encoder_layers=2, finetuned_model=True, predictor_class=10)])
def test_mac_count_matches_fvcore(cfg):
    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = BEATs(cfg).eval()

        def forward(self, x):
            out = self.model(x)
            return out.features if out.logits is None else out.logits

    analysis = FlopCountAnalysis(Features(), torch.zeros(1, 98, 128)).set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    counted = {op: n for op, n in analysis.by_operator().items() if op != "layer_norm"}
    assert sum(counted.values()) == beats_macs(cfg)
