"""DCASE 2025 Task 1 inference package: the installable project a submission must hand in.

The official API (the organizers' ``dcase2025_task1_inference`` README and scripts) asks for a
pip-installable project ``<Lastname>_<INST>_task1/`` whose module ``<Lastname>_<INST>_task1_<n>.py``
(n = 1..4) offers ``predict``, ``load_model``, ``load_inputs`` and ``get_model_for_device``. The
organizers install it in an environment of their own, so the package must not import ascbench or
the plugin that defines the network. What is written::

    <out_dir>/<Lastname>_<INST>_task1/            the project (pip install <this folder>)
        pyproject.toml                            setuptools; dependencies: torch, torchaudio
        README.md
        <Lastname>_<INST>_task1/
            __init__.py
            <Lastname>_<INST>_task1_<n>.py        ascbench/export/dcase2025_inference.py, verbatim
            resources/__init__.py, dummy.wav      what the organizers' complexity check reads
            submission_<n>/                       config.json, frontend.pt2, general.pt2, a.pt2,
                                                  ..., complexity.json, test_accuracy.json,
                                                  provenance.json, README.md

How the models travel, and why: every model is a ``torch.export`` program saved with
``torch.export.save`` (``.pt2``: graph + weights, loaded with ``torch.export.load(...).module()``
without the network's Python source), with a dynamic batch dimension. The frontend is one more
program (waveform at its rate -> model input), separate from the models, because

- the organizers' complexity check feeds an input from ``load_inputs`` to the module that
  ``get_model_for_device`` returns and counts its MACs with torchinfo; the official baseline
  returns features from ``load_inputs`` and a features -> logits model, so MACs and parameter
  bytes are those of the network alone -- the convention ascbench measures by;
- a frontend's constants (the baseline mel filterbank: 2 MB) are stored once, not once per
  device; features are computed once per clip whatever its device.

Resampling from the file's rate to the frontend's rate is done by the inference module with
torchaudio's ``Resample`` (rates are only known at run time), exactly as
:func:`ascbench.features.frontends.resample` does; every built-in frontend computes
``compute(resample(w))`` at its own rate, and the export checks that equality on a probe clip at
44.1 kHz. Programs take clips of a fixed length (``clip_seconds``, 1 s as every DCASE clip):
CP-Mobile-style strided networks cannot be exported with a dynamic time axis, and a clip of
another length is refused with its name and length rather than padded.

Precision: ``weights="float16"`` stores parameters and floating buffers as float16 -- the float32
weights rounded exactly as ``prepare_model(model, "float16")`` rounds them -- and the program casts
them to float32 before use, so predictions are those of the rounded weights, computed in float32,
and ``numel x 2`` bytes is what the organizers' check (``numel x element size`` of every
parameter) reports. ``complexity.json`` gives parameter bytes at the shipped precision.

Every program is reloaded from disk after writing and compared with the float model (rounded
when float16) on the probe; a mismatch is a :class:`PackageError`, never a silent package.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import uuid
import warnings
import wave
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torchaudio
from torch import nn

from ascbench.data.layout import SAMPLE_RATE
from ascbench.evaluation.complexity import DCASE_MAX_MACS, DCASE_MAX_PARAM_BYTES
from ascbench.evaluation.quantize import _bake_parametrizations
from ascbench.export import dcase2025_inference as inference
from ascbench.export.predict import WEIGHT_PRECISIONS, WeightPrecision, prepare_model
from ascbench.features.frontends import Frontend, resample
from ascbench.systems.spec import SystemSpec

TRAINING_DEVICES: tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3")
"""The devices of the 2025 training data (split25): the only ones that may have a model of their own."""
CHECKED_DEVICES: tuple[str, ...] = ("a", "b", "c", *(f"s{i}" for i in range(1, 11)))
"""The ids the organizers' complexity check iterates (devices without a model use the general one)."""
GENERAL = "general"
PROBE_CLIPS = 3
TOLERANCE = 1e-4
"""Largest |difference| (relative to the logits' scale) between a reloaded program and its model."""
COMPLEXITY_KEYS = ("macs", "params", "param_bytes")
_LASTNAME = re.compile(r"[A-Z][A-Za-z]*")
_INSTITUTE = re.compile(r"[A-Z0-9]+")
_META_KEYS = ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node", "torch_fn")


class PackageError(ValueError):
    """The inference package cannot be written as asked; the message says what to change."""


class PackageName(NamedTuple):
    """``package``: ``<Lastname>_<INST>_task1`` (the project folder, the import name and the pip
    name); ``module``: ``<package>_<index>``, the module the organizers import."""

    package: str
    module: str
    index: int


def package_name(lastname: str, institute: str, index: int) -> PackageName:
    """Validate the DCASE naming (``Schmid_CPJKU_task1_1``) and return the names it gives.

    ``lastname``: ASCII letters, capitalised (``Schmid``); ``institute``: upper-case letters and
    digits (``CPJKU``); ``index``: 1..4 (a team may submit up to four systems). Anything else would
    make an import name the organizers' scripts cannot build, so it is refused here, not later.
    """
    if not isinstance(lastname, str) or not _LASTNAME.fullmatch(lastname):
        hint = ""
        if isinstance(lastname, str) and lastname.isascii() and lastname.isalpha():
            hint = f" (write it {lastname[:1].upper() + lastname[1:]!r})"
        raise PackageError(f"lastname {lastname!r}: ASCII letters only, starting with a capital, e.g. 'Schmid'{hint}")
    if not isinstance(institute, str) or not _INSTITUTE.fullmatch(institute):
        hint = f" (write it {institute.upper()!r})" if isinstance(institute, str) and _INSTITUTE.fullmatch(institute.upper()) else ""
        raise PackageError(f"institute {institute!r}: upper-case letters and digits only, e.g. 'CPJKU'{hint}")
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= 4:
        raise PackageError(f"submission index {index!r}: expected 1, 2, 3 or 4")
    package = f"{lastname}_{institute}_task1"
    return PackageName(package, f"{package}_{index}", index)


def write_inference_package(
    out_dir: Path | str,
    *,
    lastname: str,
    institute: str,
    index: int,
    spec: SystemSpec,
    general: nn.Module,
    device_models: Mapping[str, nn.Module],
    class_names: Sequence[str],
    complexity: Mapping[str, Mapping[str, int]],
    test_accuracy: Mapping[str, object],
    weights: WeightPrecision = "float16",
    provenance: Mapping[str, object] | None = None,
    clip_seconds: float = 1.0,
) -> Path:
    """Write (or update) the project ``out_dir/<Lastname>_<INST>_task1`` with submission ``index``.

    ``general`` serves every device without a model of its own; ``device_models`` maps training
    devices (a subset of :data:`TRAINING_DEVICES`, possibly empty) to their fine-tuned models.
    ``complexity`` holds, for ``general`` and each device model, ``macs``, ``params`` and
    ``param_bytes`` as ascbench measured them; ``params`` must be the model's parameter count (a
    figure of another model is refused) and ``param_bytes`` is restated at the shipped precision.
    ``test_accuracy`` and ``provenance`` are written as JSON; ``provenance`` must not hold an
    absolute path (the package is shared). Other submissions (indices) already in the project are
    kept; this one is replaced as a whole. Returns the project folder.
    """
    names = package_name(lastname, institute, index)
    if weights not in WEIGHT_PRECISIONS:
        raise PackageError(f"weights {weights!r}: expected one of {', '.join(WEIGHT_PRECISIONS)}")
    class_names = _check_class_names(class_names, spec)
    unknown = sorted(set(device_models) - set(TRAINING_DEVICES))
    if unknown:
        raise PackageError(
            f"device models for {', '.join(map(repr, unknown))}: only the training devices "
            f"{', '.join(TRAINING_DEVICES)} may have a model of their own (others use the general model)"
        )
    models: dict[str, nn.Module] = {GENERAL: general, **{d: device_models[d] for d in TRAINING_DEVICES if d in device_models}}
    figures = _check_complexity(complexity, models)
    accuracy = _json_value("test_accuracy", test_accuracy)
    origin = _json_value("provenance", provenance or {})
    _refuse_absolute_paths("provenance", origin)
    rate = _frontend_rate(spec.frontend)
    clip_samples = round(rate * clip_seconds)
    if clip_samples < 1 or not math.isclose(clip_samples, rate * clip_seconds):
        raise PackageError(f"clip_seconds {clip_seconds}: not a whole number of samples at {rate} Hz")

    project = Path(out_dir) / names.package
    package_dir = project / names.package
    package_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".submission_{index}.", dir=package_dir))
    try:
        config = _write_programs(staging, spec, models, figures, weights, rate, clip_samples, clip_seconds, class_names)
        _write_json(staging / "config.json", config)
        _write_json(staging / "complexity.json", _complexity_document(config, figures, weights))
        _write_json(staging / "test_accuracy.json", accuracy)
        _write_json(staging / "provenance.json", {"exported_by": "ascbench", "torch": torch.__version__, **origin})
        (staging / "README.md").write_text(_submission_readme(names, spec, config, weights), encoding="utf-8")
        target = package_dir / f"submission_{index}"
        if target.exists():
            retired = package_dir / f".retired-{uuid.uuid4().hex[:8]}"
            os.replace(target, retired)
            shutil.rmtree(retired)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    _write_project(project, names)
    _refuse_local_paths(project, Path(out_dir))
    return project


# --- checks -----------------------------------------------------------------------------------


def _check_class_names(class_names: Sequence[str], spec: SystemSpec) -> list[str]:
    names = list(class_names)
    if len(names) != spec.n_classes or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise PackageError(f"class_names must be {spec.n_classes} distinct non-empty strings (the logit order of {spec.name}), got {names!r}")
    return names


def _check_complexity(complexity: Mapping[str, Mapping[str, int]], models: Mapping[str, nn.Module]) -> dict[str, dict[str, int]]:
    missing = [name for name in models if name not in complexity]
    if missing:
        raise PackageError(f"complexity has no figures for {', '.join(missing)}; every shipped model needs {', '.join(COMPLEXITY_KEYS)}")
    extra = sorted(set(complexity) - set(models))
    if extra:
        raise PackageError(f"complexity has figures for {', '.join(extra)}, which ship no model of their own")
    figures: dict[str, dict[str, int]] = {}
    for name, model in models.items():
        entry = complexity[name]
        values = {key: entry.get(key) for key in COMPLEXITY_KEYS}
        bad = [key for key, value in values.items() if isinstance(value, bool) or not isinstance(value, int) or value < 0]
        if bad:
            raise PackageError(f"complexity[{name!r}]: {', '.join(bad)} must be non-negative integers, got {dict(entry)!r}")
        counted = sum(p.numel() for p in model.parameters())
        if values["params"] != counted:
            raise PackageError(f"complexity[{name!r}] says {values['params']:,} parameters but the {name} model has {counted:,}")
        figures[name] = values  # type: ignore[assignment]
    return figures


def _json_value(what: str, value: Mapping[str, object]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise PackageError(f"{what} must be JSON-like (str, numbers, bools, None, lists, dicts): {error}") from None


def _refuse_absolute_paths(what: str, value: Any, where: str = "") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_absolute_paths(what, item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_absolute_paths(what, item, f"{where}[{i}]")
    elif isinstance(value, str) and (value.startswith(("/", "~")) or re.match(r"[A-Za-z]:[\\/]", value)):
        raise PackageError(f"{what}[{where}] = {value!r} is an absolute local path; the package is shared, give a relative name")


def _refuse_local_paths(project: Path, out_dir: Path) -> None:
    """No file of the package may name a folder of this machine (stack traces, provenance...)."""
    needles = {str(out_dir.resolve()), str(Path(__file__).resolve().parents[2]), os.getcwd()}
    needles = {n.encode() for n in needles if len(n) > 1}
    for path in sorted(project.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found = [n.decode() for n in needles if n in data]
            if found:
                raise PackageError(f"{path.relative_to(project)} holds the local path {found[0]!r}; the package would leak it")


def _frontend_rate(frontend: Frontend) -> int:
    rate = getattr(frontend, "sample_rate", None)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise PackageError(
            f"frontend {frontend.name!r} ({type(frontend).__name__}) has no integer sample_rate; the package resamples "
            "each file to the frontend's rate before it, so it needs one"
        )
    return rate


# --- programs ---------------------------------------------------------------------------------


class _FrontendProgram(nn.Module):
    """Waveform at the frontend's rate -> model input, with the channel axis spectrograms get
    (as in :func:`ascbench.export.predict._probabilities`)."""

    def __init__(self, frontend: Frontend, rate: int) -> None:
        super().__init__()
        self.frontend = frontend
        self.rate = rate

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        features = self.frontend.compute(waveform, self.rate)
        return features if features.ndim == 2 else features.unsqueeze(1)


class _HalfStored(nn.Module):
    """``model`` with its floating parameters and buffers stored as float16, used as float32."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tensors = chain(self.model.named_parameters(), self.model.named_buffers())
        state = {name: t.float() for name, t in tensors if t.dtype == torch.float16}
        return torch.func.functional_call(self.model, state, (x,))


def _probe(clip_seconds: float) -> torch.Tensor:
    """A few clips of coloured noise at the data set's rate (44.1 kHz): what verification runs on."""
    generator = torch.Generator().manual_seed(2025)
    noise = torch.randn(PROBE_CLIPS, round(SAMPLE_RATE * clip_seconds), generator=generator)
    return 0.1 * torch.cumsum(noise, dim=1).remainder(2.0).sub(1.0) + 0.05 * noise


def _write_programs(
    folder: Path,
    spec: SystemSpec,
    models: Mapping[str, nn.Module],
    figures: Mapping[str, Mapping[str, int]],
    weights: WeightPrecision,
    rate: int,
    clip_samples: int,
    clip_seconds: float,
    class_names: list[str],
) -> dict[str, Any]:
    probe = _probe(clip_seconds)
    frontend = spec.frontend
    with torch.no_grad():
        reference = _FrontendProgram(frontend, SAMPLE_RATE)(probe)  # as training computes features
        at_rate = resample(probe, SAMPLE_RATE, rate)
        if at_rate.shape[1] != clip_samples:
            raise PackageError(f"a {clip_seconds}-s probe resampled to {rate} Hz has {at_rate.shape[1]} samples, not {clip_samples}")
        front = _FrontendProgram(frontend, rate).eval()
        front(at_rate)  # fills the frontend's caches (filterbanks, windows) before export traces it
    _save(_export(front, at_rate, f"frontend {frontend.name!r}"), folder / "frontend.pt2")
    loaded = inference._load_program(folder / "frontend.pt2", torch.device("cpu"), as_layers=False)
    with torch.no_grad():
        features = loaded(at_rate)
    _verify(features, reference, f"the exported frontend {frontend.name!r} (after resampling 44.1 kHz -> {rate} Hz)")

    files: dict[str, str] = {}
    shipped: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        float_model = _bake_parametrizations(copy.deepcopy(model).cpu()).eval()
        expected_model = prepare_model(copy.deepcopy(float_model), weights)
        program = _HalfStored(copy.deepcopy(float_model)).eval() if weights == "float16" else expected_model
        with torch.no_grad():
            expected = expected_model(features)
        if expected.ndim != 2 or expected.shape[1] != spec.n_classes:
            raise PackageError(f"{name} model returned logits of shape {list(expected.shape)}; expected [batch, {spec.n_classes}]")
        files[name] = f"{name}.pt2"
        _save(_export(program, features, f"the {name} model of {spec.name}"), folder / files[name])
        module = inference._load_program(folder / files[name], torch.device("cpu"))
        with torch.no_grad():
            _verify(module(features), expected, f"the exported {name} model")
        params = list(module.parameters())
        if sum(p.numel() for p in params) != figures[name]["params"]:
            raise PackageError(f"the exported {name} model holds {sum(p.numel() for p in params):,} parameters, not {figures[name]['params']:,}")
        shipped[name] = {
            "param_bytes": sum(p.numel() * p.element_size() for p in params),
            "param_dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in params}),
            "sha256": hashlib.sha256((folder / files[name]).read_bytes()).hexdigest(),
        }
    return {
        "format": inference.FORMAT,
        "system": spec.name,
        "class_names": class_names,
        "sample_rate": rate,
        "clip_samples": clip_samples,
        "clip_seconds": clip_seconds,
        "input_shape": [1, *features.shape[1:]],
        "weights": weights,
        "frontend": {"name": frontend.name, "key": frontend.key(), "file": "frontend.pt2", "settings": _settings(frontend)},
        "models": files,
        "devices_with_models": [d for d in models if d != GENERAL],
        "shipped": shipped,
        "torch_version": torch.__version__,
        "torchaudio_version": torchaudio.__version__,
    }


def _settings(frontend: Frontend) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(frontend), default=str)) if is_dataclass(frontend) else {}


def _export(module: nn.Module, example: torch.Tensor, what: str) -> torch.export.ExportedProgram:
    """Non-strict export with a dynamic batch, stripped of what must not travel: example inputs,
    source locations (they hold local paths), and dtype assertions (they would make the
    ``copy.deepcopy(model).float()`` of the organizers' MAC count fail on float16 weights)."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as exc:
        raise PackageError(
            f"torch.export could not capture {what} for inputs of shape {list(example.shape[1:])}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    program.example_inputs = None
    graph = program.graph
    for node in list(graph.nodes):
        for key in _META_KEYS:
            node.meta.pop(key, None)
        if node.op == "call_function" and node.target is torch.ops.aten._assert_tensor_metadata.default and not node.users:
            graph.erase_node(node)
    program.graph_module.recompile()
    return program


def _save(program: torch.export.ExportedProgram, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(program, str(path))


def _verify(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    scale = max(1.0, float(expected.abs().max()))
    difference = float((actual - expected).abs().max()) if actual.shape == expected.shape else math.inf
    if not difference <= TOLERANCE * scale:
        raise PackageError(
            f"{what} does not reproduce the model it was exported from (largest difference {difference:.3g}, "
            f"shapes {list(actual.shape)} vs {list(expected.shape)}); refusing to ship it"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


# --- documents --------------------------------------------------------------------------------


def _complexity_document(config: Mapping[str, Any], figures: Mapping[str, Mapping[str, int]], weights: str) -> dict[str, Any]:
    """The organizers' complexity.json fields (per checked device id, max over them), and ours."""
    shipped = config["shipped"]
    models: dict[str, Any] = {}
    for name, values in figures.items():
        param_bytes = shipped[name]["param_bytes"]
        models[name] = {
            "macs": values["macs"],
            "params": values["params"],
            "param_bytes": param_bytes,
            "param_dtypes": shipped[name]["param_dtypes"],
            "measured_param_bytes": values["param_bytes"],
            "within_limits": values["macs"] <= DCASE_MAX_MACS and param_bytes <= DCASE_MAX_PARAM_BYTES,
        }
    per_device = {d: (d if d in models else GENERAL) for d in CHECKED_DEVICES}
    return {
        "per_device": {d: {"MACs": models[m]["macs"], "Params": models[m]["param_bytes"], "model": m} for d, m in per_device.items()},
        "max_MACs": max(m["macs"] for m in models.values()),
        "max_Params": max(m["param_bytes"] for m in models.values()),
        "models": models,
        "weights": weights,
        "input_shape": config["input_shape"],
        "limits": {"macs": DCASE_MAX_MACS, "param_bytes": DCASE_MAX_PARAM_BYTES, "applied": "to each model separately"},
        "notes": (
            "MACs: ascbench's count (fvcore, DCASE convention) for one clip of input_shape, frontend not included. "
            "Params (per_device) and param_bytes: parameters x bytes of the dtype shipped in the .pt2 files, as the "
            "organizers' check sums them; measured_param_bytes: the figure ascbench recorded for the run."
        ),
    }


def _submission_readme(names: PackageName, spec: SystemSpec, config: Mapping[str, Any], weights: str) -> str:
    shipped = config["shipped"]
    devices = config["devices_with_models"]
    if weights == "float16":
        precision = (
            "Parameters and floating buffers are stored as **float16** (2 bytes per parameter): the trained float32 "
            "weights rounded to the nearest float16. The programs cast them to float32 before use, so logits are those "
            "of the rounded weights computed in float32; they differ slightly from the unrounded float32 model's."
        )
    else:
        precision = "Parameters are stored as **float32** (4 bytes per parameter), exactly as trained."
    rows = "\n".join(
        f"| {name} | {name}.pt2 | {shipped[name]['param_bytes']:,} | {', '.join(shipped[name]['param_dtypes'])} |"
        for name in [GENERAL, *devices]
    )
    return f"""# {names.module}

DCASE 2025 Task 1 system `{spec.name}` (exported by ascbench). Import `{names.package}.{names.module}`.

- Frontend: `{config['frontend']['name']}` at {config['sample_rate']} Hz (`frontend.pt2`); model input
  {config['input_shape']} for a {config['clip_seconds']:g}-s clip. Files are resampled from their own rate.
- Device models: {', '.join(devices) if devices else 'none'}; every other device id uses the general model.
- {precision}
- Models are `torch.export` programs (`torch.export.load(path).module()`), written with torch
  {config['torch_version']}; they need no source code beyond this package.

| model | file | parameter bytes | dtype |
|---|---|---|---|
{rows}

`complexity.json`: MACs and parameter memory per device id; `test_accuracy.json`: development-test
results recorded by ascbench; `provenance.json`: where the models come from.
"""


def _project_readme(names: PackageName, submissions: list[int]) -> str:
    modules = "\n".join(f"- `{names.package}.{names.package}_{i}` (data in `{names.package}/submission_{i}/`)" for i in submissions)
    return f"""# {names.package}

DCASE 2025 Task 1 inference package (low-complexity acoustic scene classification with device
information), written by ascbench. Dependencies: torch and torchaudio only.

    pip install .

Modules:
{modules}

Each offers the official API:

```python
import importlib
api = importlib.import_module("{names.package}.{names.package}_{submissions[0]}")
logits, class_names = api.predict(file_paths, device_ids)   # one [n_classes] tensor per file
model = api.load_model()                                    # all models of the submission
inputs = api.load_inputs(file_paths, device_ids, model)    # one [1, ...] model input per file
device_model = api.get_model_for_device(model, "s4")        # unknown ids -> the general model
```

Audio: mono WAV (PCM 8/16/24/32-bit or float), any sample rate (resampled to the model's), clips
of the length the models were exported for (see each submission's README.md).
"""


def _write_project(project: Path, names: PackageName) -> None:
    package_dir = project / names.package
    submissions = sorted(int(p.name.split("_")[1]) for p in package_dir.glob("submission_[1-4]") if p.is_dir())
    for i in submissions:  # the module file of every submission present: the same source for each
        shutil.copyfile(inference.__file__, package_dir / f"{names.package}_{i}.py")
    init = f'"""DCASE 2025 Task 1 inference package {names.package} (written by ascbench)."""\n'
    (package_dir / "__init__.py").write_text(init, encoding="utf-8")
    resources = package_dir / "resources"
    resources.mkdir(exist_ok=True)
    init = '"""Files the organizers\' scripts read: dummy.wav, a 1-s clip for the complexity check."""\n'
    (resources / "__init__.py").write_text(init, encoding="utf-8")
    _write_dummy_wav(resources / "dummy.wav")
    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    (project / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{names.package}"
version = "1.0.0"
description = "DCASE 2025 Task 1 inference package (written by ascbench)"
readme = "README.md"
requires-python = ">=3.10"
# the .pt2 programs were written by torch {torch.__version__}; older versions cannot read them
dependencies = ["torch>={major_minor}", "torchaudio"]

[tool.setuptools]
packages = ["{names.package}", "{names.package}.resources"]

[tool.setuptools.package-data]
"{names.package}" = ["submission_*/*"]
"{names.package}.resources" = ["*.wav"]
""",
        encoding="utf-8",
    )
    (project / "README.md").write_text(_project_readme(names, submissions), encoding="utf-8")


def _write_dummy_wav(path: Path) -> None:
    """1 s of quiet noise, 44.1 kHz 24-bit mono (the format of the TAU22 clips), same bytes each time."""
    samples = (_probe(1.0)[0] * 0.5 * 2**23).round().clamp(-(2**23), 2**23 - 1).to(torch.int32)
    data = bytearray()
    for value in samples.tolist():
        data += (value & 0xFFFFFF).to_bytes(3, "little")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(3)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(bytes(data))


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n", encoding="utf-8")
