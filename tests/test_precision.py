"""Precision: what "auto" resolves to for students and teachers on each device, and teachers that
really train and infer under bf16 autocast on the CPU (the path a CPU with AMX takes by default)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ascbench.distill.teachers.base import TeacherClassifier
from ascbench.distill.teachers.finetune import FinetuneConfig, finetune_teacher, teacher_outputs
from ascbench.distill.teachers.hubert import HubertTeacher
from ascbench.distill.teachers.hubert_pretrain import HubertPretrainConfig, UnitPredictor, pretrain_hubert
from ascbench.training import precision
from ascbench.training.config import TrainConfig
from ascbench.training.engine import autocast_dtype
from ascbench.training.precision import precision_tag, resolve_precision
from test_hubert import TINY, tiny_model, tone_clips, waves

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("amx", "avx512_bf16", "native"), [(False, False, False), (True, True, True), (False, True, True), (True, False, True)])
def test_native_bf16_is_amx_or_avx512_bf16(amx: bool, avx512_bf16: bool, native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Sapphire Rapids Xeon has both, a Zen 4/5 EPYC only AVX512-BF16, an AVX2 EPYC neither."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert precision.cpu_has_native_bf16() is native
    assert precision.cpu_bf16_units() == {"AMX": amx, "AVX512-BF16": avx512_bf16}
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert precision.cpu_has_native_bf16() is amx  # an older torch without that probe
    assert precision.cpu_bf16_units() == {"AMX": amx}

    def unreadable() -> bool:
        raise RuntimeError("cpuinfo could not read the CPU")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", unreadable)
    assert precision.cpu_bf16_units() == {"AMX": False} and not precision.cpu_has_native_bf16()


@pytest.mark.parametrize("native", [False, True])
def test_auto_is_bf16_only_for_teachers_on_a_cpu_with_native_bf16(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU, bf16_on_cpu=True) == (torch.bfloat16 if native else None)
    assert resolve_precision("auto", CPU) is None  # students: fp32 on every CPU
    assert autocast_dtype(TrainConfig(), CPU) is None
    assert resolve_precision("off", CPU, bf16_on_cpu=True) is None
    assert resolve_precision("bf16", CPU) == torch.bfloat16 and resolve_precision("fp16", CPU) == torch.float16
    assert [precision_tag(p) for p in (None, torch.bfloat16, torch.float16)] == ["fp32", "bf16", "fp16"]
    with pytest.raises(ValueError, match="amp must be one of auto, off, bf16, fp16, got 'fp8'"):
        resolve_precision("fp8", CPU)  # type: ignore[arg-type]


@pytest.mark.parametrize("native", [False, True])
def test_each_teacher_resolves_its_own_precision(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """HuBERT gains 1.9-2.4x from bf16 on a CPU with native bf16 and takes it; BEATs-small gains
    little and stays fp32."""
    from ascbench.distill.teacher_recipe import teacher_precision
    from baselines.beats_mobilenetv2 import beats_teacher
    from baselines.hubert_mobilenetv2 import hubert_teacher

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert teacher_precision(hubert_teacher("small"), CPU) == (torch.bfloat16 if native else None)
    assert teacher_precision(beats_teacher("small"), CPU) is None


def test_unit_logits_stay_fp32_under_autocast() -> None:
    """At temperature 0.1 the logits span [-10, 10]; bf16 would round them to steps of 0.06."""
    torch.manual_seed(0)
    predictor = UnitPredictor(hidden_size=32, final_dim=16, clusters=8)
    outputs = torch.randn(5, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = predictor(outputs)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, predictor(outputs))


def test_bf16_pretraining_lowers_the_masked_loss(tmp_path) -> None:
    clips, _ = tone_clips(48)
    config = HubertPretrainConfig(model_overrides=TINY, clusters=8, epochs=5, batch_size=16, lr=2e-3, final_dim=16)
    pretrain_hubert(waves(clips, tmp_path), np.arange(48), config, tmp_path / "work", seed=0, progress=False, precision=torch.bfloat16)
    log = __import__("json").loads((tmp_path / "work" / "pretrain_log.json").read_text())
    losses = [epoch["loss"] for epoch in log[0]["epochs"]]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.2, losses


def test_bf16_finetuning_learns_and_its_outputs_match_fp32_inference(tmp_path) -> None:
    clips, labels = tone_clips(64, seed=2)
    features = waves(clips, tmp_path)
    classifier = TeacherClassifier(HubertTeacher(tiny_model()), num_classes=4)
    x, y = features.batch(np.arange(64)), torch.from_numpy(labels)
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(classifier.eval()(x)[0], y).item()
    config = FinetuneConfig(epochs=8, batch_size=16, lr=3e-3, encoder_lr=1e-3, roll_max=0.0)
    finetune_teacher(classifier, features, np.arange(64), labels, config, seed=0, progress=False, precision=torch.bfloat16)
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(classifier(x)[0], y).item()
    assert after < before * 0.7, (before, after)
    in_bf16 = teacher_outputs(classifier, features, np.arange(16), batch_size=8, precision=torch.bfloat16)
    in_fp32 = teacher_outputs(classifier, features, np.arange(16), batch_size=8)
    assert in_bf16["logits"].dtype == np.float32 and in_bf16["cnn_features"].dtype == np.float16
    # the same weights in bf16 and fp32: bf16's rounding compounds over the layers (0.17 on logits
    # of up to 2.4 on average with this tiny model), but the two agree on the class of nearly every clip
    assert np.corrcoef(in_bf16["logits"].ravel(), in_fp32["logits"].ravel())[0, 1] > 0.95
    assert (in_bf16["logits"].argmax(1) == in_fp32["logits"].argmax(1)).mean() >= 0.9
    np.testing.assert_allclose(in_bf16["cnn_features"], in_fp32["cnn_features"], atol=0.05)


def test_the_dcase_profile_trains_in_fp32_on_a_gpu_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The official baseline trains in fp32; `auto` would pick bf16/fp16 autocast on CUDA."""
    from ascbench.recipes.device_finetune import fine_tune_config
    from ascbench.systems import discover
    from ascbench.runner.execute import system_recipe
    from ascbench.training.config import get_profile

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what `auto` would find on a GPU
    cuda = torch.device("cuda")
    assert autocast_dtype(get_profile("quick"), cuda) == torch.bfloat16  # the probe sees a GPU
    assert autocast_dtype(get_profile("dcase"), cuda) is None and autocast_dtype(fine_tune_config("dcase"), cuda) is None
    for spec in discover().systems.values():
        config = system_recipe(spec).config("dcase")
        train = getattr(config, "train", config)
        assert autocast_dtype(train, cuda) is None, spec.name
