"""What ``ascbench profile`` measures: a registered system or a bare model factory, untrained.

Complexity does not depend on the weights, so a system's figures (params, MACs under the DCASE
convention, parameter memory, the int8 file size) can be known before any training. A target
is a registered system name, whose frontend fixes the 1-second input shape, or a factory
reference -- ``path/to/file.py:factory`` or ``package.module:factory`` -- for a model that is
not (yet) a plugin, with the input shape given (default: the baseline log-mel clip).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ascbench.evaluation.complexity import DCASE_MAX_MACS, DCASE_MAX_PARAM_BYTES, ComplexityReport, measure_complexity
from ascbench.features.frontends import FRONTENDS, BaselineMel, Frontend


class TargetError(Exception):
    """The profile target cannot be loaded or measured; the message says what was expected."""


@dataclass
class Target:
    """A model to profile, built with its initial (untrained) weights."""

    name: str
    kind: str
    """``system`` or ``factory``."""
    model: nn.Module
    input_shape: tuple[int, ...]
    frontend: str | None
    origin: str


@dataclass
class Int8Size:
    """The real int8 file of an untrained model: size only (agreement needs trained weights)."""

    file_bytes: int | None = None
    int8_values: int | None = None
    tensor_bytes: int | None = None
    calibration_clips: int = 0
    path: str | None = None
    error: str | None = None


def is_factory_reference(target: str) -> bool:
    """``file.py:name`` / ``pkg.mod:name`` (a colon) rather than a registered system name."""
    return ":" in target


def parse_shape(text: str) -> tuple[int, ...]:
    """``1,1,256,65`` (or ``1x1x256x65``) -> (1, 1, 256, 65)."""
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise TargetError(f"input shape {text!r} is not a comma-separated list of integers, e.g. 1,1,256,65") from None
    if len(shape) < 2 or shape[0] != 1 or any(s < 1 for s in shape):
        raise TargetError(
            f"input shape {text!r} must be a batch of 1 then the clip's dimensions, e.g. 1,1,256,65 "
            "(log-mel) or 1,16000 (waveform)"
        )
    return shape


def frontend_input_shape(frontend: Frontend) -> tuple[int, ...]:
    """Model input for one 1-s clip of ``frontend``: [1, samples] or [1, 1, F, T]."""
    feat = frontend.output_shape()
    return (1, *feat) if len(feat) == 1 else (1, 1, *feat)


def load_system(name: str, submissions: Path | None = None, input_shape: Sequence[int] | None = None) -> Target:
    """A registered system's deployable model, checked to give one score row per clip."""
    from ascbench.systems.registry import SystemLoadError, discover, model_input_shape, validate_system

    try:
        spec = discover(submissions).get(name)  # a --submissions folder that is not there fails here too
        model = validate_system(spec)
    except SystemLoadError as exc:
        hint = ""
        if name.endswith(".py") or "/" in name:
            hint = f" (a model factory is named with its function: {name}:factory_name)"
        raise TargetError(f"{exc}{hint}") from None
    shape = tuple(input_shape) if input_shape is not None else model_input_shape(spec)
    return Target(spec.name, "system", model, shape, spec.frontend.name, spec.origin)


def load_factory(reference: str) -> Callable[..., Any]:
    """``path/to/file.py:factory`` or ``package.module:factory`` -> the callable it names."""
    location, _, attr = reference.rpartition(":")
    expected = "expected path/to/file.py:factory or package.module:factory"
    if not location or not attr.isidentifier():
        raise TargetError(f"{reference!r} is not a model factory reference ({expected})")
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location).expanduser()
        if not path.is_file():
            raise TargetError(f"{path}: no such file ({expected})")
        module, where = _import_file(path), str(path)
    else:
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            raise TargetError(f"cannot import module {location!r}: {exc} ({expected}; a file needs its .py suffix)") from None
        except Exception as exc:
            raise TargetError(f"importing {location} failed: {type(exc).__name__}: {exc}") from None
        where = f"module {location}"
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        found = [
            n for n, obj in vars(module).items()
            if not n.startswith("_") and callable(obj) and getattr(obj, "__module__", None) == module.__name__
        ]
        what = "has no" if factory is None else "has a non-callable"
        listing = f"; callables defined there: {', '.join(sorted(found))}" if found else "; it defines no callable"
        raise TargetError(f"{where} {what} {attr!r}: expected a function or nn.Module class that builds the model{listing}")
    return factory


def _import_file(path: Path) -> ModuleType:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    name = f"ascbench_profile_{path.stem.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise TargetError(f"{path}: import failed: {type(exc).__name__}: {exc}") from None
    return module


def build_factory(reference: str, input_shape: Sequence[int] | None = None, frontend: str | None = None) -> Target:
    """Build the model a factory reference names, for ``input_shape`` or one clip of ``frontend``."""
    if input_shape is not None and frontend is not None:
        raise TargetError("give --input-shape or --frontend, not both")
    if frontend is not None and frontend not in FRONTENDS:
        raise TargetError(f"unknown frontend {frontend!r}; known: {', '.join(FRONTENDS)}")
    factory = load_factory(reference)
    try:
        model = factory()
    except Exception as exc:
        raise TargetError(f"{reference}: calling it with no arguments failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise TargetError(f"{reference}: returned {type(model).__name__}, expected a torch nn.Module")
    chosen = FRONTENDS[frontend] if frontend is not None else BaselineMel()
    shape = tuple(input_shape) if input_shape is not None else frontend_input_shape(chosen)
    name = getattr(factory, "__name__", reference.rpartition(":")[2])
    return Target(name, "factory", model, shape, None if input_shape is not None else chosen.name, reference)


def measure(target: Target) -> tuple[ComplexityReport, tuple[int, ...]]:
    """Complexity for one clip and the model's output shape (a forward pass names a wrong shape)."""
    target.model.eval()
    try:
        with torch.no_grad():
            out = target.model(torch.zeros(target.input_shape))
    except Exception as exc:
        raise TargetError(
            f"{target.name}: forward pass on a {list(target.input_shape)} input failed ({_first_line(exc)}); "
            "is --input-shape right for this model?"
        ) from None
    try:
        report = measure_complexity(target.model, target.input_shape)
    except Exception as exc:  # the forward pass ran: the JIT trace fvcore counts on did not
        raise TargetError(
            f"{target.name}: the forward pass runs, but MAC counting (fvcore's JIT trace) failed ({_first_line(exc)}); "
            "a model must be traceable by torch.jit.trace to be counted"
        ) from None
    out_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
    return report, out_shape


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def int8_size(target: Target, calibration_clips: int = 32, save: Path | None = None) -> Int8Size:
    """Quantize the untrained model (PT2E, calibrated on structured random inputs) and weigh the file.

    The file is written to ``save`` when given, else to a temporary folder removed afterwards.
    """
    from ascbench.evaluation.quantize import QuantizationError, quantize_int8, structured_inputs

    calibration = structured_inputs(target.input_shape[1:], max(2, calibration_clips), seed=0)
    try:
        if save is not None:
            artifact = quantize_int8(target.model, calibration, save)
            kept: str | None = str(artifact.path)
        else:
            with tempfile.TemporaryDirectory(prefix="ascbench-profile-") as tmp:
                artifact = quantize_int8(target.model, calibration, Path(tmp))
            kept = None
    except QuantizationError as exc:
        return Int8Size(calibration_clips=len(calibration), error=str(exc))
    return Int8Size(artifact.bytes, artifact.int8_params, artifact.tensor_bytes, len(calibration), kept)


def profile_dict(target: Target, report: ComplexityReport, out_shape: Sequence[int], depth: int = 2, int8: Int8Size | None = None) -> dict[str, Any]:
    """Everything ``ascbench profile --format json`` prints."""
    return {
        "target": target.name,
        "kind": target.kind,
        "origin": target.origin,
        "frontend": target.frontend,
        "input_shape": list(report.input_shape),
        "output_shape": list(out_shape),
        "weights": "untrained (as built by the factory)",
        "params": report.params,
        "macs": report.macs,
        "macs_complete": report.macs_complete,
        "param_memory_kb": {"int8": report.param_memory_kb_int8, "fp16": report.param_memory_kb_fp16},
        "dcase_limits": {"param_memory_kb": DCASE_MAX_PARAM_BYTES / 1000, "macs": DCASE_MAX_MACS},
        "within_limits": {
            "memory_int8": report.memory_within_limit(8),
            "memory_fp16": report.memory_within_limit(16),
            "macs": report.macs_within_limit,
            "dcase_int8": report.within_dcase_limits,
        },
        "by_operator": dict(sorted(report.by_operator.items(), key=lambda kv: -kv[1])),
        "zero_mac_ops": report.zero_ops,
        "uncounted_ops": report.uncounted_ops,
        "breakdown": [
            {"module": row.name, "kind": row.kind, "params": row.params, "macs": row.macs}
            for row in report.breakdown(depth)
        ],
        "int8": None if int8 is None else {k: v for k, v in vars(int8).items()} | {
            "note": "weights are untrained: the file size is real, int8/float agreement is not meaningful and not measured"
        },
    }

