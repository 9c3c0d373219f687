"""A run's identity: digests of everything besides its key that decides its numbers.

A record is keyed by (system name, data set, split, seed, profile), which is what a person asks
for; but the same key can name different computations. A plugin edited from 170 to 650
parameters keeps its name, audio rewritten in place keeps the data set's name and fingerprint,
and a recipe option changed in code keeps the profile's name. Reusing a record across such a
change would put a number on the board that today's code and data no longer produce, or
average two different models into one row. So every record carries its identity, and a record
whose identity differs from the current one is rerun (the runner says what changed).

The digests are of content, never of paths: a checkout or a home moved elsewhere keeps its
identities.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from torch import nn

from ascbench.results.provenance import canonical_json, config_to_dict

DIGEST_CHARS = 16

_NOT_PLUGIN_CODE = frozenset({"ascbench", "torch", "torchaudio", "torchvision", "timm", "transformers", "numpy", *sys.stdlib_module_names})
"""Top-level packages whose code is the harness's or a library's: their versions are in every
record's provenance, and hashing them would make every upgrade look like an edited plugin."""


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()[:DIGEST_CHARS]


def model_digest(model: nn.Module) -> str:
    """The architecture (the module tree as printed, with every layer's hyper-parameters) and
    the name, shape and dtype of every parameter and buffer; never the values, which the seed
    decides."""
    parts = [repr(model).encode()]
    for name, tensor in model.state_dict().items():
        parts.append(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
    return _digest(parts)


def plugin_modules(objects: Iterable[object]) -> list[ModuleType]:
    """The plugin modules that define ``objects`` (a factory, a recipe, the model's layer
    classes): neither the harness nor a library it builds on, whose versions the record's
    provenance holds."""
    modules: dict[str, ModuleType] = {}
    for obj in objects:
        name = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", None)
        module = sys.modules.get(name or "")
        if module is None or name.split(".")[0] in _NOT_PLUGIN_CODE or getattr(module, "__file__", None) is None:
            continue
        modules[name] = module
    return [modules[name] for name in sorted(modules)]


def source_digest(objects: Iterable[object]) -> str:
    """The bytes of the plugin's source files, named by module (not by path)."""
    parts = []
    for module in plugin_modules(objects):
        try:
            source = Path(inspect.getfile(module)).read_bytes()
        except (OSError, TypeError):
            source = b"<source not readable>"
        parts += [module.__name__.encode(), source]
    return _digest(parts)


def config_digest(config: object, varying: Iterable[str] = ("seed",)) -> str:
    """The run's configuration dataclass without the fields that differ between the seeds of
    one system (a system's seeds share one identity, so its rows can be averaged)."""
    fields = config_to_dict(config)
    for name in varying:
        fields.pop(name, None)
    return _digest([type(config).__qualname__.encode(), canonical_json(fields).encode()])


def run_identity(model: nn.Module, objects: Iterable[object], config: object, audio: str, varying: Iterable[str] = ("seed",)) -> dict[str, str]:
    """The identity a record of this run carries (see the module docstring)."""
    return {
        "model": model_digest(model),
        "params": str(sum(p.numel() for p in model.parameters())),
        "source": source_digest([model, *model.modules(), *objects]),
        "config": config_digest(config, varying),
        "audio": audio,
    }
