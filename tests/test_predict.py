"""``ascbench predict``: a trained system over a folder of real wav files, in the DCASE output format."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ascbench.data.layout import SCENES
from ascbench.export.output import OUTPUT_FIELDS, check_output
from ascbench.export.predict import AudioReadError, list_audio, natural_key, predict_files, prepare_model
from ascbench.systems import discover
from ascbench.systems.checkpoint import CheckpointError, load_trained_model, save_trained_model


@pytest.fixture(scope="module")
def spec():
    return discover(entry_points=True).get("cp-mobile")


@pytest.fixture(scope="module")
def model_file(spec, tmp_path_factory) -> Path:
    torch.manual_seed(3)
    model = spec.build_model()
    with torch.no_grad():  # distinct running statistics, so a load that ignored buffers would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return save_trained_model(model, spec, tmp_path_factory.mktemp("ckpt") / "model.pt", meta={"note": "test"})


def tone(seconds: float, rate: int, freq: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.05, t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """0.wav ... 11.wav: 44.1 kHz 24-bit clips, except 7.wav at 16 kHz and 9.wav at 44.1 kHz float."""
    folder = tmp_path_factory.mktemp("eval") / "audio"
    folder.mkdir()
    for i in range(12):
        rate = 16_000 if i == 7 else 44_100
        subtype = "FLOAT" if i == 9 else "PCM_24"
        sf.write(folder / f"{i}.wav", tone(1.0, rate, 200.0 + 150 * i, i), rate, subtype=subtype)
    return folder


def test_files_are_listed_in_natural_order(audio_dir):
    names = [p.name for p in list_audio(audio_dir)]
    assert names == [f"{i}.wav" for i in range(12)]
    assert [p.name for p in list_audio(audio_dir.parent)] == names  # a data set root with audio/ works too
    assert sorted(["10.wav", "2.wav", "1.wav"], key=natural_key) == ["1.wav", "2.wav", "10.wav"]


def test_predictions_match_a_direct_forward_pass_at_each_files_rate(spec, model_file, audio_dir):
    model = prepare_model(load_trained_model(spec, model_file))
    files = list_audio(audio_dir)
    result = predict_files(model, spec, files, batch_size=5, progress=False)
    assert result.names == tuple(f"{i}.wav" for i in range(12))
    assert result.probabilities.shape == (12, len(SCENES))
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    for index in (0, 7):  # a 44.1 kHz clip and the 16 kHz one, each through the frontend's resampler
        wave, rate = sf.read(files[index], dtype="float32")
        with torch.no_grad():
            features = spec.frontend.compute(torch.from_numpy(wave)[None], rate)
            assert features.shape[1:] == (256, 65)
            expected = torch.softmax(model(features[:, None]), dim=1)[0].numpy()
        np.testing.assert_allclose(result.probabilities[index], expected, rtol=1e-4, atol=1e-6)


def test_float16_weights_are_exactly_half_precision_values(spec, model_file):
    model = prepare_model(load_trained_model(spec, model_file), "float16")
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float32
            assert torch.equal(tensor, tensor.half().float())
    with pytest.raises(ValueError, match="bfloat16"):
        prepare_model(model, "bfloat16")  # type: ignore[arg-type]


def test_unreadable_wav_is_named(spec, model_file, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    sf.write(folder / "0.wav", tone(1.0, 44_100, 440.0, 0), 44_100)
    (folder / "1.wav").write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    model = prepare_model(load_trained_model(spec, model_file))
    with pytest.raises(AudioReadError, match=r"1\.wav: cannot be read as audio"):
        predict_files(model, spec, list_audio(folder), progress=False)
    stereo = tmp_path / "stereo"
    stereo.mkdir()
    sf.write(stereo / "0.wav", np.zeros((44_100, 2), dtype=np.float32), 44_100)
    with pytest.raises(AudioReadError, match="2 channels; expected a mono clip"):
        predict_files(model, spec, list_audio(stereo), progress=False)


def test_checkpoint_of_another_system_or_shape_is_refused(spec, model_file, tmp_path):
    registry = discover()
    with pytest.raises(CheckpointError, match="holds weights of system 'cp-mobile', not 'efficientnet-b0'"):
        load_trained_model(registry.get("efficientnet-b0"), model_file)
    state = load_trained_model(spec, model_file).state_dict()
    name = next(k for k, v in state.items() if v.ndim == 4)
    state[name] = torch.zeros(1, 1, 1, 1)
    torch.save(state, tmp_path / "bare.pt")  # a bare state dict is read, and its bad tensor named
    with pytest.raises(CheckpointError, match=rf"shape differs: {name} \[1, 1, 1, 1\]"):
        load_trained_model(spec, tmp_path / "bare.pt")


def test_cli_writes_the_dcase_output_format(model_file, audio_dir, tmp_path, monkeypatch):
    from ascbench.cli.main import app

    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))
    out = tmp_path / "output.csv"
    args = ["predict", "--system", "cp-mobile", "--checkpoint", str(model_file), "--audio", str(audio_dir), "--out", str(out), "--no-progress", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert check_output(out, expected_count=12) == []
    with out.open(newline="") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    assert tuple(rows[0]) == OUTPUT_FIELDS
    assert [r[0] for r in rows[1:]] == [f"{i}.wav" for i in range(12)]
    for row in rows[1:]:
        scores = np.array([float(v) for v in row[2:]])
        assert row[1] == SCENES[int(scores.argmax())]
        assert abs(scores.sum() - 1.0) < 1e-5

    # a recorded name (an ablation row, a run on a local teacher) loads its system's architecture
    recorded = tmp_path / "recorded.csv"
    named = CliRunner().invoke(app, [*args[:2], "cp-mobile~no-fms@teacher-x", *args[3:8], str(recorded), *args[9:]])
    assert named.exit_code == 0 and recorded.read_bytes() == out.read_bytes(), named.output

    (audio_dir.parent / "broken").mkdir()
    (audio_dir.parent / "broken" / "3.wav").write_text("not audio")
    bad = CliRunner().invoke(app, [*args[:5], "--audio", str(audio_dir.parent / "broken"), "--out", str(tmp_path / "x.csv"), "--no-progress"])
    assert bad.exit_code == 2
    assert "3.wav: cannot be read as audio" in bad.output
