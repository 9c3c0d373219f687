"""Trained-model files: what a run leaves behind, and what ``run --checkpoint`` and ``predict`` load.

A file is ``torch.save({"format": FORMAT, "system": name, "state_dict": ..., "meta": {...}})``:
plain tensors and JSON-like values only, so it loads with ``torch.load(weights_only=True)`` and
never executes code from the file. The system name travels with the weights so that loading a
CP-Mobile file into another system fails with a sentence instead of a wall of key names. A bare
state dict (what the DCASE baselines publish) is accepted too.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ascbench.systems.spec import SystemSpec

FORMAT = "ascbench.model/1"
MAX_LISTED_KEYS = 5
"""Key names shown per category in a mismatch message (the rest are counted)."""


class CheckpointError(ValueError):
    """A model file that cannot be loaded into the system asked for; the message names the file."""


def save_trained_model(model: nn.Module, spec: SystemSpec, path: Path | str, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights for system ``spec`` to ``path`` atomically; returns the path.

    The file appears complete or not at all (written beside ``path``, then ``os.replace``d), so
    an interrupted run never leaves a half-written model that a later ``predict`` would trust.
    ``meta`` must be JSON-like (str, numbers, bools, None, lists, dicts): anything else would
    make the file unloadable under ``weights_only=True``.
    """
    meta = dict(meta or {})
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint meta for {spec.name} must be JSON-like: {error}") from None
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "system": spec.name, "state_dict": state, "meta": meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The file as ``{"format", "system", "state_dict", "meta"}``; a bare state dict gets ``system=None``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only errors all mean "not a usable file"
        raise CheckpointError(f"{path}: not a loadable PyTorch weights file ({type(error).__name__}: {error})") from None
    if isinstance(data, Mapping) and data.get("format") == FORMAT:
        return {"format": FORMAT, "system": data.get("system"), "state_dict": data["state_dict"], "meta": data.get("meta", {})}
    if isinstance(data, Mapping) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"format": None, "system": None, "state_dict": dict(data), "meta": {}}
    kind = f"a dict with keys {sorted(map(str, data))[:MAX_LISTED_KEYS]}" if isinstance(data, Mapping) else type(data).__name__
    raise CheckpointError(f"{path}: holds {kind}; expected an ascbench model file ({FORMAT}) or a state dict of tensors")


def load_trained_model(spec: SystemSpec, path: Path | str) -> nn.Module:
    """The trained deployable model of ``spec`` from ``path``, in eval mode on the CPU.

    A system with its own ``load`` decides how its files are read; otherwise the file's weights
    are loaded strictly into ``spec.build_model()``.
    """
    path = Path(path)
    if spec.load is not None:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such model file")
        return spec.load(path).eval()
    checkpoint = read_checkpoint(path)
    if checkpoint["system"] is not None and checkpoint["system"] != spec.name:
        raise CheckpointError(
            f"{path}: holds weights of system {checkpoint['system']!r}, not {spec.name!r}; "
            f"use --system {checkpoint['system']} (or the file trained for {spec.name})"
        )
    model = spec.build_model()
    _check_keys(path, spec.name, model.state_dict(), checkpoint["state_dict"])
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model.eval()


def _check_keys(path: Path, system: str, expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> None:
    """Raise one readable error listing missing, unexpected and wrongly shaped tensors."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [
        f"{k} {list(found[k].shape)} (model: {list(expected[k].shape)})"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        f"{label}: {_listing(items)}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape differs", reshaped))
        if items
    ]
    if problems:
        raise CheckpointError(
            f"{path}: weights do not fit system {system!r} ({'; '.join(problems)}); "
            "was it trained for another system or another configuration of it?"
        )


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED_KEYS])
    more = len(items) - MAX_LISTED_KEYS
    return f"{shown} and {more} more" if more > 0 else shown
