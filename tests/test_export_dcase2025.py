"""The DCASE 2025 inference package: written from real models, installed with pip into an
environment that has torch and torchaudio and nothing else, and checked against ascbench's own
computation of the same predictions."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import subprocess
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from ascbench.data.layout import SCENES
from ascbench.evaluation.complexity import count_params
from ascbench.export import dcase2025_inference as inference
from ascbench.export.dcase2025 import (
    CHECKED_DEVICES,
    PackageError,
    package_name,
    write_inference_package,
)
from ascbench.export.predict import predict_files, prepare_model
from ascbench.features.frontends import FRONTENDS, Frontend
from ascbench.systems import discover
from ascbench.systems.spec import SystemSpec
from fresh_env import NOTHING_BUT_TORCH, install_in_fresh_environment

PACKAGE = "Doe_ASCB_task1"
DEVICE_IDS = ["a", "s2", "s4", "zz-unknown", "b", " S2 ", "a"]
"""One per clip of ``audio``: own models (a, s2), unknown ids (general model), an id to normalise."""
SUBTYPES = [  # (rate, subtype, format) of each clip, as the files the package may meet
    (44_100, "PCM_24", "WAV"),
    (44_100, "PCM_16", "WAV"),
    (32_000, "FLOAT", "WAV"),
    (48_000, "PCM_32", "WAV"),
    (44_100, "PCM_24", "WAVEX"),
    (16_000, "DOUBLE", "WAV"),
    (22_050, "PCM_U8", "WAV"),
]


@pytest.fixture(scope="module")
def spec() -> SystemSpec:
    return discover().get("cp-mobile")


def perturbed(model: nn.Module, seed: int, scale: float) -> nn.Module:
    """A copy with noisy weights and running statistics: a stand-in for a fine-tuned device model
    (distinct statistics also show a load that ignored buffers)."""
    model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]:
            tensor.add_(scale * torch.randn(tensor.shape, generator=generator))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.abs_().add_(0.5)
    return model.eval()


@pytest.fixture(scope="module")
def models(spec) -> dict[str, nn.Module]:
    torch.manual_seed(7)
    general = perturbed(spec.build_model(), seed=1, scale=0.05)
    return {"general": general, "a": perturbed(general, 2, 0.05), "s2": perturbed(general, 3, 0.05)}


def complexity_of(models: dict[str, nn.Module]) -> dict[str, dict[str, int]]:
    return {name: {"macs": 29_419_156, "params": count_params(m), "param_bytes": 4 * count_params(m)} for name, m in models.items()}


def clip(seconds: float, rate: int, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.1, t.size)
    return (0.4 * np.sin(2 * np.pi * (150 + 90 * seed) * t) + noise).clip(-0.99, 0.99).astype(np.float32)


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for i, (rate, subtype, fmt) in enumerate(SUBTYPES):
        path = folder / f"{i}.wav"
        sf.write(path, clip(1.0, rate, i), rate, subtype=subtype, format=fmt)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def project(spec, models, tmp_path_factory) -> Path:
    """Submission 1: float16 weights, models for a and s2; submission 2: float32 weights, the
    general model alone (every device falls back to it). One project holds both."""
    out = tmp_path_factory.mktemp("package")
    for index, weights in ((1, "float16"), (2, "float32")):
        own = submission_models(models, index)
        write_inference_package(
            out, lastname="Doe", institute="ASCB", index=index, spec=spec, general=models["general"],
            device_models={d: m for d, m in own.items() if d != "general"}, class_names=SCENES, complexity=complexity_of(own),
            test_accuracy={"macro_accuracy": 0.41 if index == 1 else 0.43}, weights=weights, provenance={"run": "cp-mobile-s0"},
        )
    return out / PACKAGE


def submission_models(models: dict[str, nn.Module], index: int) -> dict[str, nn.Module]:
    return models if index == 1 else {"general": models["general"]}


def import_submission(project: Path, index: int) -> ModuleType:
    """The package's module, imported from the written folder in this process."""
    path = project / PACKAGE / f"{PACKAGE}_{index}.py"
    module_spec = importlib.util.spec_from_file_location(f"{PACKAGE}_{index}_under_test", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def reference_logits(spec, model: nn.Module, path: Path, weights: str) -> torch.Tensor:
    """What ascbench computes for one file (``_probabilities`` before its softmax)."""
    wave, rate = sf.read(path, dtype="float32")
    with torch.no_grad():
        features = spec.frontend.compute(torch.from_numpy(wave)[None], rate)
        inputs = features if features.ndim == 2 else features.unsqueeze(1)
        return prepare_model(copy.deepcopy(model), weights)(inputs)[0]


def model_for(models: dict[str, nn.Module], device_id: str) -> nn.Module:
    """The model the package must use for ``device_id`` (ids are compared stripped, lower-case)."""
    return models.get(device_id.strip().lower(), models["general"])


# --- names --------------------------------------------------------------------------------------


def test_package_names():
    assert package_name("Schmid", "CPJKU", 1) == ("Schmid_CPJKU_task1", "Schmid_CPJKU_task1_1", 1)
    assert package_name("McDonald", "TU9", 4).module == "McDonald_TU9_task1_4"
    for lastname in ("schmid", "Schmid-Weber", "Müller", "", "Schmid1", None):
        with pytest.raises(PackageError, match="lastname"):
            package_name(lastname, "CPJKU", 1)
    with pytest.raises(PackageError, match=r"'CPJKU'\)"):
        package_name("Schmid", "cpjku", 1)
    for institute in ("CP-JKU", "", "CP JKU"):
        with pytest.raises(PackageError, match="institute"):
            package_name("Schmid", institute, 1)
    for index in (0, 5, True, "1", 1.0):
        with pytest.raises(PackageError, match="index"):
            package_name("Schmid", "CPJKU", index)


# --- audio --------------------------------------------------------------------------------------


def test_wav_reader_decodes_like_libsndfile(audio):
    for path, (rate, subtype, _) in zip(audio, SUBTYPES):
        wave, read_rate = inference.read_wav(path)
        expected, expected_rate = sf.read(path, dtype="float32")
        assert (read_rate, wave.dtype) == (expected_rate, torch.float32) == (rate, torch.float32)
        np.testing.assert_array_equal(wave.numpy(), expected, err_msg=subtype)


def test_wav_reader_errors_name_the_file(tmp_path):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((100, 2), np.float32), 44_100, subtype="PCM_16")
    with pytest.raises(inference.AudioFileError, match=r"stereo\.wav: 2 channels"):
        inference.read_wav(stereo)
    with pytest.raises(FileNotFoundError, match=r"gone\.wav"):
        inference.read_wav(tmp_path / "gone.wav")
    flac = tmp_path / "clip.flac"
    sf.write(flac, np.zeros(100, np.float32), 44_100, format="FLAC")
    with pytest.raises(inference.AudioFileError, match=r"clip\.flac: not a RIFF/WAVE"):
        inference.read_wav(flac)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 44_100, subtype="PCM_16")
    with pytest.raises(inference.AudioFileError, match=r"empty\.wav: holds no samples"):
        inference.read_wav(empty)


# --- the written package ------------------------------------------------------------------------


def test_package_layout_and_documents(project, models, tmp_path_factory):
    package = project / PACKAGE
    for index, programs in ((1, ["a.pt2", "s2.pt2"]), (2, [])):
        data = package / f"submission_{index}"
        assert sorted(p.name for p in data.iterdir()) == sorted(
            ["config.json", "frontend.pt2", "general.pt2", *programs, "complexity.json", "test_accuracy.json", "provenance.json", "README.md"]
        )
        assert (package / f"{PACKAGE}_{index}.py").read_text() == Path(inference.__file__).read_text()
    assert (package / "resources" / "dummy.wav").is_file() and (package / "__init__.py").is_file()
    pyproject = (project / "pyproject.toml").read_text()
    torch_floor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    assert f'dependencies = ["torch>={torch_floor}", "torchaudio"]' in pyproject

    params = count_params(models["general"])
    for index, width in ((1, 2), (2, 4)):
        complexity = json.loads((package / f"submission_{index}" / "complexity.json").read_text())
        assert sorted(complexity["per_device"]) == sorted(CHECKED_DEVICES)
        assert complexity["per_device"]["s4"] == {"MACs": 29_419_156, "Params": params * width, "model": "general"}
        assert complexity["per_device"]["s2"]["model"] == ("s2" if index == 1 else "general")
        assert complexity["max_Params"] == params * width and complexity["models"]["general"]["measured_param_bytes"] == params * 4
        assert complexity["models"]["general"]["within_limits"] is (width == 2)  # 244,592 B of float32 > 128 kB
    assert json.loads((package / "submission_1" / "test_accuracy.json").read_text()) == {"macro_accuracy": 0.41}
    assert json.loads((package / "submission_1" / "provenance.json").read_text())["run"] == "cp-mobile-s0"
    readme = (package / "submission_1" / "README.md").read_text()
    assert "**float16**" in readme and "**float32**" in (package / "submission_2" / "README.md").read_text()

    local = [str(project.parent), str(tmp_path_factory.getbasetemp()), "/work", str(Path(__file__).resolve().parents[1])]
    for path in project.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in local if s.encode() in data], f"{path} names a local folder"


def test_unknown_devices_get_the_general_model(project, models, spec, audio):
    api = import_submission(project, 1)
    model = api.load_model()
    assert model.eval() is model  # evaluation scripts put models in eval mode; programs allow it
    general = api.get_model_for_device(model, "general")
    for device_id in ("s4", "zz-unknown", "s10", "general"):
        assert api.get_model_for_device(model, device_id) is model.general is general
    assert api.get_model_for_device(model, " A ") is api.get_model_for_device(model, "a") is not general
    inputs = torch.cat(api.load_inputs([str(p) for p in audio[:2]], ["s4", "a"], model))
    with torch.no_grad():
        expected = prepare_model(copy.deepcopy(models["general"]), "float16")(inputs)
        torch.testing.assert_close(api.get_model_for_device(model, "zz-unknown")(inputs), expected, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(api.get_model_for_device(model, "a")(inputs), expected, atol=1e-3)


def test_device_models_suit_the_organizers_complexity_check(project, models):
    """Their check: ``sum(numel * element size)`` of the parameters, and torchinfo's MAC count on
    ``copy.deepcopy(model).float()`` -- which hooks submodules, so the layers must be submodules."""
    api = import_submission(project, 1)
    model = api.load_model()
    dummy = str(project / PACKAGE / "resources" / "dummy.wav")
    ids = list(CHECKED_DEVICES)
    inputs = api.load_inputs([dummy] * len(ids), ids, model)
    params = count_params(models["general"])
    for x, device_id in zip(inputs, ids):
        assert x.shape == (1, 1, 256, 65)
        device_model = api.get_model_for_device(model, device_id)
        assert {p.dtype for p in device_model.parameters()} == {torch.float16}
        assert sum(p.numel() * p.element_size() for p in device_model.parameters()) == 2 * params
    device_model = api.get_model_for_device(model, "a")
    kinds = [type(m).__name__ for m in device_model.children()]
    assert kinds.count("Conv") == 21 and kinds.count("BatchNorm") == 21
    assert sum(p.numel() for c in device_model.children() if type(c).__name__ == "Conv" for p in c.parameters()) > 0.9 * params
    as_float = copy.deepcopy(device_model).float()
    with torch.no_grad():
        torch.testing.assert_close(as_float(inputs[0]), device_model(inputs[0]), rtol=0, atol=0)
    float32 = import_submission(project, 2).load_model()
    assert {p.dtype for p in float32.general.parameters()} == {torch.float32}
    assert sum(p.numel() * p.element_size() for p in float32.general.parameters()) == 4 * params


def test_bad_calls_are_refused_with_their_reason(project, audio, tmp_path):
    api = import_submission(project, 2)
    files = [str(p) for p in audio[:3]]
    with pytest.raises(ValueError, match="3 file paths but 2 device ids"):
        api.predict(files, ["a", "b"], use_cuda=False)
    with pytest.raises(ValueError, match="3 file paths but 4 device ids"):
        api.load_inputs(files, ["a", "b", "c", "s1"], api.load_model())
    missing = str(tmp_path / "nowhere" / "17.wav")
    with pytest.raises(FileNotFoundError, match=r"nowhere/17\.wav"):
        api.predict([*files, missing], ["a", "b", "c", "s1"], use_cuda=False)
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, clip(2.0, 44_100, 0), 44_100, subtype="PCM_24")
    with pytest.raises(ValueError, match=r"long\.wav: 2 s .*take 1-s clips"):
        api.predict([str(long_clip)], ["a"], use_cuda=False)
    with pytest.raises(FileNotFoundError, match="config.json"):
        api.load_model(str(tmp_path))


def test_writing_refuses_what_would_make_a_wrong_package(spec, models, tmp_path):
    good = dict(
        lastname="Doe", institute="ASCB", index=1, spec=spec, general=models["general"], device_models={"a": models["a"]},
        class_names=SCENES, complexity=complexity_of({"general": models["general"], "a": models["a"]}), test_accuracy={},
    )
    cases = [
        ({"device_models": {"s4": models["a"]}}, "only the training devices"),
        ({"complexity": complexity_of({"general": models["general"]})}, "no figures for a"),
        ({"complexity": {**complexity_of(models)}}, "s2, which ship no model"),
        ({"complexity": {"general": {"macs": 1, "params": 5, "param_bytes": 10}, "a": good["complexity"]["a"]}}, "says 5 parameters"),
        ({"provenance": {"checkpoint": "/home/me/runs/model.pt"}}, r"provenance\[checkpoint\].*absolute local path"),
        ({"test_accuracy": {"macro": float("nan")}}, "JSON-like"),
        ({"class_names": SCENES[:9]}, "10 distinct"),
        ({"weights": "int8"}, "weights 'int8'"),
        ({"institute": "ascb"}, "institute"),
    ]
    for change, message in cases:
        with pytest.raises(PackageError, match=message):
            write_inference_package(tmp_path, **{**good, **change})

    @dataclasses.dataclass(frozen=True)
    class NoRate(Frontend):
        @property
        def name(self) -> str:
            return "no-rate"

        def compute(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
            return waveform

    with pytest.raises(PackageError, match="frontend 'no-rate'.*no integer sample_rate"):
        write_inference_package(tmp_path, **{**good, "spec": dataclasses.replace(spec, frontend=NoRate())})
    assert not list(tmp_path.rglob("*.pt2"))


class TinyNet(nn.Module):
    """A small network for the other frontends' inputs: conv -> BN -> pool -> linear."""

    def __init__(self, spectrogram: bool) -> None:
        super().__init__()
        conv, bn, pool = (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d) if spectrogram else (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d)
        self.spectrogram = spectrogram
        self.features = nn.Sequential(conv(1, 8, 5, stride=4), bn(8), nn.ReLU(), pool(1), nn.Flatten())
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x if self.spectrogram else x.unsqueeze(1)))


@pytest.mark.parametrize("frontend", ["kaldi-fbank", "waveform-16k"])
def test_other_frontends_export_exactly(frontend, audio, tmp_path):
    spectrogram = frontend == "kaldi-fbank"
    torch.manual_seed(0)
    general = perturbed(TinyNet(spectrogram), seed=4, scale=0.1)
    device_a = perturbed(general, seed=5, scale=0.1)
    spec = SystemSpec(name=f"tiny-{frontend}", build_model=lambda: TinyNet(spectrogram), frontend=FRONTENDS[frontend])
    project = write_inference_package(
        tmp_path, lastname="Doe", institute="ASCB", index=3, spec=spec, general=general, device_models={"a": device_a},
        class_names=SCENES, complexity=complexity_of({"general": general, "a": device_a}), test_accuracy={}, weights="float32",
    )
    api = import_submission(project, 3)
    logits, names = api.predict([str(p) for p in audio], ["a", "s1", "a", "b", "a", "c", "a"], use_cuda=False)
    assert names == list(SCENES)
    for path, device_id, got in zip(audio, ["a", "s1", "a", "b", "a", "c", "a"], logits):
        expected = reference_logits(spec, device_a if device_id == "a" else general, path, "float32")
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


# --- installed with pip, in an environment without ascbench --------------------------------------

FRESH_SCRIPT = NOTHING_BUT_TORCH + textwrap.dedent(
    """
    import copy, importlib, importlib.resources, json, sys
    import torch
    request = json.load(open(sys.argv[1]))
    out = {}
    for index in (1, 2):
        api = importlib.import_module(f"{request['package']}.{request['package']}_{index}")
        assert "site-packages" in api.__file__, api.__file__
        logits, names = api.predict(request["files"], request["devices"], use_cuda=False, batch_size=3)
        out[index] = {"logits": [t.tolist() for t in logits], "names": names}
        if index == 2:
            continue
        model = api.load_model()
        dummy = str(importlib.resources.files(f"{request['package']}.resources") / "dummy.wav")
        ids = request["checked"]
        bytes_per_id = {}
        for x, device_id in zip(api.load_inputs([dummy] * len(ids), ids, model), ids):
            device_model = api.get_model_for_device(model, device_id)
            copy.deepcopy(device_model).float()(x)
            bytes_per_id[device_id] = sum(p.numel() * p.element_size() for p in device_model.parameters())
        out[index]["param_bytes"] = bytes_per_id
    json.dump(out, open(sys.argv[2], "w"))
    """
)


@pytest.mark.slow
def test_pip_installed_package_predicts_like_ascbench(project, models, spec, audio, tmp_path):
    python, env = install_in_fresh_environment(project, tmp_path)
    request = {"package": PACKAGE, "files": [str(p) for p in audio], "devices": DEVICE_IDS, "checked": ["a", "s2", "s4", "s10"]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "run.py").write_text(FRESH_SCRIPT)
    run = subprocess.run(
        [str(python), "-I", "run.py", "request.json", "out.json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads((tmp_path / "out.json").read_text())

    params = count_params(models["general"])
    assert out["1"]["param_bytes"] == {d: params * 2 for d in request["checked"]}  # float16 (all ids: in-process test)
    for index, weights in (("1", "float16"), ("2", "float32")):
        assert out[index]["names"] == list(SCENES)
        own = submission_models(models, int(index))
        logits = torch.tensor(out[index]["logits"])
        for row, (path, device_id) in enumerate(zip(audio, DEVICE_IDS)):
            expected = reference_logits(spec, model_for(own, device_id), path, weights)
            torch.testing.assert_close(logits[row], expected, rtol=1e-4, atol=1e-4, msg=f"submission {index}, {path.name} ({device_id})")
        if weights == "float16":  # rounding the weights moves logits a little, not the decision
            unrounded = torch.stack([reference_logits(spec, model_for(own, d), p, "float32") for p, d in zip(audio, DEVICE_IDS)])
            assert (logits - unrounded).abs().max() < 0.05 * unrounded.abs().max()

    general_rows = [i for i, d in enumerate(DEVICE_IDS) if d.strip().lower() not in ("a", "s2")]
    rounded = prepare_model(copy.deepcopy(models["general"]), "float16")
    probabilities = predict_files(rounded, spec, [audio[i] for i in general_rows], progress=False)
    np.testing.assert_allclose(
        torch.softmax(torch.tensor(out["1"]["logits"])[general_rows], dim=1).numpy(), probabilities.probabilities, rtol=1e-4, atol=1e-6
    )
