"""BEATs: parity with the official implementation (fixtures saved by it), checkpoint loading,
the teacher interface, complexity counts, and first-iteration self-supervised pre-training."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

from ascbench.features.frontends import BaselineMel, KaldiFbank
from shared_fixtures import shared_fixture
from ascbench.distill.teachers.beats import (
    BEATS_BASE,
    BEATS_BASE_RELPOS,
    BEATs,
    BEATsConfig,
    BEATsTeacher,
    PositionalConv,
    beats_macs,
    count_parameters,
    load_beats_checkpoint,
)

ATOL = 1e-5
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582


def _fixture(name: str) -> Path:
    return shared_fixture(f"beats/{name}")


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    with np.load(_fixture("tiny_io.npz")) as data:
        return {key: torch.from_numpy(data[key]) for key in data.files}


def _max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape
    return (actual - expected).abs().max().item()


def official_fbank(wav: torch.Tensor) -> torch.Tensor:
    """The official BEATs preprocessing, as its ``preprocess`` writes it: torchaudio's Kaldi fbank."""
    import torchaudio.compliance.kaldi as kaldi

    fbank = torch.stack([kaldi.fbank(w.unsqueeze(0) * 2**15, num_mel_bins=128, sample_frequency=16_000, frame_length=25, frame_shift=10) for w in wav])
    return (fbank - FBANK_MEAN) / (2 * FBANK_STD)


@pytest.fixture(scope="module")
def drift(io) -> float:
    """How far the official preprocessing itself lands from the fixture's fbank on this CPU.

    0 where torchaudio rounds as it did for the fixture; 1.8e-5 on a two-core Xeon with AVX-512,
    where its FFT rounds differently. Outputs computed from the waveform carry it, so their tolerance adds it
    (twice: measured, the network passes it on at most 1:1); everything else stays at 1e-5.
    """
    error = _max_error(official_fbank(io["wav"]), io["fbank"])
    assert error < 1e-4, "the fixture's fbank is not the official preprocessing of its wav"
    return error


def test_fbank_matches_official_preprocessing(io, drift):
    ours = KaldiFbank().compute(io["wav"], 16_000)
    assert _max_error(ours, official_fbank(io["wav"])) < ATOL  # the official code on the same CPU
    assert _max_error(ours, io["fbank"]) < ATOL + drift
    assert _max_error(KaldiFbank().compute(io["wav_long"], 16_000), official_fbank(io["wav_long"])) < ATOL


@torch.no_grad()
def test_pretrained_checkpoint_reproduces_official_features(io, drift):
    model, cfg = load_beats_checkpoint(_fixture("tiny_pretrained.pt"))
    assert not cfg.finetuned_model and model.predictor is None
    out = model(io["fbank"])
    assert out.features.shape == (2, 48, 64) and out.logits is None
    assert _max_error(out.features, io["pretrained_features"]) < ATOL
    assert _max_error(model.extract_features(io["wav"]).features, io["pretrained_features"]) < ATOL + 2 * drift


@torch.no_grad()
def test_finetuned_checkpoint_reproduces_official_probs(io):
    model, cfg = load_beats_checkpoint(_fixture("tiny_finetuned.pt"))
    assert cfg.predictor_class == 10
    out = model(io["fbank"])
    assert _max_error(out.probs, io["finetuned_probs"]) < ATOL
    assert _max_error(out.features, io["pretrained_features"]) < ATOL  # same backbone weights


@torch.no_grad()
def test_gated_relative_position_bias_reproduces_official_outputs(io, drift):
    model, cfg = load_beats_checkpoint(_fixture("tiny_relpos_finetuned.pt"))
    assert cfg.relative_position_embedding and cfg.gru_rel_pos and cfg.deep_norm
    out = model(io["fbank"])
    assert _max_error(out.features, io["relpos_features"]) < ATOL
    assert _max_error(out.probs, io["relpos_finetuned_probs"]) < ATOL
    long = model.extract_features(io["wav_long"])  # 96 tokens: distances reach the log buckets
    assert _max_error(long.features, io["relpos_features_long"]) < ATOL + 2 * drift
    assert _max_error(long.probs, io["relpos_finetuned_probs_long"]) < ATOL + 2 * drift


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
    assert "missing keys (1): predictor.bias" in str(error.value)
    assert "unexpected keys (1): encoder.extra.weight" in str(error.value)
    encoder = sorted(k for k in checkpoint["model"] if k.startswith("encoder.layers."))
    torch.save({**checkpoint, "model": {k: v for k, v in checkpoint["model"].items() if k not in encoder}}, path)
    with pytest.raises(ValueError, match=rf"missing keys \({len(encoder) + 1}\): {re.escape(encoder[0])}, .*, \.\.\. \({len(encoder) + 1 - 8} more\)"):
        load_beats_checkpoint(path)  # a base model's key list stays readable (+ 1: predictor.bias, deleted above)
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
    # 48 tokens are 6 time steps x 8 frequency patches, flattened time-major; the front-end
    # features that eq. 15 aligns in time are the 6 time steps, frequency patches averaged
    patches = teacher.model(io["fbank"]).patch_embeddings
    assert patches.shape == (2, 48, 32) and out.cnn_features.shape == (2, 6, 32)
    torch.testing.assert_close(out.cnn_features[:, 1], patches[:, 8:16].mean(dim=1))
    assert [h.shape for h in out.hidden_states] == [(2, 48, 64)] * 2
    assert _max_error(out.hidden_states[-1], io["pretrained_features"]) < ATOL
    assert _max_error(out.pooled, io["pretrained_features"].mean(dim=1)) < ATOL
    torch.testing.assert_close(patches.mean(-1), torch.zeros(2, 48), atol=1e-5, rtol=0)  # after LayerNorm (weights 1, bias 0)


@torch.no_grad()
def test_positional_conv_and_encoder_keep_their_outputs_under_bf16_autocast():
    """BEATs-small's positional conv (96 channels, 16 groups, kernel 128) once came out of bf16
    autocast as noise on a CPU with AMX (torch 2.9.1's bf16 grouped convolution), and a teacher
    fine-tuned that way scored 19.5 % instead of 34 %; the conv now runs in fp32 inside autocast."""
    torch.manual_seed(0)
    conv, x = PositionalConv(96, 128, 16).eval(), torch.randn(8, 96, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = conv(x).float()
    torch.testing.assert_close(mixed, conv(x), atol=1e-5, rtol=1e-5)
    model = BEATs(BEATsConfig.from_dict(dict(encoder_layers=2, encoder_embed_dim=96, encoder_ffn_embed_dim=192,
                                             encoder_attention_heads=4, embed_dim=32, conv_pos=128, conv_pos_groups=16))).eval()  # fmt: skip
    fbank = torch.randn(8, 98, 128)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(fbank).features.float()
    exact = model(fbank).features
    assert (mixed - exact).abs().max() < 0.1 * exact.abs().max()  # bf16 rounding, not noise


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


# -- pre-training (first iteration) ---------------------------------------------------------------

from ascbench.features.cache import load_features  # noqa: E402
from ascbench.data.reader import load_dataset  # noqa: E402
from ascbench.distill.teachers.beats_pretrain import (  # noqa: E402
    CHECKPOINT_FILE,
    PRETRAIN_CONFIGS,
    RESUME_FILE,
    BEATsPretrainConfig,
    RandomProjectionTokenizer,
    build_pretraining,
    describe,
    fbank_patches,
    pretrain_beats,
    random_mask,
)
from tests.tau_fixture import build_tau_fixture  # noqa: E402

TINY_MODEL = replace(PRETRAIN_CONFIGS["small"].model, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                     embed_dim=16, conv_pos=16, conv_pos_groups=4)
TINY = BEATsPretrainConfig(model=TINY_MODEL, codebook_size=32, codebook_dim=8, epochs=3, batch_size=32, lr=3e-3, stats_clips=64)


def _profiles(clips: int, seed: int = 0) -> torch.Tensor:
    """Fbank-like clips whose spectrum is a random smooth profile held over time: masked patches
    are predictable from the unmasked ones in the same frequency band."""
    generator = torch.Generator().manual_seed(seed)
    profile = torch.randn(clips, 1, 8, generator=generator).repeat_interleave(16, dim=-1)
    return profile + 0.1 * torch.randn(clips, 98, 128, generator=generator)


def test_patches_follow_the_patch_embedding_order():
    fbank = torch.randn(2, 98, 128)
    conv = torch.nn.Conv2d(1, 3, kernel_size=16, stride=16, bias=False)
    expected = conv(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
    actual = fbank_patches(fbank, 16) @ conv.weight.reshape(3, 256).T
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_tokenizer_is_deterministic_and_uses_many_codes():
    fbank = _profiles(64)
    tokenizer = RandomProjectionTokenizer(16, codebook_size=32, codebook_dim=8, seed=3)
    tokenizer.fit_statistics(fbank)
    labels = tokenizer(fbank)
    assert labels.shape == (64, 48) and labels.dtype == torch.int64
    assert labels.unique().numel() >= 16
    again = RandomProjectionTokenizer(16, codebook_size=32, codebook_dim=8, seed=3)
    again.fit_statistics(fbank)
    assert torch.equal(again(fbank), labels)


def test_random_mask_masks_the_ratio_per_clip():
    mask = random_mask(5, 48, 0.75, torch.Generator().manual_seed(0))
    assert mask.sum(dim=1).tolist() == [36] * 5
    assert not torch.equal(mask[0], mask[1])


def test_masked_prediction_loss_falls():
    model, tokenizer = build_pretraining(TINY, seed=0)
    fbank = _profiles(32)
    tokenizer.fit_statistics(fbank)
    labels = tokenizer(fbank)
    probe = random_mask(32, 48, 0.75, torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def probe_loss() -> float:
        model.eval()
        with torch.no_grad():
            return model.loss(fbank, labels, probe)[0].item()

    before = probe_loss()
    for _ in range(25):
        model.train()
        loss, _ = model.loss(fbank, labels, random_mask(32, 48, 0.75, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    marginal = torch.bincount(labels.flatten(), minlength=32).float() / labels.numel()
    entropy = -(marginal[marginal > 0] * marginal[marginal > 0].log()).sum().item()
    after = probe_loss()
    assert after < before - 0.5
    assert after < entropy  # better than guessing from label frequencies: it uses the context


class _Interrupted(RuntimeError):
    pass


class _FailingFeatures:
    """A feature cache whose ``batch`` fails after ``calls`` reads, like a run killed mid-epoch; it
    counts the reads, and has the cache's key (the run's identity), so a resumed run matches it."""

    def __init__(self, features, calls: int):
        self.frontend, self.path, self.key, self._features, self._left = features.frontend, features.path, features.key, features, calls
        self.reads = 0

    def batch(self, rows):
        self._left -= 1
        if self._left < 0:
            raise _Interrupted
        self.reads += 1
        return self._features.batch(rows)


@pytest.fixture(scope="module")
def fbank_cache(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    fixture = build_tau_fixture(home / "tau")
    return load_features(load_dataset(fixture.root), KaldiFbank(), home=home, progress=False)


def test_pretrain_writes_an_official_checkpoint_and_resumes_exactly(fbank_cache, tmp_path):
    rows = np.arange(0, len(fbank_cache), 2)  # 60 clips: 2 steps per epoch
    config = replace(TINY, epochs=2)
    encoder = pretrain_beats(fbank_cache, rows, config, tmp_path / "full", seed=5, progress=False)
    loaded, cfg = load_beats_checkpoint(tmp_path / "full" / CHECKPOINT_FILE)
    assert cfg == TINY.model and not (tmp_path / "full" / RESUME_FILE).exists()
    x = fbank_cache.batch(rows[:4])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).features, encoder(x).features, rtol=0, atol=0)
    history = torch.load(tmp_path / "full" / CHECKPOINT_FILE, weights_only=True)["pretrain"]["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["loss"] < history[0]["loss"]

    with pytest.raises(_Interrupted):  # 1 read for the tokenizer statistics, 2 for epoch 1, dies in epoch 2
        pretrain_beats(_FailingFeatures(fbank_cache, 1 + 2 + 1), rows, config, tmp_path / "cut", seed=5, progress=False)
    assert (tmp_path / "cut" / RESUME_FILE).exists() and not (tmp_path / "cut" / CHECKPOINT_FILE).exists()
    counted = _FailingFeatures(fbank_cache, 10**6)
    resumed = pretrain_beats(counted, rows, config, tmp_path / "cut", seed=5, progress=False)
    assert counted.reads == 1 + 2  # the tokenizer statistics, then epoch 2 only: epoch 1 came from the checkpoint
    for (name, a), b in zip(encoder.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_pretrain_rejects_other_features(fbank_cache, tmp_path):
    wrong = _FailingFeatures(fbank_cache, 0)
    wrong.frontend = BaselineMel()
    with pytest.raises(ValueError, match="KaldiFbank"):
        pretrain_beats(wrong, [0], TINY, tmp_path, progress=False)


def test_pretrain_configs_report_size():
    small, base = describe(PRETRAIN_CONFIGS["small"]), describe(PRETRAIN_CONFIGS["base"])
    assert small["params"] < 500_000 and small["macs_per_clip"] < 30_000_000
    assert base["params"] == 90_311_792
