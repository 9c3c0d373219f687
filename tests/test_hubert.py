"""HuBERT teacher: pseudo labels aligned with the conv frames, masked-unit pre-training that
learns, save/reload, fine-tuning of the generic TeacherClassifier, and the teacher outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.hubert.modeling_hubert import HubertModel

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import RawWaveform
from ascbench.distill.teachers.base import TeacherClassifier
from ascbench.distill.teachers.finetune import FinetuneConfig, finetune_teacher, teacher_outputs
from ascbench.distill.teachers.hubert import HubertTeacher, build_hubert, hubert_config, load_hubert, save_hubert
from ascbench.distill.teachers.hubert_pretrain import (
    HubertPretrainConfig,
    UnitPredictor,
    fit_units,
    masked_prediction_loss,
    mfcc_frames,
    pretrain_hubert,
    span_mask,
)

TINY = (
    ("hidden_size", 32),
    ("num_hidden_layers", 2),
    ("num_attention_heads", 2),
    ("intermediate_size", 64),
    ("conv_dim", (16,) * 7),
    ("num_conv_pos_embeddings", 8),
    ("num_conv_pos_embedding_groups", 4),
)
FREQS = (200.0, 500.0, 1200.0, 3000.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def tone_clips(n: int, seed: int = 0, samples: int = 16_000) -> tuple[np.ndarray, np.ndarray]:
    """Clips of 4 tone segments each (boundaries on the 20 ms grid) + noise; label = first tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16_000
    clips = np.zeros((n, samples), np.float32)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        edges = np.sort(rng.choice(np.arange(1600, samples - 1600, 320), 3, replace=False))
        for j, segment in enumerate(np.split(np.arange(samples), edges)):
            k = rng.integers(len(FREQS))
            labels[i] = k if j == 0 else labels[i]
            clips[i, segment] = 0.3 * np.sin(2 * np.pi * FREQS[k] * t[segment])
        clips[i] += 0.01 * rng.standard_normal(samples)
    return clips, labels


def waves(array: np.ndarray, tmp_path) -> CachedFeatures:
    names = tuple(f"audio/clip-{i}.wav" for i in range(len(array)))
    return CachedFeatures(frontend=RawWaveform(16_000), path=tmp_path, array=array, filenames=names)


def tiny_model(seed: int = 0) -> HubertModel:
    return build_hubert(hubert_config("small", **dict(TINY)), seed=seed)


def test_mfcc_frames_align_with_conv_frames():
    model = tiny_model()
    x = torch.randn(2, 16_000)
    teacher = HubertTeacher(model).eval()
    out = teacher(x)
    assert mfcc_frames(x).shape == (2, 49, 39)
    assert out.cnn_features.shape == (2, 49, 16)
    assert len(out.hidden_states) == 2 and out.hidden_states[0].shape == (2, 49, 32)
    torch.testing.assert_close(out.pooled, out.hidden_states[-1].mean(1))


def test_units_separate_tones(tmp_path):
    """k-means on MFCC frames gives one unit per tone: frames of one tone share their unit."""
    clips = np.zeros((8, 16_000), np.float32)
    t = np.arange(8000) / 16_000
    for i in range(8):
        clips[i, :8000] = 0.3 * np.sin(2 * np.pi * FREQS[i % 2] * t)
        clips[i, 8000:] = 0.3 * np.sin(2 * np.pi * FREQS[2 + i % 2] * t)
    units, _ = fit_units(mfcc_frames, waves(clips, tmp_path), np.arange(8), 4, 10_000, 0, torch.device("cpu"))
    assert units.shape == (8, 49)
    # frames well inside each half: one unit per (clip parity, half), and 4 distinct units overall
    firsts = {(i % 2, units[i, 5]) for i in range(8)} | {(2 + i % 2, units[i, 40]) for i in range(8)}
    assert len(firsts) == 4 and len({u for _, u in firsts}) == 4


def test_masked_prediction_loss_is_eq8():
    torch.manual_seed(0)
    predictor = UnitPredictor(hidden_size=8, final_dim=4, clusters=3, temperature=0.1)
    outputs, units = torch.randn(2, 5, 8), torch.randint(0, 3, (2, 5))
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1:3] = mask[1, 4] = True
    loss, _ = masked_prediction_loss(predictor, outputs, units, mask)
    a = predictor.proj(outputs[mask])
    cos = torch.nn.functional.cosine_similarity(a[:, None], predictor.units[None], dim=-1)
    expected = -torch.log_softmax(cos / 0.1, dim=-1)[torch.arange(3), units[mask]].mean()
    torch.testing.assert_close(loss, expected)


def test_span_mask_masks_spans():
    np.random.seed(0)
    mask = span_mask(4, 49, HubertPretrainConfig(), torch.device("cpu"))
    assert mask.shape == (4, 49) and mask.dtype == torch.bool
    fraction = mask.float().mean().item()
    assert 0.2 < fraction < 0.95  # spans of 10 from 80 % of the frames, overlapping


def test_pretraining_lowers_masked_loss_and_resumes(tmp_path, monkeypatch):
    clips, _ = tone_clips(48)
    config = HubertPretrainConfig(model_overrides=TINY, clusters=8, epochs=5, batch_size=16, lr=2e-3, final_dim=16)
    model = pretrain_hubert(waves(clips, tmp_path), np.arange(48), config, tmp_path / "work", seed=0, progress=False)
    log = __import__("json").loads((tmp_path / "work" / "pretrain_log.json").read_text())
    losses = [epoch["loss"] for epoch in log[0]["epochs"]]
    assert losses[-1] < losses[0] - 0.2, losses
    assert not model.training
    # a repeated call reuses the finished iteration instead of training again, and keeps its log
    from ascbench.distill.teachers import hubert_pretrain

    def retrain(*args, **kwargs):
        raise AssertionError("a finished iteration was trained again")

    monkeypatch.setattr(hubert_pretrain, "_train_iteration", retrain)
    again = pretrain_hubert(waves(clips, tmp_path), np.arange(48), config, tmp_path / "work", seed=0, progress=False)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert __import__("json").loads((tmp_path / "work" / "pretrain_log.json").read_text()) == log


def test_second_iteration_clusters_layer_features(tmp_path):
    clips, _ = tone_clips(32, seed=1)
    config = HubertPretrainConfig(
        model_overrides=TINY, clusters=6, iterations=2, second_layer=1, second_clusters=5, epochs=1, batch_size=16, final_dim=16
    )
    import io

    from rich.console import Console

    from ascbench.progress import live_display

    shown = io.StringIO()
    with live_display(True, Console(file=shown, force_terminal=True, width=80, color_system=None)):
        pretrain_hubert(waves(clips, tmp_path), np.arange(32), config, tmp_path / "work", seed=0, progress=True)
    assert "HuBERT iteration 2: 5 units" in shown.getvalue()  # printed above `run`'s live region, not past it
    log = __import__("json").loads((tmp_path / "work" / "pretrain_log.json").read_text())
    assert [entry["clusters"] for entry in log] == [6, 5]
    assert (tmp_path / "work" / "iter2" / "config.json").is_file()


def test_save_and_reload_gives_identical_outputs(tmp_path):
    model = tiny_model(seed=3).eval()
    save_hubert(model, tmp_path / "hubert")
    reloaded = load_hubert(tmp_path / "hubert").eval()
    x = torch.randn(2, 16_000)
    a, b = HubertTeacher(model)(x), HubertTeacher(reloaded)(x)
    assert torch.equal(a.cnn_features, b.cnn_features)
    for ha, hb in zip(a.hidden_states, b.hidden_states, strict=True):
        assert torch.equal(ha, hb)


def test_load_hubert_rejects_non_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_hubert(tmp_path)


def _rewrite_weights(folder, change) -> None:
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    save_file(change(load_file(weights)), weights, metadata={"format": "pt"})


def test_load_hubert_refuses_missing_or_misshapen_weights_instead_of_random_ones(tmp_path):
    """from_pretrained alone would leave them at their random initialisation and train on."""
    save_hubert(tiny_model(), tmp_path / "partial")
    _rewrite_weights(tmp_path / "partial", lambda sd: {k: v for k, v in sd.items() if not k.startswith("encoder.layers.1.")})
    with pytest.raises(ValueError, match=r"partial: the weights do not match.*missing weights \(\d+\): encoder\.layers\.1\."):
        load_hubert(tmp_path / "partial")
    save_hubert(tiny_model(), tmp_path / "shape")
    _rewrite_weights(tmp_path / "shape", lambda sd: {**sd, "encoder.layer_norm.weight": torch.ones(7)})
    with pytest.raises(ValueError, match="another shape than config.json says .*encoder.layer_norm.weight"):
        load_hubert(tmp_path / "shape")


def test_load_hubert_refuses_a_truncated_weights_file_and_a_wav2vec2_folder_quietly(tmp_path, capfd):
    save_hubert(tiny_model(), tmp_path / "cut")
    weights = tmp_path / "cut" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50_000])
    with pytest.raises(ValueError, match=r"cut: no loadable HuBERT weights \(SafetensorError"):
        load_hubert(tmp_path / "cut")
    from transformers import Wav2Vec2Config

    Wav2Vec2Config(hidden_size=32, num_hidden_layers=2).save_pretrained(tmp_path / "w2v")
    capfd.readouterr()
    with pytest.raises(ValueError, match="describes a 'wav2vec2' model, expected 'hubert'"):
        load_hubert(tmp_path / "w2v")
    assert "You are using a model of type" not in "".join(capfd.readouterr())  # the refusal alone, no transformers warning


def test_a_ctc_folder_loads_its_encoder_exactly(tmp_path):
    """A fine-tuned HuBERT is saved as HubertForCTC: prefixed keys and an lm_head beside the encoder."""
    model = tiny_model(seed=5).eval()
    save_hubert(model, tmp_path / "ctc")
    _rewrite_weights(tmp_path / "ctc", lambda sd: {**{f"hubert.{k}": v for k, v in sd.items()}, "lm_head.weight": torch.zeros(5, 8)})
    reloaded = load_hubert(tmp_path / "ctc").eval()
    x = torch.randn(1, 16_000)
    assert torch.equal(HubertTeacher(model)(x).hidden_states[-1], HubertTeacher(reloaded)(x).hidden_states[-1])


def test_a_checkpoint_that_normalizes_its_input_gets_normalized_input(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor

    from ascbench.distill.teachers.hubert import hubert_normalizes_input

    save_hubert(tiny_model(), tmp_path / "plain")
    assert not hubert_normalizes_input(tmp_path / "plain")
    save_hubert(tiny_model(), tmp_path / "norm")
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(tmp_path / "norm")
    assert hubert_normalizes_input(tmp_path / "norm")
    model = load_hubert(tmp_path / "norm").eval()
    x = 0.1 * torch.randn(2, 16_000) + 0.05
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "norm")
    prepared = extractor(list(x.numpy()), sampling_rate=16_000, return_tensors="pt").input_values
    assert not torch.allclose(prepared, x)
    ours = HubertTeacher(model, normalize_input=True)(x)
    theirs = HubertTeacher(model)(prepared)  # the feature extractor's own normalisation, then the model
    assert torch.allclose(ours.hidden_states[-1], theirs.hidden_states[-1], atol=1e-5)


def test_finetune_learns_labels_and_outputs_have_shapes(tmp_path):
    clips, labels = tone_clips(64, seed=2)
    features = waves(clips, tmp_path)
    classifier = TeacherClassifier(HubertTeacher(tiny_model()), num_classes=4)
    x = features.batch(np.arange(64))
    before = torch.nn.functional.cross_entropy(classifier.eval()(x)[0], torch.from_numpy(labels)).item()
    history: list[dict] = []
    config = FinetuneConfig(epochs=8, batch_size=16, lr=3e-3, encoder_lr=1e-3, roll_max=0.0)
    finetune_teacher(classifier, features, np.arange(64), labels, config, seed=0, progress=False, history=history)
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(classifier(x)[0], torch.from_numpy(labels)).item()
    assert after < before * 0.7, (before, after, history)
    outputs = teacher_outputs(classifier, features, np.arange(10), batch_size=4)
    assert outputs["logits"].shape == (10, 4) and outputs["logits"].dtype == np.float32
    assert outputs["layer_logits"].shape == (10, 2, 4)
    assert outputs["cnn_features"].shape == (10, 25, 16) and outputs["cnn_features"].dtype == np.float16
    with torch.no_grad():
        np.testing.assert_allclose(outputs["logits"], classifier(x[:10])[0].numpy(), rtol=1e-4, atol=1e-5)


def test_finetuning_does_not_depend_on_numpy_global_state(tmp_path):
    """HubertModel's SpecAugment draws from numpy's global RNG; the same seed must give the same
    teacher whatever ran before it in the process (a cached or an in-process pre-training stage)."""
    clips, labels = tone_clips(32, seed=4)
    features = waves(clips, tmp_path)
    config = FinetuneConfig(epochs=1, batch_size=8, roll_max=0.0)
    weights = []
    for disturb in (1, 2):
        np.random.seed(disturb)  # what an earlier stage leaves behind
        classifier = TeacherClassifier(HubertTeacher(tiny_model(seed=0)), num_classes=4)
        assert classifier.encoder.model.config.mask_time_prob > 0  # the SpecAugment under test is on
        finetune_teacher(classifier, features, np.arange(32), labels, config, seed=0, progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in classifier.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_finetuning_meets_the_step_floor_on_a_small_split(tmp_path):
    clips, labels = tone_clips(32, seed=5)
    features = waves(clips, tmp_path)
    history: list[dict] = []
    config = FinetuneConfig(epochs=1, batch_size=8, roll_max=0.0, min_steps=10)  # 4 steps per epoch
    classifier = TeacherClassifier(HubertTeacher(tiny_model(seed=0)), num_classes=4)
    finetune_teacher(classifier, features, np.arange(32), labels, config, seed=0, progress=False, history=history)
    assert [h["epoch"] for h in history] == [1, 2, 3]
